"""An idle gateway on the embedded default commits nothing: SQLite has one writer, and every write
transaction an idle loop opened (a poll of the dispatch, of the callbacks' outbox, of their due
deliveries) would take it from the next accept, and wake every reader's cache."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from tests.harness import running_gateway
from tests.integration.callback_helpers import callback_env


async def test_an_idle_gateway_with_a_subscription_commits_nothing(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, callback_env()) as gw:
        response = await gw.post("/v1/webhooks", {"url": "http://127.0.0.1:9/events", "events": ["*"]})
        assert response.status == 201
        await asyncio.sleep(0.5)  # the subscription's own commit settles
        with contextlib.closing(sqlite3.connect(tmp_path / "gateway.db")) as conn:
            # data_version changes when another connection commits (https://sqlite.org/pragma.html#pragma_data_version)
            before = conn.execute("PRAGMA data_version").fetchone()[0]
            await asyncio.sleep(2.0)  # 100 polls of each callbacks loop at 20 ms, 40 of the dispatch at 50 ms
            after = conn.execute("PRAGMA data_version").fetchone()[0]
    assert after == before, "an idle poll committed"

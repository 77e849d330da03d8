"""SQLite errors that mean "not just now" are answered like a PostgreSQL outage (tests/e2e/
test_database_outage.py): 503 problem+json with Retry-After, nothing written, logged once, and the
gateway serves again as soon as the database does."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from tests.console import Console
from tests.harness import SMS, running_gateway


async def test_sqlite_locked_past_the_busy_timeout_is_503_then_served_again(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, {"GATEWAY_SQLITE_BUSY_TIMEOUT_SECONDS": "0.3"}) as gw:
        assert (await gw.post("/v1/messages", SMS, key="before")).status == 202
        number = await (await gw.post("/v1/numbers", {"pool": "us-sms", "sender": "+14155550100"})).json()
        rows_before = await gw.count()
        # Another process holds the write lock for longer than the busy timeout.
        async with Console(gw) as console:
            await console.sign_in()
            with contextlib.closing(sqlite3.connect(tmp_path / "gateway.db", isolation_level=None)) as other:
                other.execute("BEGIN EXCLUSIVE")
                with capture_logs() as logs:
                    refused = [await gw.post("/v1/messages", SMS, key=f"during-{n}") for n in range(3)]
                    await console.get(f"/ui/numbers/{number['id']}")  # reads: WAL lets them through
                    async with console.session.post(
                        f"{gw.url}/ui/numbers/{number['id']}/flag", data={"reason": "complaint", "csrf": console.csrf}
                    ) as flag:
                        flag_page = await flag.text()
                        flag_status, flag_retry_after = flag.status, flag.headers.get("Retry-After")
                    other.execute("ROLLBACK")
                    rows_during = await gw.count()
                    accepted = await gw.post("/v1/messages", SMS, key="during-0")

    for response in refused:
        assert response.status == 503
        assert response.content_type == "application/problem+json"
        assert response.headers["Retry-After"] == "5"
        body = await response.json(content_type=None)
        assert body["type"] == "/problems/unavailable"
        assert body["status"] == 503
    assert rows_during == rows_before, "nothing was written"
    # The same key again is a first acceptance, not a replay: the refused request left nothing behind.
    assert accepted.status == 202
    assert "Idempotent-Replayed" not in accepted.headers
    assert (flag_status, flag_retry_after) == (503, "5")
    assert "The database is unavailable" in flag_page
    assert "unhandled error" not in [entry["event"] for entry in logs]
    # Reads went on: only writes were out, logged when that began and when it ended.
    outage = [(e["event"], e["operations"]) for e in logs if e["event"].startswith("database ")]
    assert outage == [("database unavailable", "writes"), ("database available again", "writes")]
    assert "database is locked" in next(e["error"] for e in logs if e["event"] == "database unavailable")

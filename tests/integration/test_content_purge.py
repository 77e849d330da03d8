"""The content purge, a bounded number of messages to a transaction, on both stores."""

from __future__ import annotations

import time
from typing import Any

import orjson
import sqlalchemy as sa

from gateway.domain.ids import message_id
from gateway.store.records import PURGED_CONTENT
from gateway.store.schema import events, messages
from gateway.store.store import SqlStore
from tests.integration.direct import message_row

DAY = 86400.0


async def test_every_old_finished_message_is_purged_across_transactions_and_nothing_else(database_url: str) -> None:
    store = SqlStore.open(database_url)
    await store.migrate()
    try:
        now = time.time()
        old = now - 40 * DAY
        statuses = ["delivered", "failed", "queued", "sent", "delivered", "undelivered", "sending", "delivered"]
        rows = [
            message_row(old + i, id=message_id(old + i), tenant_id=f"t{i % 2}", status=status, content=f'{{"n":{i}}}')
            for i, status in enumerate(statuses)
        ]
        rows[4]["content"] = PURGED_CONTENT  # purged by an earlier run
        recent = message_row(now, id=message_id(now), status="delivered", content='{"n":"recent"}')
        for row in [*rows, recent]:
            assert (await store.accept_one(row)).kind == "accepted"

        # Three messages to a transaction: chunks end inside the old ones, and the last is short.
        assert await store.purge_content(30, batch=3) == 5
        assert await store.purge_content(30, batch=3) == 0

        def read(conn: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
            contents = dict(conn.execute(sa.select(messages.c.id, messages.c.content)).all())
            audited = conn.execute(
                sa.select(events.c.tenant_id, events.c.detail).where(events.c.reason == "content.purged")
            )
            return contents, [{"tenant": t, **orjson.loads(d)} for t, d in audited]

        contents, audited = await store.db.read(read)
        finished = {"delivered", "failed", "sent", "undelivered"}
        assert contents == {
            **{row["id"]: PURGED_CONTENT if row["status"] in finished else row["content"] for row in rows},
            recent["id"]: '{"n":"recent"}',
        }
        purged_per_tenant: dict[str, int] = {}
        for entry in audited:
            purged_per_tenant[entry["tenant"]] = purged_per_tenant.get(entry["tenant"], 0) + entry["messages"]
        # t0 (even): 0 delivered (2 queued, 4 purged before, 6 sending); t1 (odd): failed, sent, undelivered, delivered.
        assert purged_per_tenant == {"t0": 1, "t1": 4}
    finally:
        await store.close()

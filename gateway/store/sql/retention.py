"""Retention: content purged from finished messages, idempotency keys released after their window."""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.ids import message_id_floor
from gateway.domain.models import FINAL, Status
from gateway.store.records import PURGED_CONTENT
from gateway.store.schema import KEY_HELD, message_keys, messages
from gateway.store.sql.common import Room, audit, update_with_keys


def purge_content(conn: Connection, before_id: str, statuses: Sequence[str], limit: int, at: float) -> int:
    """Drop the content of up to `limit` finished messages created before `before_id`; audited per tenant.

    Ids are time-ordered, so the primary key finds the old rows without a scan of the new ones.
    """
    rows = conn.execute(
        sa.select(messages.c.id, messages.c.tenant_id)
        .where(
            messages.c.id < before_id,
            messages.c.status.in_(list(statuses)),
            messages.c.content != PURGED_CONTENT,
        )
        .order_by(messages.c.id)
        .limit(limit)
    ).all()
    if not rows:
        return 0
    conn.execute(messages.update().where(messages.c.id.in_([r.id for r in rows])).values(content=PURGED_CONTENT))
    per_tenant: dict[str, int] = {}
    for row in rows:
        per_tenant[row.tenant_id] = per_tenant.get(row.tenant_id, 0) + 1
    for tenant_id, count in per_tenant.items():
        detail = orjson.dumps({"messages": count, "created_before": before_id}).decode()
        audit(conn, tenant_id, at, "retention", "content.purged", detail)
    return len(rows)


def release_idempotency_keys(conn: Connection, now: float, limit: int = 10_000) -> int:
    """Keys past their retention window released, from the messages and from the keys they are found by."""
    ids = list(
        conn.execute(
            sa.select(message_keys.c.message_id)
            .where(KEY_HELD, message_keys.c.idempotency_expires_at < now)
            .order_by(message_keys.c.idempotency_expires_at)
            .limit(limit)
        ).scalars()
    )
    for start in range(0, len(ids), 500):
        update_with_keys(conn, ids[start : start + 500], idempotency_key=None)
    return len(ids)


class RetentionRoom(Room):
    async def purge_content(self, older_than_days: float, batch: int = 5000) -> int:
        """Drop the content of finished messages older than the retention period; the count purged.

        In batches, so a first purge of a large backlog never holds the writer for long. A message
        still waiting for a receipt (`sent`) counts as finished here: a receipt needs no content.
        """
        now = time.time()
        floor = message_id_floor(now - older_than_days * 86400)
        statuses = sorted(FINAL | {Status.SENT})
        total = 0
        while True:
            purged = await self.db.write(purge_content, floor, statuses, batch, now)
            total += purged
            if purged < batch:
                return total

    async def release_idempotency_keys(self) -> int:
        return await self.db.write(release_idempotency_keys, time.time())

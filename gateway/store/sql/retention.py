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


def purge_content(
    conn: Connection, after_id: str, before_id: str, statuses: Sequence[str], limit: int, at: float
) -> tuple[str | None, int]:
    """Of the next `limit` messages by id after `after_id` and created before `before_id`, drop the
    content of the finished ones; audited per tenant. The last id looked at (None when these were the
    last) and how many were purged.

    Ids are time-ordered, so the primary key finds the old rows without a scan of the new ones. The
    limit is on the rows looked at, not on those purged: all but the newest old rows are mostly purged
    already, and a transaction that went on until it found `limit` to purge read every one of them
    (at a million purged messages, 224 ms of SQLite's write lock each hour).
    """
    # The chunk's last id, from the primary key's index alone; none when fewer than `limit` are left.
    last = conn.execute(
        sa.select(messages.c.id)
        .where(messages.c.id > after_id, messages.c.id < before_id)
        .order_by(messages.c.id)
        .offset(limit - 1)
        .limit(1)
    ).scalar()
    chunk = [messages.c.id > after_id, messages.c.id <= last if last is not None else messages.c.id < before_id]
    tenants = conn.execute(
        messages.update()
        .where(*chunk, messages.c.status.in_(list(statuses)), messages.c.content != PURGED_CONTENT)
        .values(content=PURGED_CONTENT)
        .returning(messages.c.tenant_id)
    ).scalars()
    per_tenant: dict[str, int] = {}
    for tenant_id in tenants:
        per_tenant[tenant_id] = per_tenant.get(tenant_id, 0) + 1
    for tenant_id, count in per_tenant.items():
        detail = orjson.dumps({"messages": count, "created_before": before_id}).decode()
        audit(conn, tenant_id, at, "retention", "content.purged", detail)
    return last, sum(per_tenant.values())


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

        Every old message is looked at, `batch` to a transaction, so a purge never holds the writer
        for long, however many messages the database keeps. A message still waiting for a receipt
        (`sent`) counts as finished here: a receipt needs no content.
        """
        now = time.time()
        floor = message_id_floor(now - older_than_days * 86400)
        statuses = sorted(FINAL | {Status.SENT})
        total, after = 0, ""
        while True:
            last, purged = await self.db.write(purge_content, after, floor, statuses, batch, now)
            total += purged
            if last is None:
                return total
            after = last

    async def release_idempotency_keys(self) -> int:
        return await self.db.write(release_idempotency_keys, time.time())

"""The audit log: pages of it for export, and status changes over time for the console."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.schema import CLICK_KIND, NOT_A_CLICK, clicks, events
from gateway.store.sql.common import Room


def events_page(
    conn: Connection,
    tenant_id: str,
    since: float,
    until: float,
    after_id: int,
    limit: int,
    types: Sequence[str] = (),
    message_id: str | None = None,
) -> list[dict[str, Any]]:
    """One page of the audit log in id order (keyset pagination, so an export streams at any size)."""
    window = [events.c.tenant_id == tenant_id, events.c.at >= since, events.c.at < until, events.c.id > after_id]
    if types:
        window.append(events.c.type.in_(list(types)))
    if message_id is not None:
        return [dict(r) for r in conn.execute(message_events(tenant_id, message_id, *window).limit(limit)).mappings()]
    query = sa.select(events).where(*window).order_by(events.c.id).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def message_events(tenant_id: str, message_id: str, *where: sa.ColumnElement[bool]) -> sa.CompoundSelect[Any]:
    """One message's audit entries in id order. Its clicks' entries are left out of the index by
    message (schema.NOT_A_CLICK): they are found from the message's `clicks` rows, each entry by its
    tenant and moment (both written from the same click) in the index by tenant and time."""
    others = sa.select(events).where(events.c.message_id == message_id, NOT_A_CLICK, *where)
    click_times = sa.select(clicks.c.at).where(clicks.c.message_id == message_id)
    of_clicks = sa.select(events).where(
        events.c.tenant_id == tenant_id,
        events.c.at.in_(click_times),
        events.c.type == CLICK_KIND,
        events.c.message_id == message_id,
        *where,
    )
    return sa.union_all(others, of_clicks).order_by(sa.column("id"))


def activity(
    conn: Connection, tenant_id: str, since: float, until: float, bucket_seconds: float
) -> list[tuple[int, str | None, int]]:
    """Status changes per (time bucket, status) since `since`: accepted (queued), sent, delivered, failed..."""
    offset = (events.c.at - since) / bucket_seconds
    bucket = sa.func.floor(offset) if conn.dialect.name == "postgresql" else offset
    index = sa.cast(bucket, sa.Integer).label("bucket")
    rows = conn.execute(
        sa.select(index, events.c.status, sa.func.count())
        .where(events.c.tenant_id == tenant_id, events.c.at >= since, events.c.at < until, events.c.type == "status")
        .group_by(index, events.c.status)
    )
    return [(int(b), status, int(n)) for b, status, n in rows]


class EventsRoom(Room):
    async def events_page(
        self,
        tenant_id: str,
        since: float,
        until: float,
        after_id: int,
        limit: int,
        types: Sequence[str] = (),
        message_id: str | None = None,
    ) -> list[dict[str, Any]]:
        return await self.db.read(events_page, tenant_id, since, until, after_id, limit, types, message_id)

    async def activity(
        self, tenant_id: str, since: float, until: float, bucket_seconds: float
    ) -> list[tuple[int, str | None, int]]:
        return await self.db.read(activity, tenant_id, since, until, bucket_seconds)

"""Reading messages: one message with its history, the delivery log, counts by status."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.ids import message_id_floor
from gateway.domain.models import DISPATCHABLE, IN_QUEUE, Status
from gateway.store.records import MessageFilter
from gateway.store.schema import HANDING_OFF, WAITING, attempts, message_keys, messages, receipts
from gateway.store.sql.common import Room
from gateway.store.sql.events import message_events


def get_message(conn: Connection, tenant_id: str, message_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(sa.select(messages).where(messages.c.id == message_id, messages.c.tenant_id == tenant_id))
        .mappings()
        .first()
    )
    if row is None:
        return None
    result = dict(row)
    result["attempts"] = [
        dict(r)
        for r in conn.execute(
            sa.select(attempts).where(attempts.c.message_id == message_id).order_by(attempts.c.number)
        ).mappings()
    ]
    result["receipts"] = [
        dict(r)
        for r in conn.execute(
            sa.select(receipts).where(receipts.c.message_id == message_id).order_by(receipts.c.id)
        ).mappings()
    ]
    result["events"] = [dict(r) for r in conn.execute(message_events(tenant_id, message_id)).mappings()]
    return result


def list_messages(conn: Connection, f: MessageFilter) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(delivery_log_query(f)).mappings()]


def delivery_log_query(f: MessageFilter) -> Any:
    """The delivery log's query: every filter pairs with an index led by tenant_id and ending in the
    message's id, so newest-first paging needs no sort whatever the table's size. Filters on what a
    message is (campaign, recipient, user), or none, read message_keys' indexes; a filter on status
    alone reads the messages' (tenant, status) index."""
    named = [
        column == value
        for column, value in (
            (message_keys.c.campaign, f.campaign),
            (message_keys.c.to_addr, f.to),
            (message_keys.c.user_id, f.user_id),
        )
        if value is not None
    ]
    if f.status and not named:
        query = sa.select(messages).where(messages.c.tenant_id == f.tenant_id)
        message_id = messages.c.id
    else:
        query = (
            sa.select(messages)
            .select_from(message_keys.join(messages, messages.c.id == message_keys.c.message_id))
            .where(message_keys.c.tenant_id == f.tenant_id, *named)
        )
        message_id = message_keys.c.message_id
    if f.status:
        query = query.where(messages.c.status.in_(f.status))
    # An id is made from its message's creation time, so a time bound is also an id bound (with a
    # second to spare): the index then starts and stops at the window instead of scanning to it.
    if f.since is not None:
        query = query.where(messages.c.created_at >= f.since, message_id >= message_id_floor(f.since - 1))
    if f.until is not None:
        query = query.where(messages.c.created_at < f.until, message_id < message_id_floor(f.until + 1))
    if f.before_id is not None:
        query = query.where(message_id < f.before_id)
    return query.order_by(message_id.desc()).limit(f.limit)


# The queue's statuses, each group with the condition that reaches its partial index.
_QUEUE_PARTS = ((WAITING, frozenset(DISPATCHABLE)), (HANDING_OFF, frozenset({Status.SENDING})))


def status_counts(conn: Connection, statuses: Sequence[str] = IN_QUEUE, tenant_id: str | None = None) -> dict[str, int]:
    counts = dict.fromkeys(statuses, 0)
    for query in status_count_queries(statuses, tenant_id):
        counts.update({status: int(n) for status, n in conn.execute(query) if status in counts})
    return counts


def status_count_queries(statuses: Sequence[str], tenant_id: str | None) -> list[sa.Select[Any]]:
    if tenant_id is not None:
        conditions = [sa.and_(messages.c.tenant_id == tenant_id, messages.c.status.in_(statuses))]
    else:
        # Across tenants (the queue-depth gauge, every few seconds): the queue's statuses are counted
        # in the queue's own indexes, not among every message ever sent.
        rest = set(statuses)
        conditions = []
        for condition, covered in _QUEUE_PARTS:
            if rest & covered:
                conditions.append(condition)
                rest -= covered
        if rest:
            conditions.append(messages.c.status.in_(sorted(rest)))
    return [
        sa.select(messages.c.status, sa.func.count()).where(condition).group_by(messages.c.status)
        for condition in conditions
    ]


def find_by_idempotency_key(conn: Connection, tenant_id: str, key: str, now: float) -> dict[str, Any] | None:
    """The message a request with this key created, while the key is retained."""
    row = (
        conn.execute(
            sa.select(messages)
            .select_from(message_keys.join(messages, messages.c.id == message_keys.c.message_id))
            .where(message_keys.c.tenant_id == tenant_id, message_keys.c.idempotency_key == key)
        )
        .mappings()
        .first()
    )
    if row is None or (row["idempotency_expires_at"] is not None and row["idempotency_expires_at"] < now):
        return None
    return dict(row)


class MessagesRoom(Room):
    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> dict[str, Any] | None:
        return await self.db.read(find_by_idempotency_key, tenant_id, key, time.time())

    async def get_message(self, tenant_id: str, message_id: str) -> dict[str, Any] | None:
        """One message with its attempts, receipts and events; None when the tenant has no such message."""
        return await self.db.read(get_message, tenant_id, message_id)

    async def list_messages(self, f: MessageFilter) -> list[dict[str, Any]]:
        return await self.db.read(list_messages, f)

    async def status_counts(self, statuses: Sequence[str] = IN_QUEUE, tenant_id: str | None = None) -> dict[str, int]:
        return await self.db.read(status_counts, statuses, tenant_id)

"""Suppression lists (opt-outs) and the engagement the sleeping-recipient policy reads."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.models import SENT
from gateway.domain.optout import SuppressionScope
from gateway.domain.recipients import ERASED_ADDRESS, address_digest
from gateway.store.schema import (
    KEYED_MESSAGES,
    clicks,
    conversions,
    message_keys,
    messages,
    numbers,
    recipient_addresses,
    recipients,
    secrets,
    suppressions,
    tenants,
)
from gateway.store.sql.common import Room, any_of, audit, dialect_insert, fetch_compiled, listed

ERASURE_SECRET = "erasure"  # the key of an erased person's address digests (store/sql/recipients.py)


def add_suppressions(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert opt-outs; one already on the list stays as it was, except that a suppression of every
    category widens one of marketing alone. Returns how many were new or widened."""
    added = 0
    for row in rows:
        stmt = dialect_insert(conn, suppressions).values(**row)
        if row.get("scope", SuppressionScope.ALL) == SuppressionScope.ALL:
            stmt = stmt.on_conflict_do_update(
                index_elements=["tenant_id", "kind", "value"],
                set_={"scope": SuppressionScope.ALL.value, "reason": row["reason"], "source": row["source"]},
                where=suppressions.c.scope != SuppressionScope.ALL.value,
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=["tenant_id", "kind", "value"])
        if conn.execute(stmt.returning(suppressions.c.id)).first() is None:
            continue
        added += 1
        audit(
            conn,
            row["tenant_id"],
            row["created_at"],
            "suppression.added",
            row["reason"],
            detail=orjson.dumps({"kind": row["kind"], "value": row["value"], "source": row["source"]}).decode(),
        )
    return added


def remove_suppression(conn: Connection, tenant_id: str, kind: str, value: str, source: str, at: float) -> bool:
    result = conn.execute(
        suppressions.delete().where(
            suppressions.c.tenant_id == tenant_id, suppressions.c.kind == kind, suppressions.c.value == value
        )
    )
    if result.rowcount:
        audit(
            conn,
            tenant_id,
            at,
            "suppression.removed",
            source,
            detail=orjson.dumps({"kind": kind, "value": value, "source": source}).decode(),
        )
    return bool(result.rowcount)


def list_suppressions(
    conn: Connection, tenant_id: str, kind: str | None, value: str | None, after_id: int | None, limit: int
) -> list[dict[str, Any]]:
    query = sa.select(suppressions).where(suppressions.c.tenant_id == tenant_id)
    if kind is not None:
        query = query.where(suppressions.c.kind == kind)
    if value is not None:
        query = query.where(suppressions.c.value == value)
    if after_id is not None:
        query = query.where(suppressions.c.id > after_id)
    return [dict(r) for r in conn.execute(query.order_by(suppressions.c.id).limit(limit)).mappings()]


# Built once: a lookup per batch of jobs the worker judges (a trickle's batches are of a few jobs, so
# building and caching the statement per call cost more than running it).
_ERASURE_KEY = sa.select(secrets.c.value).where(secrets.c.name == ERASURE_SECRET)
# Equalities plus IN on the last column, so the unique index serves the lookup.
_SUPPRESSED = sa.select(suppressions.c.value, suppressions.c.reason, suppressions.c.scope).where(
    suppressions.c.tenant_id == sa.bindparam("tenant_id"),
    suppressions.c.kind == sa.bindparam("kind"),
    any_of(suppressions.c.value, "values"),
)


def suppressed_among(
    conn: Connection, recipients: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], tuple[str, str]]:
    """Of (tenant, kind, value) triples, those on a suppression list, with the reason and the scope; an
    address also by its digest, which is what an erased person's opt-out keeps."""
    if not recipients:
        return {}
    grouped: dict[tuple[str, str], set[str]] = defaultdict(set)
    for tenant_id, kind, value in recipients:
        grouped[(tenant_id, kind)].add(value)
    secret = fetch_compiled(conn, _ERASURE_KEY, {}).scalar()
    digests: dict[tuple[str, str], str] = {}
    if secret is not None:
        for tenant_id, kind, value in recipients:
            if kind == "address":
                digest = address_digest(secret, value)
                digests[(tenant_id, digest)] = value
                grouped[(tenant_id, ERASED_ADDRESS)].add(digest)
    found: dict[tuple[str, str, str], tuple[str, str]] = {}
    for (tenant_id, kind), values in grouped.items():
        # The list is one parameter (a JSON list or an array), so no length limit needs chunks.
        params = {"tenant_id": tenant_id, "kind": kind, "values": listed(conn, sorted(values))}
        for value, reason, scope in fetch_compiled(conn, _SUPPRESSED, params):
            if kind == ERASED_ADDRESS:
                found.setdefault((tenant_id, "address", digests[(tenant_id, value)]), (reason, scope))
            else:
                found[(tenant_id, kind, value)] = (reason, scope)
    return found


def tenants_that_messaged(conn: Connection, address: str) -> list[str]:
    """Tenants that sent to this address, most recent first (an opt-out reply answers them)."""
    found: list[tuple[str, str]] = []
    for tenant_id in conn.execute(sa.select(tenants.c.id)).scalars():
        last = conn.execute(
            sa.select(sa.func.max(message_keys.c.message_id)).where(
                message_keys.c.tenant_id == tenant_id, message_keys.c.to_addr == address
            )
        ).scalar()
        if last:
            found.append((last, tenant_id))
    return [tenant_id for _, tenant_id in sorted(found, reverse=True)]


def answered_message(conn: Connection, address: str, our_number: str | None) -> dict[str, Any] | None:
    """The message a reply from `address` to `our_number` answers: the latest one to the address sent
    from that number, or from no recorded number (the provider's default sender could be it); with no
    `our_number`, the latest one to the address. Per tenant, so the (tenant, to) index serves it."""
    latest: dict[str, Any] | None = None
    for tenant_id in conn.execute(sa.select(tenants.c.id)).scalars():
        query = (
            sa.select(messages.c.id, messages.c.tenant_id, messages.c.sender)
            .select_from(KEYED_MESSAGES)
            .where(message_keys.c.tenant_id == tenant_id, message_keys.c.to_addr == address)
        )
        if our_number is not None:
            query = query.where(sa.or_(messages.c.sender == our_number, messages.c.sender.is_(None)))
        row = conn.execute(query.order_by(message_keys.c.message_id.desc()).limit(1)).mappings().first()
        if row is not None and (latest is None or row["id"] > latest["id"]):
            latest = dict(row)
    return latest


def tenants_reached_from_pool(conn: Connection, address: str, sender: str) -> tuple[str | None, list[str]]:
    """The pool of our number `sender`, and the tenants that sent to `address` from any number of it."""
    pool = conn.execute(sa.select(numbers.c.pool).where(numbers.c.sender == sender).limit(1)).scalar()
    if pool is None:
        return None, []
    senders = sa.select(numbers.c.sender).where(numbers.c.pool == pool)
    reached = conn.execute(
        sa.select(message_keys.c.tenant_id)
        .select_from(KEYED_MESSAGES)
        .where(message_keys.c.to_addr == address, messages.c.sender.in_(senders))
        .distinct()
    ).scalars()
    return pool, sorted(reached)


def record_reply(conn: Connection, tenant_ids: Sequence[str], address: str, event: dict[str, Any], at: float) -> None:
    """A reply kept for the campaign system (an `inbound.reply` event per tenant it speaks to), and the
    person's engagement: a reply wakes a sleeping recipient."""
    for tenant_id in tenant_ids:
        message_id = event.get("message_id") if event.get("tenant_id") == tenant_id else None
        detail = {k: v for k, v in event.items() if k != "tenant_id"}
        audit(conn, tenant_id, at, "inbound.reply", event["intent"], orjson.dumps(detail).decode(), message_id)
        people = sa.select(recipient_addresses.c.user_id).where(
            recipient_addresses.c.tenant_id == tenant_id, recipient_addresses.c.address == address
        )
        conn.execute(
            recipients.update()
            .where(recipients.c.tenant_id == tenant_id, recipients.c.user_id.in_(people))
            .values(engaged_at=at)
        )


def engagement(
    conn: Connection, tenant_id: str, subjects: Sequence[tuple[str, str]], since: float
) -> dict[tuple[str, str], tuple[int, bool]]:
    """Per (kind, value) recipient — kind user_id or address — the marketing messages that reached
    them since `since`, and whether any was clicked by a person or converted."""
    result: dict[tuple[str, str], tuple[int, bool]] = {}
    last_engaged = (
        sa.select(recipients.c.engaged_at)
        .where(recipients.c.tenant_id == messages.c.tenant_id, recipients.c.user_id == messages.c.user_id)
        .scalar_subquery()
    )
    for kind, column in (("user_id", message_keys.c.user_id), ("address", message_keys.c.to_addr)):
        values = sorted({v for k, v in subjects if k == kind})
        if not values:
            continue
        scope = sa.and_(
            message_keys.c.tenant_id == tenant_id,
            column.in_(values),
            messages.c.category == "marketing",
            messages.c.created_at >= since,
            messages.c.status.in_(sorted(SENT)),
            # A person who engaged (clicked, converted, replied) is counted again from then on.
            messages.c.created_at > sa.func.coalesce(last_engaged, 0.0) if kind == "user_id" else sa.true(),
        )
        sends: dict[str, int] = {
            v: int(n)
            for v, n in conn.execute(
                sa.select(column, sa.func.count()).select_from(KEYED_MESSAGES).where(scope).group_by(column)
            )
        }
        clicked = set(
            conn.execute(
                sa.select(column)
                .select_from(KEYED_MESSAGES.join(clicks, clicks.c.message_id == messages.c.id))
                .where(scope, clicks.c.automated.is_(False))
                .distinct()
            ).scalars()
        )
        converted = set(
            conn.execute(
                sa.select(column)
                .select_from(KEYED_MESSAGES.join(conversions, conversions.c.message_id == messages.c.id))
                .where(scope)
                .distinct()
            ).scalars()
        )
        for value in values:
            result[(kind, value)] = (int(sends.get(value, 0)), value in clicked or value in converted)
    return result


class SuppressionsRoom(Room):
    async def add_suppressions(self, rows: Sequence[dict[str, Any]]) -> int:
        return await self.db.write(add_suppressions, rows)

    async def remove_suppression(self, tenant_id: str, kind: str, value: str, source: str) -> bool:
        return await self.db.write(remove_suppression, tenant_id, kind, value, source, time.time())

    async def list_suppressions(
        self, tenant_id: str, kind: str | None, value: str | None, after_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        return await self.db.read(list_suppressions, tenant_id, kind, value, after_id, limit)

    async def suppressed_among(
        self, recipients: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], tuple[str, str]]:
        return await self.db.read(suppressed_among, recipients)

    async def tenants_that_messaged(self, address: str) -> list[str]:
        return await self.db.read(tenants_that_messaged, address)

    async def answered_message(self, address: str, our_number: str | None) -> dict[str, Any] | None:
        return await self.db.read(answered_message, address, our_number)

    async def tenants_reached_from_pool(self, address: str, sender: str) -> tuple[str | None, list[str]]:
        return await self.db.read(tenants_reached_from_pool, address, sender)

    async def record_reply(self, tenant_ids: Sequence[str], address: str, event: dict[str, Any]) -> None:
        await self.db.write(record_reply, tenant_ids, address, event, time.time())

    async def engagement(
        self, tenant_id: str, subjects: Sequence[tuple[str, str]], since: float
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        return await self.db.read(engagement, tenant_id, subjects, since)

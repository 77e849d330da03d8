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
from gateway.store.schema import clicks, conversions, messages, suppressions, tenants
from gateway.store.sql.common import Room, audit, dialect_insert


def add_suppressions(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert opt-outs; one already on the list stays as it was. Returns how many were new."""
    added = 0
    for row in rows:
        stmt = (
            dialect_insert(conn, suppressions)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["tenant_id", "kind", "value"])
            .returning(suppressions.c.id)
        )
        if conn.execute(stmt).first() is None:
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


def suppressed_among(conn: Connection, recipients: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """Of (tenant, kind, value) triples, those on a suppression list, with the reason."""
    grouped: dict[tuple[str, str], set[str]] = defaultdict(set)
    for tenant_id, kind, value in recipients:
        grouped[(tenant_id, kind)].add(value)
    found: dict[tuple[str, str, str], str] = {}
    for (tenant_id, kind), values in grouped.items():
        ordered = sorted(values)
        for start in range(0, len(ordered), 500):
            # Equalities plus IN on the last column, so the unique index serves the lookup.
            rows = conn.execute(
                sa.select(suppressions.c.value, suppressions.c.reason).where(
                    suppressions.c.tenant_id == tenant_id,
                    suppressions.c.kind == kind,
                    suppressions.c.value.in_(ordered[start : start + 500]),
                )
            )
            for value, reason in rows:
                found[(tenant_id, kind, value)] = reason
    return found


def tenants_that_messaged(conn: Connection, address: str) -> list[str]:
    """Tenants that sent to this address, most recent first (an opt-out reply answers them)."""
    found: list[tuple[str, str]] = []
    for tenant_id in conn.execute(sa.select(tenants.c.id)).scalars():
        last = conn.execute(
            sa.select(sa.func.max(messages.c.id)).where(
                messages.c.tenant_id == tenant_id, messages.c.to_addr == address
            )
        ).scalar()
        if last:
            found.append((last, tenant_id))
    return [tenant_id for _, tenant_id in sorted(found, reverse=True)]


def engagement(
    conn: Connection, tenant_id: str, subjects: Sequence[tuple[str, str]], since: float
) -> dict[tuple[str, str], tuple[int, bool]]:
    """Per (kind, value) recipient — kind user_id or address — the marketing messages that reached
    them since `since`, and whether any was clicked by a person or converted."""
    result: dict[tuple[str, str], tuple[int, bool]] = {}
    for kind, column in (("user_id", messages.c.user_id), ("address", messages.c.to_addr)):
        values = sorted({v for k, v in subjects if k == kind})
        if not values:
            continue
        scope = sa.and_(
            messages.c.tenant_id == tenant_id,
            column.in_(values),
            messages.c.category == "marketing",
            messages.c.created_at >= since,
            messages.c.status.in_(sorted(SENT)),
        )
        sends: dict[str, int] = {
            v: int(n) for v, n in conn.execute(sa.select(column, sa.func.count()).where(scope).group_by(column))
        }
        clicked = set(
            conn.execute(
                sa.select(column)
                .join(clicks, clicks.c.message_id == messages.c.id)
                .where(scope, clicks.c.automated.is_(False))
                .distinct()
            ).scalars()
        )
        converted = set(
            conn.execute(
                sa.select(column).join(conversions, conversions.c.message_id == messages.c.id).where(scope).distinct()
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

    async def suppressed_among(self, recipients: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        return await self.db.read(suppressed_among, recipients)

    async def tenants_that_messaged(self, address: str) -> list[str]:
        return await self.db.read(tenants_that_messaged, address)

    async def engagement(
        self, tenant_id: str, subjects: Sequence[tuple[str, str]], since: float
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        return await self.db.read(engagement, tenant_id, subjects, since)

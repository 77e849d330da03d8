"""On-call: the failure report, its samples and timeline, and requeueing what failed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.failures import FAILURE_STATUSES, REPORT_DIMENSIONS, REQUEUEABLE
from gateway.domain.models import Status
from gateway.store.records import PURGED_CONTENT
from gateway.store.schema import FAILED, events, message_keys, messages
from gateway.store.sql.common import Room, keyed
from gateway.store.wakeups import notify_work

# Every dimension of the failure report is the messages column of that name.
REPORT_COLUMNS = {name: messages.c[name] for name in REPORT_DIMENSIONS}


def _failure_scope(conn: Connection, tenant_id: str, since: float, until: float, statuses: Sequence[str]) -> Any:
    """Failed messages of a tenant in [since, until) by when they ended: the scope of every failure view."""
    return sa.and_(
        messages.c.tenant_id == tenant_id,
        _failed(conn, statuses),
        messages.c.updated_at >= since,
        messages.c.updated_at < until,
    )


def _failed(conn: Connection, statuses: Sequence[str]) -> Any:
    """In one of these failure statuses, as a condition that reaches ix_messages_tenant_failed_updated,
    which holds failures only. SQLite uses a partial index when the query names its condition word for
    word (FAILED); PostgreSQL proves it from a list of literals (a bound list would leave a generic
    plan unproven), and estimates the rows well only if the status is named once."""
    chosen = [status for status in sorted(FAILURE_STATUSES) if status in statuses]
    named = messages.c.status.in_([sa.literal_column(f"'{status}'") for status in chosen])
    if conn.dialect.name != "sqlite":
        return named
    return FAILED if len(chosen) == len(FAILURE_STATUSES) else sa.and_(FAILED, _rare(conn, named))


def _rare(conn: Connection, condition: Any) -> Any:
    """Tell SQLite's planner that few messages meet this (failures are a small share of them).
    The gateway runs no ANALYZE, and without statistics SQLite takes an equality on tenant_id for
    highly selective: it would walk (tenant_id, campaign, id) and read every message of the
    tenant rather than seek the window in ix_messages_tenant_failed_updated. PostgreSQL plans
    from its own statistics."""
    # The probability must be a literal constant, not a bound parameter.
    return sa.func.likelihood(condition, sa.literal_column("0.05")) if conn.dialect.name == "sqlite" else condition


def _by_id(conn: Connection, descending: bool = False) -> Any:
    """Order by id without letting SQLite walk an index in id order to avoid the sort: for a
    window of failed messages the seek plus a sort of what it finds beats reading every message
    of the tenant newest first. ("+id" is SQLite's way to say "not through an index".)"""
    column = sa.literal_column("+messages.id") if conn.dialect.name == "sqlite" else messages.c.id
    return column.desc() if descending else column.asc()


def _group_match(conn: Connection, group: dict[str, Any]) -> list[Any]:
    """Conditions selecting one group of the failure report (a missing value matches NULL), applied
    to the rows the failure window's index finds, not used to pick another index."""
    return [
        _filter_only(conn, REPORT_COLUMNS[name]).is_(None)
        if value is None
        else _filter_only(conn, REPORT_COLUMNS[name]) == value
        for name, value in group.items()
    ]


def _filter_only(conn: Connection, column: Any) -> Any:
    """A column SQLite must not search an index by ("+column" is its way to say so): without
    statistics it would take provider = 'x' through (provider, provider_message_id) for selective
    and read every message sent through that provider instead of the window's failures."""
    return sa.literal_column(f"+messages.{column.name}") if conn.dialect.name == "sqlite" else column


def failure_report(
    conn: Connection,
    tenant_id: str,
    since: float,
    until: float,
    group_by: Sequence[str],
    statuses: Sequence[str],
    samples: int = 3,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Failed messages in [since, until) by when they ended, grouped; counts, first/last seen, samples."""
    columns = [REPORT_COLUMNS[name].label(name) for name in group_by]
    where = _failure_scope(conn, tenant_id, since, until, statuses)
    rows = (
        conn.execute(
            sa.select(
                *columns,
                sa.func.count().label("count"),
                sa.func.min(messages.c.updated_at).label("first_seen"),
                sa.func.max(messages.c.updated_at).label("last_seen"),
            )
            .where(where)
            .group_by(*[REPORT_COLUMNS[name] for name in group_by])
            .order_by(sa.func.count().desc())
            .limit(limit)
        )
        .mappings()
        .all()
    )
    groups = []
    for row in rows:
        ids: Sequence[str] = []
        if samples:
            match = _group_match(conn, {name: row[name] for name in group_by})
            query = sa.select(messages.c.id).where(where, *match).order_by(_by_id(conn, descending=True)).limit(samples)
            ids = conn.execute(query).scalars().all()
        groups.append({**dict(row), "sample_ids": list(ids)})
    return groups


def failure_samples(
    conn: Connection,
    tenant_id: str,
    since: float,
    until: float,
    statuses: Sequence[str],
    group: dict[str, Any],
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest messages of one failure-report group (dimension name -> value, None for NULL)."""
    query = (
        sa.select(messages)
        .where(_failure_scope(conn, tenant_id, since, until, statuses), *_group_match(conn, group))
        .order_by(_by_id(conn, descending=True))
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def failure_timeline(
    conn: Connection,
    tenant_id: str,
    since: float,
    until: float,
    statuses: Sequence[str],
    buckets: int,
) -> list[tuple[int, str | None, int]]:
    """Failures per (time bucket, reason): [since, until) cut into `buckets` equal slices."""
    width = (until - since) / buckets
    offset = (messages.c.updated_at - since) / width
    # Non-negative inside the window, so truncation is the floor; PostgreSQL's cast would round.
    bucket = sa.func.floor(offset) if conn.dialect.name == "postgresql" else offset
    index = sa.cast(bucket, sa.Integer).label("bucket")
    rows = conn.execute(
        sa.select(index, messages.c.reason, sa.func.count())
        .where(_failure_scope(conn, tenant_id, since, until, statuses))
        .group_by(index, messages.c.reason)
    )
    return [(min(int(b), buckets - 1), reason, int(n)) for b, reason, n in rows]


def requeue_candidates(conn: Connection, tenant_id: str, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    # A failure group's messages (the console's requeue): seek them in the failure window's index.
    in_window = bool(filters.get("statuses"))
    if not in_window and filters.get("campaign") is not None:
        # No failure window to seek: a campaign's messages are found by their keys (which hold the
        # tenant; named on `messages` too, SQLite walked every message of the tenant).
        tenant = keyed(tenant_id, message_keys.c.campaign == filters["campaign"])
    else:
        tenant = messages.c.tenant_id == tenant_id
    query = sa.select(messages.c.id, messages.c.status, messages.c.expires_at).where(
        tenant, messages.c.content != PURGED_CONTENT
    )
    for name in ("status", "reason", "provider", "error_code", "campaign", "channel", "sender"):
        if filters.get(name) is not None:
            column = _filter_only(conn, REPORT_COLUMNS[name]) if in_window else REPORT_COLUMNS[name]
            query = query.where(column == filters[name])
    order = messages.c.id.asc()
    if in_window:
        query = query.where(_failed(conn, filters["statuses"]))
        order = _by_id(conn)
    if filters.get("since") is not None:
        query = query.where(messages.c.updated_at >= filters["since"])
    if filters.get("until") is not None:
        query = query.where(messages.c.updated_at < filters["until"])
    return [dict(r) for r in conn.execute(query.order_by(order).limit(limit)).mappings()]


def requeue(
    conn: Connection, tenant_id: str, message_ids: Sequence[str], allowed: Sequence[str], actor: str, at: float
) -> list[str]:
    """Put failed messages back in the queue; only those still in an allowed status. Audited."""
    if not message_ids:
        return []
    ids = list(
        conn.execute(
            sa.select(messages.c.id).where(
                messages.c.tenant_id == tenant_id,
                messages.c.id.in_(list(message_ids)),
                messages.c.status.in_(list(allowed)),
                # Nothing left to send once the retention policy took the content.
                messages.c.content != PURGED_CONTENT,
            )
        ).scalars()
    )
    if not ids:
        return []
    conn.execute(
        messages.update()
        .where(messages.c.id.in_(ids), messages.c.status.in_(list(allowed)))
        .values(
            status=Status.QUEUED,
            reason="requeued",
            next_attempt_at=at,
            lease_owner=None,
            lease_until=None,
            updated_at=at,
        )
    )
    conn.execute(
        events.insert(),
        [
            {
                "tenant_id": tenant_id,
                "message_id": mid,
                "at": at,
                "type": "status",
                "status": Status.QUEUED,
                "reason": "requeued",
                "detail": orjson.dumps({"by": actor}).decode(),
            }
            for mid in ids
        ],
    )
    notify_work(conn)
    return ids


class FailuresRoom(Room):
    work_available: asyncio.Event

    async def failure_report(
        self,
        tenant_id: str,
        since: float,
        until: float,
        group_by: Sequence[str],
        statuses: Sequence[str],
        samples: int = 3,
    ) -> list[dict[str, Any]]:
        """Failed messages in [since, until) grouped; `samples` newest ids of each group (0: none)."""
        return await self.db.read(failure_report, tenant_id, since, until, group_by, statuses, samples)

    async def failure_samples(
        self,
        tenant_id: str,
        since: float,
        until: float,
        statuses: Sequence[str],
        group: dict[str, Any],
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        return await self.db.read(failure_samples, tenant_id, since, until, statuses, group, limit)

    async def failure_timeline(
        self, tenant_id: str, since: float, until: float, statuses: Sequence[str], buckets: int
    ) -> list[tuple[int, str | None, int]]:
        return await self.db.read(failure_timeline, tenant_id, since, until, statuses, buckets)

    async def requeue(self, tenant_id: str, message_ids: Sequence[str], actor: str) -> list[str]:
        """Put these messages back in the queue, those still failed, unknown, undelivered or expired."""
        requeued = await self.db.write(requeue, tenant_id, message_ids, sorted(REQUEUEABLE), actor, time.time())
        if requeued:
            self.work_available.set()
        return requeued

    async def requeue_by_filter(
        self, tenant_id: str, filters: dict[str, Any], limit: int, dry_run: bool, actor: str
    ) -> dict[str, Any]:
        """What a filter matches, what of it may be requeued (and why not the rest); unless a dry
        run, requeue those. Only failed, unknown, undelivered or expired messages whose expires_at
        is still ahead are ever put back."""
        candidates = await self.db.read(requeue_candidates, tenant_id, filters, limit)
        now = time.time()
        eligible = [
            c["id"]
            for c in candidates
            if c["status"] in REQUEUEABLE and (c["expires_at"] is None or c["expires_at"] > now)
        ]
        chosen = set(eligible)
        skipped: dict[str, int] = {}
        for c in candidates:
            if c["id"] not in chosen:
                why = c["status"] if c["status"] not in REQUEUEABLE else "expired_window"
                skipped[why] = skipped.get(why, 0) + 1
        requeued: list[str] = []
        if not dry_run and eligible:
            requeued = await self.db.write(requeue, tenant_id, eligible, sorted(REQUEUEABLE), actor, now)
            self.work_available.set()
        return {
            "dry_run": dry_run,
            "matched": len(candidates),
            "requeueable": len(eligible),
            "requeued": len(requeued),
            "skipped": skipped,
            "sample_ids": eligible[:20],
        }

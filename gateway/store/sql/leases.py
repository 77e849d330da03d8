"""Claims and leases: which worker holds which job, and the fenced `sending` mark before a hand-off."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.models import DISPATCHABLE, AttemptOutcome, Job, Status
from gateway.store.database import COVERED_BY_NEXT_SYNC
from gateway.store.records import SendingMark, to_job
from gateway.store.schema import HANDING_OFF, WAITING, attempts, events, links, messages
from gateway.store.sql import batches
from gateway.store.sql.common import Room, any_of, dialect_insert, executemany_fast, fetch_compiled, listed


def _due(now: float | sa.BindParameter[float]) -> tuple[sa.ColumnElement[bool], ...]:
    """A job is due: waiting, its time come, and no live lease on it (read in due order from
    ix_messages_waiting_due, which only the literal WAITING condition reaches)."""
    return (
        WAITING,
        messages.c.next_attempt_at <= now,
        sa.or_(messages.c.lease_until.is_(None), messages.c.lease_until < now),
    )


def claim_due(conn: Connection, worker: str, now: float, limit: int, lease_until: float) -> list[Job]:
    """Lease up to `limit` due jobs to this worker; other workers skip them until the lease ends."""
    if conn.dialect.name == "sqlite":
        # The hot claim, built once and run straight on the driver (no construct, cache key or
        # per-row result processing for each batch).
        params = {"now": now, "limit": limit, "worker": worker, "lease_until": lease_until}
        return [to_job(r) for r in fetch_compiled(conn, _CLAIM_DUE, params).mappings()]
    in_due_order(conn)
    return _lease(conn, due_candidates(now, limit), worker, lease_until)


def in_due_order(conn: Connection) -> None:
    """Have this transaction's claim walk ix_messages_waiting_due in due order, stopping at its limit.
    Statistics lag a burst: taken when few jobs waited, they have PostgreSQL fetch every due job through
    a bitmap of the index and sort them all for the first few (17,600 sorted per claim of 150 in
    bench/dispatch.py)."""
    conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")


def due_candidates(now: float | sa.BindParameter[float], limit: int | sa.BindParameter[int]) -> sa.Select[Any]:
    """The earliest due jobs, read in due order from ix_messages_waiting_due."""
    return sa.select(messages.c.id).where(*_due(now)).order_by(messages.c.next_attempt_at).limit(limit)


_NOW = sa.bindparam("now", 0.0, type_=sa.Float)
# Is anything due? Asked by an idle worker on every poll, so outside any transaction (Database.peek).
ANY_DUE: sa.Select[Any] = sa.select(sa.literal_column("1")).where(*_due(_NOW)).limit(1)


# claim_due on SQLite (its single writer needs no row locks to skip).
_CLAIM_DUE = (
    messages.update()
    .where(messages.c.id.in_(due_candidates(_NOW, sa.bindparam("limit", 1, type_=sa.Integer)).scalar_subquery()))
    .values(
        lease_owner=sa.bindparam("worker", "", type_=sa.String),
        lease_until=sa.bindparam("lease_until", 0.0, type_=sa.Float),
    )
    .returning(*messages.c)
)


def _lease(conn: Connection, candidates: Any, worker: str, lease_until: float) -> list[Job]:
    """Lease the candidate rows in one statement; concurrent workers skip rows another has locked."""
    stmt = (
        messages.update()
        .where(messages.c.id.in_(candidates.with_for_update(skip_locked=True).scalar_subquery()))
        .values(lease_owner=worker, lease_until=lease_until)
        .returning(*messages.c)
    )
    return [to_job(r) for r in conn.execute(stmt).mappings()]


def claim_orphaned_handoffs(
    conn: Connection, worker: str, now: float, limit: int, lease_until: float, marked_before: float
) -> list[Job]:
    """Jobs left in `sending` by a worker whose lease ran out: it died during the hand-off, or
    stalled. Only those marked before `marked_before`: a stalled worker's provider call may still be
    under way until then, and a lookup made meanwhile could miss a message about to arrive."""
    return _lease(conn, orphaned_handoffs(now, limit, marked_before), worker, lease_until)


def orphaned_handoffs(now: float, limit: int, marked_before: float) -> sa.Select[Any]:
    """Read from ix_messages_handing_off: only the hand-offs under way, not every message."""
    return (
        sa.select(messages.c.id)
        .where(HANDING_OFF, messages.c.updated_at < marked_before, messages.c.lease_until < now)
        .limit(limit)
    )


def release_leases(conn: Connection, worker: str, message_ids: Sequence[str]) -> int:
    if not message_ids:
        return 0
    result = conn.execute(
        messages.update()
        .where(
            messages.c.id.in_(list(message_ids)),
            messages.c.lease_owner == worker,
            messages.c.status.in_(sorted(DISPATCHABLE)),
        )
        .values(lease_owner=None, lease_until=None)
    )
    return int(result.rowcount or 0)


def renew_leases(conn: Connection, worker: str, message_ids: Sequence[str], lease_until: float) -> int:
    """Keep jobs this worker still holds (waiting for throughput, or in a slow hand-off) its own."""
    renewed = 0
    for start in range(0, len(message_ids), 500):
        result = conn.execute(
            messages.update()
            .where(messages.c.id.in_(list(message_ids[start : start + 500])), messages.c.lease_owner == worker)
            .values(lease_until=lease_until)
        )
        renewed += int(result.rowcount or 0)
    return renewed


# The hot per-job updates are built once: SQLAlchemy then finds their compiled form by a cache key
# memoised on the statement, instead of building the construct and its key again for every batch.
_MARK_SENDING = (
    messages.update()
    .where(messages.c.id == sa.bindparam("b_id"))
    .values(
        status=Status.SENDING,
        provider=sa.bindparam("b_provider"),
        sender=sa.bindparam("b_sender"),
        attempt_count=sa.bindparam("b_attempt"),
        updated_at=sa.bindparam("b_at"),
        lease_until=sa.bindparam("b_lease"),
    )
)


# Who holds each job a batch of marks names (SQLite, under the write lock).
_OWNERS = sa.select(messages.c.id, messages.c.lease_owner).where(any_of(messages.c.id, "ids"))


def mark_sending(conn: Connection, marks: Sequence[SendingMark], lease_until: float) -> list[bool]:
    """Mark jobs `sending`; per mark, whether it held: a job whose lease another worker took
    meanwhile (this one stalled past its lease) is that worker's now, and must not be sent here."""
    if not marks:
        return []
    if conn.dialect.name == "postgresql":
        held = batches.mark_sending(conn, marks, lease_until)
        _register_links(conn, [m for m in marks if m.message_id in held])
        return [m.message_id in held for m in marks]
    if any(m.worker is not None for m in marks):
        fenced = listed(conn, [m.message_id for m in marks if m.worker is not None])
        owner = {job: holder for job, holder in fetch_compiled(conn, _OWNERS, {"ids": fenced}).all()}
        # Each mark against its own worker's lease (SQLite: the write lock is held from BEGIN
        # IMMEDIATE, so no claim comes between this read and the update).
        ours = [m.worker is None or owner.get(m.message_id) == m.worker for m in marks]
        marks = [m for m, kept in zip(marks, ours, strict=True) if kept]
        if not marks:
            return ours
    else:
        ours = [True] * len(marks)
    _register_links(conn, marks)
    # SQLite runs this path: rows go to the driver as tuples (executemany_fast), not through
    # SQLAlchemy's per-row parameter processing, which cost more than the row's own write.
    executemany_fast(
        conn,
        "mark_sending",
        _MARK_SENDING,
        [
            {
                "b_id": m.message_id,
                "b_provider": m.provider,
                "b_sender": m.sender,
                "b_attempt": m.attempt,
                "b_at": m.at,
                "b_lease": lease_until,
            }
            for m in marks
        ],
    )
    executemany_fast(
        conn,
        "mark_sending.attempts",
        attempts.insert(),
        [
            {
                "message_id": m.message_id,
                "number": m.attempt,
                "channel": m.channel,
                "provider": m.provider,
                "sender": m.sender,
                "started_at": m.at,
                "outcome": AttemptOutcome.PENDING,
            }
            for m in marks
        ],
    )
    executemany_fast(
        conn,
        "events",
        events.insert(),
        [
            {
                "tenant_id": m.tenant_id,
                "message_id": m.message_id,
                "at": m.at,
                "type": "status",
                "status": Status.SENDING,
                "reason": f"attempt {m.attempt}",
                "detail": orjson.dumps({"provider": m.provider}).decode(),
            }
            for m in marks
        ],
    )
    return ours


def _register_links(conn: Connection, marks: Sequence[SendingMark]) -> None:
    """In the same commit as `sending`: a link in a message that left can always be resolved.
    A campaign link is registered by the first message that carries it; the rest find it there."""
    tracked = [link for m in marks for link in m.links]
    if tracked:
        unique = list({link["token"]: link for link in tracked}.values())
        conn.execute(dialect_insert(conn, links).on_conflict_do_nothing(index_elements=["token"]), unique)


class LeasesRoom(Room):
    async def claim_due(self, worker: str, limit: int, lease_seconds: float) -> list[Job]:
        now = time.time()
        if await self.db.peek(ANY_DUE, {"now": now}) == []:
            return []  # nothing due: no write transaction for an idle poll
        # A claim promises nothing outside the database, and the `sending` mark that comes before any
        # send is synced, which puts every earlier commit on disk with it (a claim lost with the machine
        # leaves its jobs to be claimed again). Synced inside its commit on SQLite, it held the write
        # lock through an fsync on every claim; beside the loop it also takes its turn after waiting
        # accepts, as the hand-offs do.
        return await self.db.write_beside_loop(
            claim_due, worker, now, limit, now + lease_seconds, synchronous=COVERED_BY_NEXT_SYNC
        )

    async def claim_orphaned_handoffs(
        self, worker: str, limit: int, lease_seconds: float, settle_seconds: float
    ) -> list[Job]:
        """Hand-offs whose worker's lease ran out, marked `sending` at least settle_seconds ago."""
        now = time.time()
        return await self.db.write(
            claim_orphaned_handoffs, worker, now, limit, now + lease_seconds, now - settle_seconds
        )

    async def renew_leases(self, worker: str, message_ids: Sequence[str], lease_seconds: float) -> int:
        return await self.db.write(renew_leases, worker, message_ids, time.time() + lease_seconds)

    async def release_leases(self, worker: str, message_ids: Sequence[str]) -> int:
        return await self.db.write(release_leases, worker, message_ids)

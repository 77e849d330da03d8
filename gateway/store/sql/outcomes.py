"""What happened to each job: attempt outcomes, and sent jobs moved on when their receipt is late."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.models import DISPATCHABLE, RECEIPTED, Job, Status
from gateway.domain.receipts import SENT_HOLDS_AGAINST
from gateway.domain.routing import INTERCHANGEABLE
from gateway.store.records import Outcome, ReceiptRecord, to_job
from gateway.store.schema import attempts, events, message_keys, messages
from gateway.store.sql import batches
from gateway.store.sql.common import Room, any_of, executemany_fast, fetch_compiled, insert_rows, listed
from gateway.store.sql.receipts import apply_held_receipts, record_parts, serialise_receipt_matching
from gateway.store.wakeups import notify_work


def unreceipted_sql(dialect: str, channels: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The no-receipt scan: only jobs whose fallback list names a channel that takes their address
    (the others could not move, and would crowd the ones that can out of the batch)."""
    hint = " INDEXED BY ix_messages_receipt_due" if dialect == "sqlite" else ""
    terms, params = [], {}
    for i, channel in enumerate(sorted(channels)):
        targets = sorted(INTERCHANGEABLE.get(channel, ()))
        params[f"c{i}"] = channel
        # A recipient's job's fallback channels were each given an address at accept (with `to`, only
        # channels sharing it were accepted): whatever it names, it can move.
        alternatives = ["user_id IS NOT NULL"]
        for j, target in enumerate(targets):
            params[f"f{i}_{j}"] = f"%{target}%"
            alternatives.append(f"fallback LIKE :f{i}_{j}")
        terms.append(f"(channel = :c{i} AND ({' OR '.join(alternatives)}))")
    movable = " OR ".join(terms) or "1 = 0"
    sql = (
        f"SELECT * FROM messages{hint} WHERE status = 'sent' AND fallback IS NOT NULL"
        f" AND next_attempt_at <= :now AND ({movable}) ORDER BY next_attempt_at LIMIT :limit"
    )
    return sql, params


def unreceipted_sends(conn: Connection, channels: Sequence[str], now: float, limit: int) -> list[Job]:
    """Sent jobs that can fall back whose receipt deadline (next_attempt_at, set when they were
    sent) has passed with no receipt: a receipt would have moved them past `sent`."""
    # Served by the partial index ix_messages_receipt_due, whose predicate the WHERE repeats word
    # for word; SQLite, without range statistics, would pick ix_messages_due (every sent row) unless told.
    sql, params = unreceipted_sql(conn.dialect.name, channels)
    rows = conn.execute(sa.text(sql), {**params, "now": now, "limit": limit})
    return [to_job(r) for r in rows.mappings()]


def fall_back_unreceipted(conn: Connection, moves: Sequence[tuple[Outcome, float]]) -> list[str]:
    """Move each job to its fallback channel, only if it is still the same unreceipted hand-off:
    still `sent` with the deadline that was seen. A receipt, a requeue or another worker that got
    there first leaves the row alone; only the process whose update matched writes the event.
    The message keeps the earlier provider id, so a late receipt for it still finds the message."""
    moved: list[str] = []
    for outcome, deadline in moves:
        result = conn.execute(
            messages.update()
            .where(
                messages.c.id == outcome.message_id,
                messages.c.status == Status.SENT,
                messages.c.next_attempt_at == deadline,
            )
            .values(
                status=outcome.status,
                reason=outcome.reason,
                channel=outcome.channel,
                to_addr=outcome.to_addr or messages.c.to_addr,
                fallback=outcome.fallback,
                next_attempt_at=outcome.next_attempt_at,
                lease_owner=None,
                lease_until=None,
                updated_at=outcome.at,
            )
        )
        if result.rowcount == 1:
            moved.append(outcome.message_id)
            conn.execute(events.insert(), [_status_event(outcome)])
            rekey(conn, [outcome])
    if moved:
        notify_work(conn)
    return moved


# The final statuses a receipt can set; no later outcome of the same hand-off moves a job out of them.
_RECEIPTED = sa.or_(*(messages.c.status == status for status in sorted(RECEIPTED)))


# When a message keeps its status against an outcome: `receipts.outcome_keeps_status` (domain), in
# SQL so the UPDATE judges the status it finds.
_KEEP = sa.or_(
    _RECEIPTED,
    sa.and_(
        messages.c.status == Status.SENT,
        # Equalities, not IN: an expanding IN cannot run in an executemany.
        sa.or_(*(sa.bindparam("b_status", type_=sa.String) == status for status in sorted(SENT_HOLDS_AGAINST))),
    ),
)


# The hot per-job updates are built once (their compiled form found by a cache key memoised on the
# statement, instead of the construct and its key built again for every batch).
_RECORD_OUTCOME = (
    messages.update()
    .where(messages.c.id == sa.bindparam("b_id"))
    .values(
        # A receipt may already have moved the job past `sent`; never move it back.
        # A receipt is the provider's word on what reached the handset: once one has put the job
        # at delivered or undelivered, no later outcome of the hand-off (sent, unknown, a retry)
        # moves it back down the lattice.
        status=sa.case((_KEEP, messages.c.status), else_=sa.bindparam("b_status")),
        reason=sa.case((_KEEP, messages.c.reason), else_=sa.bindparam("b_reason")),
        provider_message_id=sa.func.coalesce(sa.bindparam("b_pmid"), messages.c.provider_message_id),
        provider=sa.func.coalesce(sa.bindparam("b_provider", type_=sa.String), messages.c.provider),
        channel=sa.func.coalesce(sa.bindparam("b_channel", type_=sa.String), messages.c.channel),
        to_addr=sa.func.coalesce(sa.bindparam("b_to", type_=sa.String), messages.c.to_addr),
        fallback=sa.case(
            (sa.bindparam("b_channel", type_=sa.String).is_(None), messages.c.fallback),
            else_=sa.bindparam("b_fallback", type_=sa.String),
        ),
        # The code and message belong with the reason: a kept receipt keeps all three.
        error_code=sa.case((_KEEP, messages.c.error_code), else_=sa.bindparam("b_error_code")),
        error_message=sa.case((_KEEP, messages.c.error_message), else_=sa.bindparam("b_error_message")),
        next_attempt_at=sa.func.coalesce(sa.bindparam("b_next", type_=sa.Float), messages.c.next_attempt_at),
        lease_owner=None,
        lease_until=None,
        updated_at=sa.bindparam("b_at"),
    )
)
_FINISH_ATTEMPT = (
    attempts.update()
    .where(attempts.c.message_id == sa.bindparam("b_id"), attempts.c.number == sa.bindparam("b_n"))
    .values(
        finished_at=sa.bindparam("b_at"),
        outcome=sa.bindparam("b_outcome"),
        error_kind=sa.bindparam("b_kind"),
        error_code=sa.bindparam("b_code"),
        error_message=sa.bindparam("b_msg"),
        provider_message_id=sa.bindparam("b_pmid"),
        cost=sa.bindparam("b_cost", type_=sa.Float),
        currency=sa.bindparam("b_currency", type_=sa.String),
    )
)


def record_outcomes(conn: Connection, outcomes: Sequence[Outcome]) -> list[tuple[str, ReceiptRecord]]:
    """Write what happened to each job; returns the held receipts applied on the way (message id,
    receipt): they came before their send was recorded."""
    if not outcomes:
        return []
    serialise_receipt_matching(conn, {o.provider for o in outcomes if o.provider and o.provider_message_id})
    if conn.dialect.name == "postgresql":
        batches.record_outcomes(conn, outcomes, [_status_event(o)["detail"] for o in outcomes])
    else:
        _record_each(conn, outcomes)
    rekey(conn, outcomes)
    sent = [o for o in outcomes if o.provider_message_id and o.provider]
    record_parts(conn, sent)
    return apply_held_receipts(conn, sent) if sent else []


_REKEY = (
    message_keys.update()
    .where(message_keys.c.message_id == sa.bindparam("b_id"))
    .values(to_addr=sa.bindparam("b_to", type_=sa.String))
)


def rekey(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    """A job that fell back to another channel is found by its new address (as its row now says)."""
    moved = [{"b_id": o.message_id, "b_to": o.to_addr} for o in outcomes if o.to_addr is not None]
    if moved:
        executemany_fast(conn, "rekey", _REKEY, moved)


def _record_each(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    """The per-row form (SQLite: in-process, an executemany costs no round trips)."""
    executemany_fast(
        conn,
        "record_outcomes",
        _RECORD_OUTCOME,
        [
            {
                "b_id": o.message_id,
                "b_status": o.status,
                "b_reason": o.reason,
                "b_pmid": o.provider_message_id,
                "b_provider": o.provider,
                "b_channel": o.channel,
                "b_to": o.to_addr,
                "b_fallback": o.fallback,
                "b_error_code": o.error_code,
                "b_error_message": o.error_message,
                "b_next": o.next_attempt_at,
                "b_at": o.at,
            }
            for o in outcomes
        ],
    )
    tried = [o for o in outcomes if o.attempt_outcome is not None and o.attempt is not None]
    if tried:
        executemany_fast(
            conn,
            "record_outcomes.attempts",
            _FINISH_ATTEMPT,
            [
                {
                    "b_id": o.message_id,
                    "b_n": o.attempt,
                    "b_at": o.at,
                    "b_outcome": o.attempt_outcome,
                    "b_kind": o.error_kind,
                    "b_code": o.error_code,
                    "b_msg": o.error_message,
                    "b_pmid": o.provider_message_id,
                    "b_cost": o.cost,
                    "b_currency": o.currency,
                }
                for o in tried
            ],
        )
    new_events = [_status_event(o) for o in outcomes]
    later = [o.message_id for o in outcomes if o.status not in RECEIPTED]
    if later:
        # A receipt may have overtaken the hand-off's own commit: then the status stays where the
        # receipt put it, and the event says what the attempt did, not a step back down the lattice.
        overtaken = set(fetch_compiled(conn, _OVERTAKEN, {"ids": listed(conn, later)}).scalars())
        for event in new_events:
            if event["message_id"] in overtaken and event["status"] not in RECEIPTED:
                event["type"] = "attempt.accepted" if event["status"] == Status.SENT else f"attempt.{event['status']}"
                event["status"] = None
    insert_rows(conn, events, new_events)


# Of the jobs an outcome batch names, those a receipt has already moved to a final status (SQLite).
_OVERTAKEN = sa.select(messages.c.id).where(any_of(messages.c.id, "ids"), _RECEIPTED)


def _status_event(o: Outcome) -> dict[str, Any]:
    detail = dict(o.detail)
    for name in ("provider", "provider_message_id", "error_kind", "error_code", "error_message"):
        value = getattr(o, name)
        if value is not None:
            detail[name] = value
    if o.next_attempt_at is not None and o.status in DISPATCHABLE:
        detail["next_attempt_at"] = o.next_attempt_at
    if o.attempt is not None:
        detail["attempt"] = o.attempt
    return {
        "tenant_id": o.tenant_id,
        "message_id": o.message_id,
        "at": o.at,
        "type": "status",
        "status": o.status,
        "reason": o.reason,
        "detail": orjson.dumps(detail).decode() if detail else None,
    }


class OutcomesRoom(Room):
    async def unreceipted_sends(self, channels: Sequence[str], limit: int) -> list[Job]:
        return await self.db.read(unreceipted_sends, channels, time.time(), limit)

    async def fall_back_unreceipted(self, moves: Sequence[tuple[Outcome, float]]) -> list[str]:
        return await self.db.write(fall_back_unreceipted, moves)

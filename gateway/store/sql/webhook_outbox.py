"""The audit log as the outbox of status callbacks: every state change commits its event row in the
transaction that made it, so reading `events` in id order misses nothing and invents nothing.

One worker at a time reads it (a lease on the `webhook_outbox` row, fenced on its owner) and fans
each event out to the subscriptions that want it, as `webhook_deliveries` rows (unique per endpoint
and event, so a fan-out repeated after a crash adds nothing). Workers then claim due deliveries with
leases (`FOR UPDATE SKIP LOCKED` on PostgreSQL), the first still-pending event of a message only,
so one message's events reach a receiver in order.

On PostgreSQL ids are taken before commit: a reader can see id 12 committed while 11 is still in
flight. The reader stops at such a gap until it fills, or until it has lasted `gap_seconds` (a
rolled-back transaction leaves a hole for ever). SQLite has one writer, and no such gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.webhooks import (
    ALL_EVENTS,
    EVERY_TENANT,
    KIND_TO_TYPE,
    MESSAGE_STATUSES,
    REPLY_INTENTS_WITH_SUPPRESSION,
    REPLY_KIND,
    STATUS_KIND,
    DeliveryPolicy,
    DeliveryState,
    EndpointState,
    pause_reason,
)
from gateway.store.schema import events, messages, webhook_deliveries, webhook_endpoints, webhook_outbox
from gateway.store.sql.common import Room, executemany_fast
from gateway.store.webhook_records import ClaimedDelivery, DeliveryResult

_D = webhook_deliveries
_E = webhook_endpoints
OUTBOX = "events"

# Asked by an idle process on every poll, outside any transaction (Database.peek): with nothing new
# in the outbox and nothing due, no write transaction is opened (each one takes SQLite's one writer
# from the accepts and the dispatch). Before the outbox's first read (no position yet) any event past
# the oldest subscription's start counts.
# In id order, so that PostgreSQL seeks the position in the primary key: unordered, it planned a scan
# of `events` from its start, which at the position (nothing new) read the whole table on every poll.
# Only events some subscription may want count: with none (most deployments of the embedded default)
# the outbox is not read at all, however many events the dispatch writes (it was a write transaction
# per poll: 0.2 ms of a message's 3 ms at 100 msg/s on SQLite, docs/BENCHMARKS.md).
_NOW = sa.bindparam("now", 0.0, type_=sa.Float)
_OLDEST_SUBSCRIPTION = sa.select(sa.func.min(_E.c.after_event_id)).scalar_subquery()
_POSITION = sa.func.coalesce(
    sa.select(webhook_outbox.c.last_event_id).where(webhook_outbox.c.name == OUTBOX).scalar_subquery(), -1
)
# One bound, NULL without a subscription (nothing is anyone's news). Two bounds on the id, SQLite seeks
# by one and filters by the other: with the second NULL, each poll read every event past the position.
_NEWS_AFTER = sa.case(
    (_OLDEST_SUBSCRIPTION.is_(None), sa.null()),
    (_OLDEST_SUBSCRIPTION > _POSITION, _OLDEST_SUBSCRIPTION),
    else_=_POSITION,
)
ANY_NEW_EVENT: sa.Select[Any] = (
    sa.select(sa.literal_column("1")).where(events.c.id > _NEWS_AFTER).order_by(events.c.id).limit(1)
)
ANY_DELIVERY_DUE: sa.Select[Any] = (
    sa.select(sa.literal_column("1")).where(_D.c.state == DeliveryState.PENDING, _D.c.next_attempt_at <= _NOW).limit(1)
)


def _take_reader_lease(conn: Connection, owner: str, now: float, lease_until: float, start: int) -> int | None:
    """The outbox position, with the reader's lease taken or renewed (`start` on the first read); None
    while another holds it."""
    taken = conn.execute(
        webhook_outbox.update()
        .where(
            webhook_outbox.c.name == OUTBOX,
            sa.or_(
                webhook_outbox.c.owner.is_(None),
                webhook_outbox.c.owner == owner,
                webhook_outbox.c.lease_until < now,
            ),
        )
        .values(owner=owner, lease_until=lease_until)
        .returning(webhook_outbox.c.last_event_id)
    ).first()
    if taken is not None:
        return int(taken[0])
    if conn.execute(sa.select(webhook_outbox.c.name).where(webhook_outbox.c.name == OUTBOX)).first() is not None:
        return None
    conn.execute(webhook_outbox.insert().values(name=OUTBOX, last_event_id=start, owner=owner, lease_until=lease_until))
    return start


def _readable(ids: Sequence[int], position: int, now: float, gaps: dict[int, float], gap_seconds: float) -> list[int]:
    """The ids up to the first gap younger than gap_seconds (ids still being committed elsewhere)."""
    readable = []
    expected = position + 1
    for event_id in ids:
        if event_id > expected:
            first_seen = gaps.setdefault(expected, now)
            if now - first_seen < gap_seconds:
                break
        readable.append(event_id)
        expected = event_id + 1
    for missing in [gap for gap in gaps if gap <= expected - 1]:
        del gaps[missing]
    return readable


def _type_case() -> str:
    """domain.webhooks.event_type as SQL over an `events` row: the subscriber's event type, or NULL."""
    statuses = ", ".join(f"'{status}'" for status in MESSAGE_STATUSES)
    intents = ", ".join(f"'{intent}'" for intent in REPLY_INTENTS_WITH_SUPPRESSION)
    kinds = " ".join(f"WHEN type = '{kind}' THEN '{type_}'" for kind, type_ in KIND_TO_TYPE.items())
    return (
        f"CASE WHEN type = '{STATUS_KIND}' AND status IN ({statuses}) THEN 'message.' || status"
        f" WHEN type = '{REPLY_KIND}' AND COALESCE(reason, '') NOT IN ({intents}) THEN 'inbound' {kinds} END"
    )


# The subscription wants the type: its JSON list holds it or "*" (domain.webhooks.wanted).
_WANTED = {
    "sqlite": f"EXISTS (SELECT 1 FROM json_each(w.events) WHERE value IN ('{ALL_EVENTS}', e.kind))",
    "postgresql": f"jsonb_exists_any(CAST(w.events AS jsonb), ARRAY['{ALL_EVENTS}', e.kind])",
}
_FAN_OUT = {
    dialect: sa.text(
        f"""
        INSERT INTO webhook_deliveries
            (endpoint_id, event_id, type, message_id, event_at, state, attempts, next_attempt_at, created_at)
        SELECT w.id, e.id, e.kind, e.message_id, e.at, '{DeliveryState.PENDING}', 0, :now, :now
        FROM (
            SELECT id, tenant_id, NULLIF(message_id, '') AS message_id, at, {_type_case()} AS kind
            FROM events WHERE id > :after AND id <= :upto
        ) AS e
        JOIN webhook_endpoints AS w
            ON e.id > w.after_event_id AND (w.tenant_id = e.tenant_id OR e.tenant_id = '{EVERY_TENANT}')
        WHERE e.kind IS NOT NULL AND {wanted}
        ORDER BY e.id, w.id
        ON CONFLICT (endpoint_id, event_id) DO NOTHING
        """
    )
    for dialect, wanted in _WANTED.items()
}


def fan_out(
    conn: Connection, owner: str, now: float, lease_until: float, limit: int, gaps: dict[int, float], gap_seconds: float
) -> int:
    """Read the next events past the outbox position and add a delivery for each subscription that
    wants one, in one INSERT ... SELECT over the events read; returns how many events were read (0:
    caught up, or another worker reads)."""
    # Nothing from before the oldest subscription's start is anyone's news: the first read starts there,
    # and so does a read after a time without subscriptions (the position stayed where it was, however
    # far the events went meanwhile). Without any, the lease is not even taken.
    oldest = conn.execute(sa.select(_OLDEST_SUBSCRIPTION)).scalar()
    if oldest is None:
        return 0
    position = _take_reader_lease(conn, owner, now, lease_until, int(oldest))
    if position is None:
        return 0
    position = max(position, int(oldest))
    ids = conn.execute(
        sa.select(events.c.id).where(events.c.id > position).order_by(events.c.id).limit(limit)
    ).scalars()
    readable = _readable(list(ids), position, now, gaps, gap_seconds)
    if not readable:
        return 0
    conn.execute(_FAN_OUT[conn.dialect.name], {"after": position, "upto": readable[-1], "now": now})
    conn.execute(
        webhook_outbox.update()
        .where(webhook_outbox.c.name == OUTBOX, webhook_outbox.c.owner == owner)
        .values(last_event_id=readable[-1])
    )
    return len(readable)


def claim(conn: Connection, owner: str, now: float, limit: int, lease_until: float) -> list[ClaimedDelivery]:
    """Lease due deliveries of active endpoints, each the first of its message still pending there."""
    earlier = sa.alias(_D, "earlier")
    head_of_message = ~sa.exists().where(
        earlier.c.endpoint_id == _D.c.endpoint_id,
        earlier.c.message_id == _D.c.message_id,
        earlier.c.state == DeliveryState.PENDING,
        earlier.c.event_id < _D.c.event_id,
    )
    due = (
        sa.select(_D.c.id)
        .join(_E, _E.c.id == _D.c.endpoint_id)
        .where(
            _D.c.state == DeliveryState.PENDING,
            _D.c.next_attempt_at <= now,
            sa.or_(_D.c.lease_until.is_(None), _D.c.lease_until < now),
            _E.c.state == EndpointState.ACTIVE,
            head_of_message,
        )
        .order_by(_D.c.next_attempt_at, _D.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=_D)
        .correlate(None)
    )
    leased = conn.execute(
        _D.update()
        .where(_D.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_until=lease_until)
        .returning(_D.c.id)
    ).scalars()
    ids = sorted(leased)
    if not ids:
        return []
    rows = conn.execute(
        sa.select(
            _D.c.id.label("delivery_id"),
            _D.c.endpoint_id,
            _D.c.type.label("delivery_type"),
            _D.c.attempts,
            _D.c.first_attempt_at,
            _E.c.tenant_id,
            _E.c.url,
            _E.c.secret,
            _E.c.previous_secret,
            _E.c.previous_until,
            events.c.id,
            events.c.message_id,
            events.c.at,
            events.c.status,
            events.c.reason,
            events.c.detail,
            messages.c.channel,
            messages.c.campaign,
            messages.c.variant,
            messages.c.user_id,
        )
        .select_from(
            _D.join(_E, _E.c.id == _D.c.endpoint_id)
            .join(events, events.c.id == _D.c.event_id)
            .outerjoin(messages, messages.c.id == _D.c.message_id)
        )
        .where(_D.c.id.in_(ids))
        .order_by(_D.c.id)
    ).mappings()
    return [_claimed(row, now) for row in rows]


def _claimed(row: Any, now: float) -> ClaimedDelivery:
    secrets: tuple[str, ...] = (row["secret"],)
    if row["previous_secret"] and (row["previous_until"] or 0) > now:
        secrets += (row["previous_secret"],)
    event_fields = ("id", "message_id", "at", "status", "reason", "detail", "channel", "campaign", "variant", "user_id")
    return ClaimedDelivery(
        id=row["delivery_id"],
        endpoint_id=row["endpoint_id"],
        tenant_id=row["tenant_id"],
        url=row["url"],
        secrets=secrets,
        type=row["delivery_type"],
        attempts=row["attempts"],
        first_attempt_at=row["first_attempt_at"],
        event={name: row[name] for name in event_fields},
    )


_RECORD = (
    _D.update()
    .where(_D.c.id == sa.bindparam("b_id"))
    .values(
        state=sa.bindparam("b_state"),
        attempts=_D.c.attempts + 1,
        first_attempt_at=sa.func.coalesce(_D.c.first_attempt_at, sa.bindparam("b_first")),
        next_attempt_at=sa.bindparam("b_next"),
        last_status_code=sa.bindparam("b_code"),
        last_error=sa.bindparam("b_error"),
        delivered_at=sa.bindparam("b_delivered"),
        lease_owner=None,
        lease_until=None,
    )
)


def record_results(
    conn: Connection, owner: str, results: Sequence[DeliveryResult], policy: DeliveryPolicy
) -> list[tuple[str, str]]:
    """Each attempt's result, only where this worker still holds the lease; the endpoints' counters;
    the endpoints paused by their failure streak (returned with the reason)."""
    if not results:
        return []
    ids = [r.delivery_id for r in results]
    mine = set(conn.execute(sa.select(_D.c.id).where(_D.c.id.in_(ids), _D.c.lease_owner == owner)).scalars())
    # In id order, as a replay locks them: two writers of the same rows then wait, not deadlock.
    held = sorted((r for r in results if r.delivery_id in mine), key=lambda r: r.delivery_id)
    if held:
        executemany_fast(conn, "webhook-results", _RECORD, [_result_row(r) for r in held])
    return _count(conn, held, policy)


def _result_row(r: DeliveryResult) -> dict[str, Any]:
    state = DeliveryState.DELIVERED if r.delivered else (DeliveryState.PENDING if r.next_at else DeliveryState.DEAD)
    return {
        "b_id": r.delivery_id,
        "b_state": str(state),
        "b_first": r.first_attempt_at,
        "b_next": r.next_at if r.next_at is not None else r.at,
        "b_code": r.status_code,
        "b_error": (r.error or "")[:512] or None,
        "b_delivered": r.at if r.delivered else None,
    }


def exchange(
    conn: Connection,
    owner: str,
    results: Sequence[DeliveryResult],
    policy: DeliveryPolicy,
    now: float,
    limit: int,
    lease_until: float,
) -> tuple[list[ClaimedDelivery], list[tuple[str, str]]]:
    """Record what came back and claim what is due next, in one transaction (one commit per round)."""
    paused = record_results(conn, owner, results, policy)
    return (claim(conn, owner, now, limit, lease_until) if limit > 0 else []), paused


def _count(conn: Connection, results: Sequence[DeliveryResult], policy: DeliveryPolicy) -> list[tuple[str, str]]:
    paused = []
    for endpoint_id in sorted({r.endpoint_id for r in results}):
        mine = [r for r in results if r.endpoint_id == endpoint_id]
        row = conn.execute(sa.select(_E).where(_E.c.id == endpoint_id)).mappings().first()
        if row is None:
            continue
        streak, since = row["consecutive_failures"], row["failing_since"]
        last_ok = row["last_success_at"]
        last_failed = row["last_failure_at"]
        for r in sorted(mine, key=lambda r: r.at):
            if r.delivered:
                streak, since, last_ok = 0, None, r.at
            else:
                streak, since, last_failed = streak + 1, since if since is not None else r.at, r.at
        ok = sum(r.delivered for r in mine)
        values: dict[str, Any] = {
            "delivered_count": _E.c.delivered_count + ok,
            "failed_count": _E.c.failed_count + (len(mine) - ok),
            "consecutive_failures": streak,
            "failing_since": since,
            "last_success_at": last_ok,
            "last_failure_at": last_failed,
        }
        reason = pause_reason(policy, consecutive_failures=streak, failing_since=since, now=mine[-1].at)
        if reason is not None and row["state"] == EndpointState.ACTIVE:
            values.update(state=EndpointState.PAUSED, paused_reason=reason, paused_at=mine[-1].at)
            paused.append((endpoint_id, reason))
        conn.execute(_E.update().where(_E.c.id == endpoint_id).values(**values))
    return paused


class WebhookOutboxRoom(Room):
    async def fan_out_events(
        self, owner: str, now: float, lease_until: float, limit: int, gaps: dict[int, float], gap_seconds: float
    ) -> int:
        if await self.db.peek(ANY_NEW_EVENT, {}) == []:
            return 0
        return await self.db.write_beside_loop(fan_out, owner, now, lease_until, limit, gaps, gap_seconds)

    async def claim_webhook_deliveries(
        self, owner: str, now: float, limit: int, lease_until: float
    ) -> list[ClaimedDelivery]:
        return await self.db.write(claim, owner, now, limit, lease_until)

    async def record_webhook_results(
        self, owner: str, results: Sequence[DeliveryResult], policy: DeliveryPolicy
    ) -> list[tuple[str, str]]:
        return await self.db.write(record_results, owner, results, policy)

    async def exchange_webhook_deliveries(
        self,
        owner: str,
        results: Sequence[DeliveryResult],
        policy: DeliveryPolicy,
        now: float,
        limit: int,
        lease_until: float,
    ) -> tuple[list[ClaimedDelivery], list[tuple[str, str]]]:
        if not results and await self.db.peek(ANY_DELIVERY_DUE, {"now": now}) == []:
            return [], []
        return await self.db.write_beside_loop(exchange, owner, results, policy, now, limit, lease_until)

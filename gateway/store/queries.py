"""Store functions: synchronous SQLAlchemy Core against a Connection, run by gateway.store.database.

Each function is one unit of work; the caller decides the transaction (one per call).
"""

from __future__ import annotations

import dataclasses
import secrets as pysecrets
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.domain.ids import message_id_floor
from gateway.domain.models import RECEIPT_RANK, Status
from gateway.domain.routing import INTERCHANGEABLE
from gateway.store.records import AcceptOutcome, MessageFilter, Outcome, ReceiptRecord, SendingMark
from gateway.store.schema import (
    api_keys,
    attempts,
    blocklists,
    clicks,
    conversions,
    events,
    links,
    message_parts,
    messages,
    receipts,
    secrets,
    suppressions,
    tenants,
)

DISPATCHABLE = ("queued", "deferred")


def _insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def ping(conn: Connection) -> bool:
    return conn.execute(sa.text("SELECT 1")).scalar() == 1


def _audit(
    conn: Connection,
    tenant_id: str,
    at: float,
    kind: str,
    reason: str | None,
    detail: str | None = None,
    message_id: str | None = None,
) -> None:
    """One entry in the audit log for an act that is not a status change (no status)."""
    conn.execute(
        events.insert().values(
            tenant_id=tenant_id, message_id=message_id, at=at, type=kind, status=None, reason=reason, detail=detail
        )
    )


# --- tenants, keys, secrets -------------------------------------------------------------------


def ensure_tenant(conn: Connection, tenant_id: str, name: str | None = None) -> None:
    stmt = _insert(conn, tenants).values(id=tenant_id, name=name or tenant_id, created_at=time.time())
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


def insert_api_key(conn: Connection, row: dict[str, Any]) -> None:
    ensure_tenant(conn, row["tenant_id"])
    conn.execute(api_keys.insert().values(**row))


def upsert_provisioned_key(conn: Connection, row: dict[str, Any]) -> bool:
    """Store a key handed in by the operator; True when it was new."""
    ensure_tenant(conn, row["tenant_id"])
    exists = conn.execute(sa.select(api_keys.c.id).where(api_keys.c.key_hash == row["key_hash"])).first()
    if exists:
        return False
    conn.execute(api_keys.insert().values(**row))
    return True


def count_api_keys(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar() or 0)


def find_api_key(conn: Connection, key_hash: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == key_hash)).mappings().first()
    return dict(row) if row else None


def list_api_keys(conn: Connection, tenant_id: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(api_keys).order_by(api_keys.c.created_at)
    if tenant_id:
        query = query.where(api_keys.c.tenant_id == tenant_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def revoke_api_key(conn: Connection, key_id: str, at: float) -> bool:
    result = conn.execute(
        api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=at)
    )
    return bool(result.rowcount)


def record_key_use(conn: Connection, uses: Sequence[tuple[str, str, int, float]], at: float) -> None:
    """(key id, tenant, requests, last seen): one audit event per key per flush, not per request."""
    for key_id, tenant_id, count, last in uses:
        conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=last))
        _audit(
            conn,
            tenant_id,
            at,
            "api_key.used",
            key_id,
            detail=orjson.dumps({"requests": count, "last_used_at": last}).decode(),
        )


def get_or_create_secret(conn: Connection, name: str) -> str:
    """A secret shared by every process on this store (e.g. the sandbox's receipt signing key)."""
    stmt = _insert(conn, secrets).values(name=name, value=pysecrets.token_hex(32), created_at=time.time())
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    return str(conn.execute(sa.select(secrets.c.value).where(secrets.c.name == name)).scalar_one())


# --- accept -----------------------------------------------------------------------------------


_COMPILED: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[str, ...]]] = {}


def _executemany_fast(conn: Connection, name: str, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
    """executemany of a Core statement without SQLAlchemy's per-row parameter processing.

    The statement is compiled once per dialect (so it stays one SQL layer for SQLite and
    PostgreSQL) and rows go to the driver as tuples: on the accept path the per-row work of
    Connection.execute cost more than the insert itself.
    """
    keys = tuple(rows[0])
    cache_key = (conn.dialect.name, name, keys)
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
        done = stmt.compile(dialect=conn.dialect, column_keys=list(keys))
        order = tuple(done.positiontup or ())
        compiled = _COMPILED[cache_key] = (str(done), order)
    sql, order = compiled
    conn.exec_driver_sql(sql, [tuple(row[k] for k in order) for row in rows])


def insert_accepted(conn: Connection, rows: Sequence[dict[str, Any]], now: float) -> list[AcceptOutcome]:
    """Insert accepted jobs in one statement; a reused idempotency key loses to the stored row."""
    stmt = _insert(conn, messages).on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
    _executemany_fast(conn, "accept", stmt, rows)
    outcomes = [AcceptOutcome("accepted", row) for row in rows]
    keyed = [i for i, row in enumerate(rows) if row["idempotency_key"] is not None]
    if keyed:
        keys_by_tenant: dict[str, set[str]] = defaultdict(set)
        for i in keyed:
            keys_by_tenant[rows[i]["tenant_id"]].add(rows[i]["idempotency_key"])
        # Only ids first: nearly every key is new, and whole rows are needed just for the rest.
        # One equality on tenant plus IN on keys, so the unique index serves it (a row-value IN
        # over both columns makes SQLite scan the table).
        owner: dict[tuple[str, str], str] = {}
        for tenant_id, keys in keys_by_tenant.items():
            for message_id, key in conn.execute(
                sa.select(messages.c.id, messages.c.idempotency_key).where(
                    messages.c.tenant_id == tenant_id, messages.c.idempotency_key.in_(sorted(keys))
                )
            ):
                owner[(tenant_id, key)] = message_id
        lost = [i for i in keyed if owner[(rows[i]["tenant_id"], rows[i]["idempotency_key"])] != rows[i]["id"]]
        existing = {}
        if lost:
            existing = {
                r["id"]: dict(r)
                for r in conn.execute(
                    sa.select(messages).where(
                        messages.c.id.in_([owner[(rows[i]["tenant_id"], rows[i]["idempotency_key"])] for i in lost])
                    )
                ).mappings()
            }
        stale: list[int] = []
        for i in lost:
            row = rows[i]
            found = existing[owner[(row["tenant_id"], row["idempotency_key"])]]
            if found["idempotency_expires_at"] is not None and found["idempotency_expires_at"] < now:
                stale.append(i)
            elif found["request_hash"] == row["request_hash"]:
                outcomes[i] = AcceptOutcome("replay", found)
            else:
                outcomes[i] = AcceptOutcome("mismatch", found)
        if stale:
            # The retention window of the old key has passed: it may be used again.
            for i in stale:
                conn.execute(
                    messages.update()
                    .where(
                        messages.c.tenant_id == rows[i]["tenant_id"],
                        messages.c.idempotency_key == rows[i]["idempotency_key"],
                    )
                    .values(idempotency_key=None)
                )
            conn.execute(messages.insert(), [rows[i] for i in stale])
    accepted = [o.row for o in outcomes if o.kind == "accepted"]
    if accepted:
        _executemany_fast(
            conn,
            "accept-event",
            events.insert(),
            [
                {
                    "tenant_id": r["tenant_id"],
                    "message_id": r["id"],
                    "at": r["created_at"],
                    "type": "status",
                    "status": r["status"],
                    "reason": "accepted",
                    "detail": None,
                }
                for r in accepted
            ],
        )
    return outcomes


def release_idempotency_keys(conn: Connection, now: float, limit: int = 10_000) -> int:
    ids = (
        sa.select(messages.c.id)
        .where(messages.c.idempotency_expires_at < now, messages.c.idempotency_key.is_not(None))
        .limit(limit)
    )
    result = conn.execute(
        messages.update().where(messages.c.id.in_(ids.scalar_subquery())).values(idempotency_key=None)
    )
    return int(result.rowcount or 0)


# --- dispatch ---------------------------------------------------------------------------------


def claim_due(conn: Connection, worker: str, now: float, limit: int, lease_until: float) -> list[dict[str, Any]]:
    """Lease up to `limit` due jobs to this worker; other workers skip them until the lease ends."""
    due = (
        sa.select(messages.c.id)
        .where(
            messages.c.status.in_(DISPATCHABLE),
            messages.c.next_attempt_at <= now,
            sa.or_(messages.c.lease_until.is_(None), messages.c.lease_until < now),
        )
        .order_by(messages.c.next_attempt_at)
        .limit(limit)
    )
    return _lease(conn, due, worker, lease_until)


def _lease(conn: Connection, candidates: Any, worker: str, lease_until: float) -> list[dict[str, Any]]:
    """Lease the candidate rows in one statement; concurrent workers skip rows another has locked."""
    stmt = (
        messages.update()
        .where(messages.c.id.in_(candidates.with_for_update(skip_locked=True).scalar_subquery()))
        .values(lease_owner=worker, lease_until=lease_until)
        .returning(*messages.c)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def claim_orphaned_handoffs(
    conn: Connection, worker: str, now: float, limit: int, lease_until: float, marked_before: float
) -> list[dict[str, Any]]:
    """Jobs left in `sending` by a worker whose lease ran out: it died during the hand-off, or
    stalled. Only those marked before `marked_before`: a stalled worker's provider call may still be
    under way until then, and a lookup made meanwhile could miss a message about to arrive."""
    orphaned = (
        sa.select(messages.c.id)
        .where(messages.c.status == "sending", messages.c.lease_until < now, messages.c.updated_at < marked_before)
        .limit(limit)
    )
    return _lease(conn, orphaned, worker, lease_until)


def release_leases(conn: Connection, worker: str, message_ids: Sequence[str]) -> int:
    if not message_ids:
        return 0
    result = conn.execute(
        messages.update()
        .where(
            messages.c.id.in_(list(message_ids)), messages.c.lease_owner == worker, messages.c.status.in_(DISPATCHABLE)
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


def mark_sending(conn: Connection, marks: Sequence[SendingMark], lease_until: float) -> list[bool]:
    """Mark jobs `sending`; per mark, whether it held: a job whose lease another worker took
    meanwhile (this one stalled past its lease) is that worker's now, and must not be sent here."""
    if not marks:
        return []
    owners = {m.worker for m in marks}
    if owners != {None}:
        held = set(
            conn.execute(
                sa.select(messages.c.id)
                .where(messages.c.id.in_([m.message_id for m in marks]), messages.c.lease_owner.in_(list(owners)))
                # Locked until the commit: a concurrent claim skips these rows rather than taking one
                # between this check and the update.
                .with_for_update()
            ).scalars()
        )
        ours = [m.message_id in held for m in marks]
        marks = [m for m, kept in zip(marks, ours, strict=True) if kept]
        if not marks:
            return ours
    else:
        ours = [True] * len(marks)
    tracked = [link for m in marks for link in m.links]
    if tracked:
        # In the same commit as `sending`: a link in a message that left can always be resolved.
        # A campaign link is registered by the first message that carries it; the rest find it there.
        unique = list({link["token"]: link for link in tracked}.values())
        conn.execute(_insert(conn, links).on_conflict_do_nothing(index_elements=["token"]), unique)
    conn.execute(
        messages.update()
        .where(messages.c.id == sa.bindparam("b_id"))
        .values(
            status="sending",
            provider=sa.bindparam("b_provider"),
            sender=sa.bindparam("b_sender"),
            attempt_count=sa.bindparam("b_attempt"),
            updated_at=sa.bindparam("b_at"),
            lease_until=lease_until,
        ),
        [
            {"b_id": m.message_id, "b_provider": m.provider, "b_sender": m.sender, "b_attempt": m.attempt, "b_at": m.at}
            for m in marks
        ],
    )
    conn.execute(
        attempts.insert(),
        [
            {
                "message_id": m.message_id,
                "number": m.attempt,
                "channel": m.channel,
                "provider": m.provider,
                "sender": m.sender,
                "started_at": m.at,
                "outcome": "pending",
            }
            for m in marks
        ],
    )
    conn.execute(
        events.insert(),
        [
            {
                "tenant_id": m.tenant_id,
                "message_id": m.message_id,
                "at": m.at,
                "type": "status",
                "status": "sending",
                "reason": f"attempt {m.attempt}",
                "detail": orjson.dumps({"provider": m.provider}).decode(),
            }
            for m in marks
        ],
    )
    return ours


# --- no receipt in time -----------------------------------------------------------------------


def unreceipted_sql(dialect: str, channels: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The no-receipt scan: only jobs whose fallback list names a channel that takes their address
    (the others could not move, and would crowd the ones that can out of the batch)."""
    hint = " INDEXED BY ix_messages_receipt_due" if dialect == "sqlite" else ""
    terms, params = [], {}
    for i, channel in enumerate(sorted(channels)):
        targets = sorted(INTERCHANGEABLE.get(channel, ()))
        if not targets:
            continue
        params[f"c{i}"] = channel
        alternatives = []
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


def unreceipted_sends(conn: Connection, channels: Sequence[str], now: float, limit: int) -> list[dict[str, Any]]:
    """Sent jobs that can fall back whose receipt deadline (next_attempt_at, set when they were
    sent) has passed with no receipt: a receipt would have moved them past `sent`."""
    # Served by the partial index ix_messages_receipt_due, whose predicate the WHERE repeats word
    # for word; SQLite, without range statistics, would pick ix_messages_due (every sent row) unless told.
    sql, params = unreceipted_sql(conn.dialect.name, channels)
    rows = conn.execute(sa.text(sql), {**params, "now": now, "limit": limit})
    return [dict(r) for r in rows.mappings()]


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
                messages.c.status == "sent",
                messages.c.next_attempt_at == deadline,
            )
            .values(
                status=outcome.status,
                reason=outcome.reason,
                channel=outcome.channel,
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
    return moved


# The final statuses a receipt can set; no later outcome of the same hand-off moves a job out of them.
_RECEIPTED = sa.or_(messages.c.status == "delivered", messages.c.status == "undelivered", messages.c.status == "failed")


# ... and a `sent` receipt means the provider has the message: an unknown hand-off or a retry of
# the same attempt must not undo that (a retry would send it twice).
_KEEP = sa.or_(
    _RECEIPTED,
    sa.and_(
        messages.c.status == "sent",
        # Equalities, not IN: an expanding IN cannot run in an executemany.
        sa.or_(sa.bindparam("b_status", type_=sa.String) == "unknown", sa.bindparam("b_status") == "queued"),
    ),
)


def record_outcomes(conn: Connection, outcomes: Sequence[Outcome]) -> list[tuple[str, ReceiptRecord]]:
    """Write what happened to each job; returns the held receipts applied on the way (message id,
    receipt): they came before their send was recorded."""
    if not outcomes:
        return []
    _serialise_receipt_matching(conn, {o.provider for o in outcomes if o.provider and o.provider_message_id})
    conn.execute(
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
            fallback=sa.case(
                (sa.bindparam("b_channel", type_=sa.String).is_(None), messages.c.fallback),
                else_=sa.bindparam("b_fallback", type_=sa.String),
            ),
            error_code=sa.bindparam("b_error_code"),
            error_message=sa.bindparam("b_error_message"),
            next_attempt_at=sa.func.coalesce(sa.bindparam("b_next", type_=sa.Float), messages.c.next_attempt_at),
            lease_owner=None,
            lease_until=None,
            updated_at=sa.bindparam("b_at"),
        ),
        [
            {
                "b_id": o.message_id,
                "b_status": o.status,
                "b_reason": o.reason,
                "b_pmid": o.provider_message_id,
                "b_provider": o.provider,
                "b_channel": o.channel,
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
        conn.execute(
            attempts.update()
            .where(attempts.c.message_id == sa.bindparam("b_id"), attempts.c.number == sa.bindparam("b_n"))
            .values(
                finished_at=sa.bindparam("b_at"),
                outcome=sa.bindparam("b_outcome"),
                error_kind=sa.bindparam("b_kind"),
                error_code=sa.bindparam("b_code"),
                error_message=sa.bindparam("b_msg"),
                provider_message_id=sa.bindparam("b_pmid"),
            ),
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
                }
                for o in tried
            ],
        )
    new_events = [_status_event(o) for o in outcomes]
    later = [o.message_id for o in outcomes if o.status not in ("delivered", "undelivered", "failed")]
    if later:
        # A receipt may have overtaken the hand-off's own commit: then the status stays where the
        # receipt put it, and the event says what the attempt did, not a step back down the lattice.
        overtaken = set(conn.execute(sa.select(messages.c.id).where(messages.c.id.in_(later), _RECEIPTED)).scalars())
        for event in new_events:
            if event["message_id"] in overtaken and event["status"] not in ("delivered", "undelivered", "failed"):
                event["type"] = "attempt.accepted" if event["status"] == "sent" else f"attempt.{event['status']}"
                event["status"] = None
    conn.execute(events.insert(), new_events)
    sent = [o for o in outcomes if o.provider_message_id and o.provider]
    _record_parts(conn, sent)
    return _apply_held_receipts(conn, sent) if sent else []


def _serialise_receipt_matching(conn: Connection, providers: set[str]) -> None:
    """On PostgreSQL, a receipt held for a send not yet recorded and the recording of that send must
    not pass each other unseen (each in a transaction the other cannot see yet, the receipt would be
    held for ever): both take the provider's transaction lock first, so the second sees the first.
    SQLite runs one writer at a time already."""
    if conn.dialect.name != "postgresql":
        return
    for provider in sorted(providers):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"receipts:{provider}"})


def _record_parts(conn: Connection, sent: Sequence[Outcome]) -> None:
    rows = [
        {
            "provider": o.provider,
            "part_message_id": part_id,
            "provider_message_id": o.provider_message_id,
            "part": number,
            "parts": len(o.part_ids),
        }
        for o in sent
        if len(o.part_ids) > 1
        for number, part_id in enumerate(o.part_ids, start=1)
    ]
    if rows:
        conn.execute(_insert(conn, message_parts).on_conflict_do_nothing(), rows)


def _as_parts(conn: Connection, incoming: Sequence[ReceiptRecord]) -> list[ReceiptRecord]:
    """Receipts naming a segment's own id, as receipts for that part of the message's first id."""
    lone = _group(r for r in incoming if r.parts is None)
    if not lone:
        return list(incoming)
    known: dict[tuple[str, str], tuple[str, int, int]] = {}
    for provider, pmids in lone.items():
        for row in conn.execute(
            sa.select(message_parts).where(
                message_parts.c.provider == provider, message_parts.c.part_message_id.in_(sorted(pmids))
            )
        ):
            known[(provider, row.part_message_id)] = (row.provider_message_id, row.part, row.parts)
    if not known:
        return list(incoming)
    translated = []
    for r in incoming:
        found = known.get((r.provider, r.provider_message_id)) if r.parts is None else None
        if found is not None:
            r = dataclasses.replace(r, provider_message_id=found[0], part=found[1], parts=found[2])
        translated.append(r)
    return translated


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


# --- receipts ---------------------------------------------------------------------------------


def apply_receipts(
    conn: Connection,
    incoming: Sequence[ReceiptRecord],
    now: float,
    observed: list[tuple[str, ReceiptRecord]] | None = None,
) -> dict[str, int]:
    """Store receipts once each and move message statuses forward only; unknown ids are held.

    `observed`, when given, gets (sender, receipt) for each new final receipt of a message that went
    out from a sender number: the evidence number health is judged on."""
    # Receipts matched by the provider's id may have to be held for a send not yet recorded: take the
    # lock before anything is read for them (the segment ids included), or the recording of that send
    # may commit in between and never see them.
    _serialise_receipt_matching(conn, {r.provider for r in incoming if not r.reference})
    incoming = _as_parts(conn, incoming)
    unique: dict[str, ReceiptRecord] = {}
    for receipt in incoming:
        unique.setdefault(receipt.dedup_key, receipt)
    if not unique:
        return {"applied": 0, "duplicate": 0, "held": 0}
    seen = set(conn.execute(sa.select(receipts.c.dedup_key).where(receipts.c.dedup_key.in_(list(unique)))).scalars())
    fresh = [r for key, r in unique.items() if key not in seen]
    duplicates = len(incoming) - len(fresh)
    by_reference = {r.reference for r in fresh if r.reference}
    known_refs: set[str] = set()
    if by_reference:
        known_refs = set(
            conn.execute(sa.select(messages.c.id).where(messages.c.id.in_(sorted(by_reference)))).scalars()
        )
    by_provider_id: dict[tuple[str, str], str] = {}
    unresolved = [r for r in fresh if r.reference not in known_refs]
    if unresolved:
        _serialise_receipt_matching(conn, {r.provider for r in unresolved if r.reference})
        for provider, pmids in _group(unresolved).items():
            for row in conn.execute(
                sa.select(messages.c.id, messages.c.provider_message_id).where(
                    messages.c.provider == provider, messages.c.provider_message_id.in_(sorted(pmids))
                )
            ):
                by_provider_id[(provider, row.provider_message_id)] = row.id
        # A job that fell back to another channel carries its new attempt's provider id; a late
        # receipt of an earlier attempt is found through that attempt.
        earlier = [r for r in unresolved if (r.provider, r.provider_message_id) not in by_provider_id]
        for provider, pmids in _group(earlier).items():
            for row in conn.execute(
                sa.select(attempts.c.message_id, attempts.c.provider_message_id)
                .join(messages, messages.c.id == attempts.c.message_id)
                .where(
                    attempts.c.provider == provider,
                    attempts.c.provider_message_id.in_(sorted(pmids)),
                    attempts.c.channel != messages.c.channel,
                )
            ):
                by_provider_id.setdefault((provider, row.provider_message_id), row.message_id)
    matched: list[tuple[str, ReceiptRecord]] = []
    rows = []
    for r in fresh:
        message_id = (
            r.reference if r.reference in known_refs else by_provider_id.get((r.provider, r.provider_message_id))
        )
        if message_id:
            matched.append((message_id, r))
        rows.append(
            {
                "dedup_key": r.dedup_key,
                "provider": r.provider,
                "provider_message_id": r.provider_message_id,
                "message_id": message_id,
                "status": r.status,
                "error_code": r.error_code,
                "error_kind": r.error_kind,
                "part": r.part,
                "parts": r.parts,
                "occurred_at": r.occurred_at,
                "received_at": now,
                "raw": r.raw,
            }
        )
    if rows:
        conn.execute(_insert(conn, receipts).on_conflict_do_nothing(index_elements=["dedup_key"]), rows)
    senders: dict[str, str | None] | None = {} if observed is not None else None
    _advance_statuses(conn, matched, now, senders)
    if observed is not None and senders:
        for message_id, receipt in matched:
            sender = senders.get(message_id)
            if sender is not None and receipt.status in ("delivered", "undelivered", "failed"):
                observed.append((sender, receipt))
    return {"applied": len(matched), "duplicate": duplicates, "held": len(fresh) - len(matched)}


def _group(items: Iterable[ReceiptRecord]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = defaultdict(set)
    for r in items:
        grouped[r.provider].add(r.provider_message_id)
    return grouped


def _advance_statuses(
    conn: Connection,
    matched: Sequence[tuple[str, ReceiptRecord]],
    now: float,
    senders: dict[str, str | None] | None = None,
) -> None:
    """`senders`, when given, gets each matched message's sender number (read in the same query)."""
    if not matched:
        return
    rows = conn.execute(
        sa.select(
            messages.c.id, messages.c.status, messages.c.tenant_id, messages.c.provider_message_id, messages.c.sender
        ).where(messages.c.id.in_(sorted({m for m, _ in matched})))
    ).all()
    if senders is not None:
        senders.update((row.id, row.sender) for row in rows)
    current = {row.id: (row.status, row.tenant_id, row.provider_message_id) for row in rows}
    earlier = _earlier_channel_attempts(conn, matched)
    whole = _messages_with_every_part_delivered(conn, matched)
    updates: dict[str, dict[str, Any]] = {}
    new_events = []
    for message_id, receipt in sorted(matched, key=lambda m: RECEIPT_RANK.get(Status(m[1].status), 0)):
        status, tenant_id, _ = current[message_id]
        left_channel = earlier.get((message_id, receipt.provider, receipt.provider_message_id))
        if left_channel is not None:
            # The job fell back from that channel: the receipt is kept and shown, but the status
            # belongs to the channel the job is on now.
            new_events.append(
                {
                    "tenant_id": tenant_id,
                    "message_id": message_id,
                    "at": now,
                    "type": "receipt.earlier_channel",
                    "status": None,
                    "reason": f"receipt.{receipt.status}",
                    "detail": orjson.dumps(
                        {
                            "channel": left_channel,
                            "provider": receipt.provider,
                            "provider_message_id": receipt.provider_message_id,
                            "error_code": receipt.error_code,
                        }
                    ).decode(),
                }
            )
            continue
        if receipt.parts and receipt.parts > 1 and receipt.status == "delivered" and message_id not in whole:
            continue  # one segment arrived; the message is delivered when all of them have
        effective = updates.get(message_id, {}).get("b_status", status)
        if RECEIPT_RANK.get(Status(receipt.status), 0) <= RECEIPT_RANK.get(Status(effective), 99):
            continue
        reason = (
            "receipt" if receipt.status == "delivered" else f"provider.{receipt.status}.{receipt.error_code or 'none'}"
        )
        updates[message_id] = {
            "b_id": message_id,
            "b_status": receipt.status,
            "b_reason": reason,
            "b_code": receipt.error_code,
            "b_pmid": receipt.provider_message_id,
            "b_at": now,
        }
        new_events.append(
            {
                "tenant_id": tenant_id,
                "message_id": message_id,
                "at": now,
                "type": "status",
                "status": receipt.status,
                "reason": reason,
                "detail": orjson.dumps(
                    {"provider": receipt.provider, "error_code": receipt.error_code, "occurred_at": receipt.occurred_at}
                ).decode(),
            }
        )
    if new_events and not updates:
        conn.execute(events.insert(), new_events)
    if updates:
        conn.execute(
            messages.update()
            .where(messages.c.id == sa.bindparam("b_id"))
            .values(
                status=sa.bindparam("b_status"),
                reason=sa.bindparam("b_reason"),
                error_code=sa.func.coalesce(sa.bindparam("b_code"), messages.c.error_code),
                provider_message_id=sa.func.coalesce(messages.c.provider_message_id, sa.bindparam("b_pmid")),
                updated_at=sa.bindparam("b_at"),
            ),
            list(updates.values()),
        )
        conn.execute(events.insert(), new_events)


def _earlier_channel_attempts(
    conn: Connection, matched: Sequence[tuple[str, ReceiptRecord]]
) -> dict[tuple[str, str, str], str]:
    """(message, provider, provider id) -> channel, for receipts of an attempt made on a channel the
    message has since left by falling back."""
    pmids = sorted({r.provider_message_id for _, r in matched})
    rows = conn.execute(
        sa.select(attempts.c.message_id, attempts.c.provider, attempts.c.provider_message_id, attempts.c.channel)
        .join(messages, messages.c.id == attempts.c.message_id)
        .where(
            attempts.c.message_id.in_(sorted({m for m, _ in matched})),
            attempts.c.provider_message_id.in_(pmids),
            attempts.c.channel != messages.c.channel,
        )
    )
    return {(row.message_id, row.provider, row.provider_message_id): row.channel for row in rows}


def _messages_with_every_part_delivered(conn: Connection, matched: Sequence[tuple[str, ReceiptRecord]]) -> set[str]:
    """Of the messages with a delivered segment receipt here, those whose every segment is delivered.

    Counted in the receipts table, which already holds this batch: segments come in any order, any
    number of calls apart, and a duplicate segment receipt was collapsed by its dedup key.
    """
    parts = {
        message_id: receipt.parts
        for message_id, receipt in matched
        if receipt.parts and receipt.parts > 1 and receipt.status == "delivered"
    }
    if not parts:
        return set()
    delivered = conn.execute(
        sa.select(receipts.c.message_id, sa.func.count(sa.distinct(receipts.c.part)))
        .where(receipts.c.message_id.in_(sorted(parts)), receipts.c.status == "delivered", receipts.c.part.is_not(None))
        .group_by(receipts.c.message_id)
    ).all()
    return {message_id for message_id, count in delivered if count >= parts[message_id]}


def _apply_held_receipts(conn: Connection, sent: Sequence[Outcome]) -> list[tuple[str, ReceiptRecord]]:
    by_pmid = {(o.provider, o.provider_message_id): o.message_id for o in sent}
    # A segment's receipt held under the segment's own id becomes that part of the message's receipt.
    segments: dict[tuple[str | None, str], tuple[str, int, int]] = {
        (o.provider, part_id): (o.provider_message_id, number, len(o.part_ids))
        for o in sent
        if len(o.part_ids) > 1 and o.provider_message_id
        for number, part_id in enumerate(o.part_ids, start=1)
    }
    by_pmid.update({key: by_pmid[(key[0], head)] for key, (head, _, _) in segments.items()})
    held: list[tuple[str, ReceiptRecord]] = []
    for provider in {o.provider for o in sent}:
        pmids = sorted({pmid for p, pmid in by_pmid if p == provider and pmid})
        for row in conn.execute(
            sa.select(receipts).where(
                receipts.c.message_id.is_(None),
                receipts.c.provider == provider,
                receipts.c.provider_message_id.in_(pmids),
            )
        ).mappings():
            message_id = by_pmid[(provider, row["provider_message_id"])]
            pmid, part, parts = row["provider_message_id"], row["part"], row["parts"]
            if parts is None and (provider, pmid) in segments:
                pmid, part, parts = segments[(provider, pmid)]
            held.append(
                (
                    message_id,
                    ReceiptRecord(
                        provider=row["provider"],
                        provider_message_id=pmid,
                        status=row["status"],
                        error_code=row["error_code"],
                        occurred_at=row["occurred_at"],
                        error_kind=row["error_kind"],
                        part=part,
                        parts=parts,
                    ),
                )
            )
            conn.execute(
                receipts.update()
                .where(receipts.c.id == row["id"])
                .values(message_id=message_id, provider_message_id=pmid, part=part, parts=parts)
            )
    _advance_statuses(conn, held, time.time())
    return held


# --- reads ------------------------------------------------------------------------------------


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
    result["events"] = [
        dict(r)
        for r in conn.execute(
            sa.select(events).where(events.c.message_id == message_id).order_by(events.c.id)
        ).mappings()
    ]
    return result


def list_messages(conn: Connection, f: MessageFilter) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(delivery_log_query(f)).mappings()]


def delivery_log_query(f: MessageFilter) -> Any:
    """The delivery log's query: every filter pairs with an index led by tenant_id and ending in
    id, so newest-first paging needs no sort whatever the table's size."""
    query = sa.select(messages).where(messages.c.tenant_id == f.tenant_id)
    if f.campaign is not None:
        query = query.where(messages.c.campaign == f.campaign)
    if f.status:
        query = query.where(messages.c.status.in_(f.status))
    if f.to is not None:
        query = query.where(messages.c.to_addr == f.to)
    if f.user_id is not None:
        query = query.where(messages.c.user_id == f.user_id)
    # An id is made from its message's creation time, so a time bound is also an id bound (with a
    # second to spare): the index then starts and stops at the window instead of scanning to it.
    if f.since is not None:
        query = query.where(messages.c.created_at >= f.since, messages.c.id >= message_id_floor(f.since - 1))
    if f.until is not None:
        query = query.where(messages.c.created_at < f.until, messages.c.id < message_id_floor(f.until + 1))
    if f.before_id is not None:
        query = query.where(messages.c.id < f.before_id)
    return query.order_by(messages.c.id.desc()).limit(f.limit)


def status_counts(
    conn: Connection, statuses: Sequence[str] = ("queued", "deferred", "sending"), tenant_id: str | None = None
) -> dict[str, int]:
    query = sa.select(messages.c.status, sa.func.count()).where(messages.c.status.in_(statuses))
    if tenant_id is not None:
        query = query.where(messages.c.tenant_id == tenant_id)
    counts = dict.fromkeys(statuses, 0)
    counts.update({status: int(n) for status, n in conn.execute(query.group_by(messages.c.status))})
    return counts


def campaign_names(conn: Connection, tenant_id: str, limit: int = 200) -> list[str]:
    """A tenant's campaigns in name order, one index probe each (a loose index scan), so the list
    costs the number of campaigns, not the number of messages."""
    names: list[str] = []
    after: str | None = None
    while len(names) < limit:
        query = sa.select(messages.c.campaign).where(
            messages.c.tenant_id == tenant_id, messages.c.campaign.is_not(None)
        )
        if after is not None:
            query = query.where(messages.c.campaign > after)
        after = conn.execute(query.order_by(messages.c.campaign).limit(1)).scalar()
        if after is None:
            break
        names.append(after)
    return names


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


# --- suppressions -----------------------------------------------------------------------------


def add_suppressions(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert opt-outs; one already on the list stays as it was. Returns how many were new."""
    added = 0
    for row in rows:
        stmt = (
            _insert(conn, suppressions)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["tenant_id", "kind", "value"])
            .returning(suppressions.c.id)
        )
        if conn.execute(stmt).first() is None:
            continue
        added += 1
        _audit(
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
        _audit(
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


# --- tenant word lists ------------------------------------------------------------------------


def put_blocklist(conn: Connection, tenant_id: str, name: str, words: Sequence[str], severity: str, at: float) -> bool:
    """Create or replace a tenant's list; True when it was new. Audited."""
    existed = (
        conn.execute(
            sa.select(blocklists.c.name).where(blocklists.c.tenant_id == tenant_id, blocklists.c.name == name)
        ).first()
        is not None
    )
    values = {"severity": severity, "words": orjson.dumps(list(words)).decode(), "updated_at": at}
    if existed:
        conn.execute(
            blocklists.update().where(blocklists.c.tenant_id == tenant_id, blocklists.c.name == name).values(**values)
        )
    else:
        conn.execute(blocklists.insert().values(tenant_id=tenant_id, name=name, **values))
    _audit(
        conn,
        tenant_id,
        at,
        "blocklist.updated" if existed else "blocklist.created",
        name,
        detail=orjson.dumps({"severity": severity, "words": len(words)}).decode(),
    )
    return not existed


def delete_blocklist(conn: Connection, tenant_id: str, name: str, at: float) -> bool:
    result = conn.execute(blocklists.delete().where(blocklists.c.tenant_id == tenant_id, blocklists.c.name == name))
    if result.rowcount:
        _audit(conn, tenant_id, at, "blocklist.deleted", name)
    return bool(result.rowcount)


def get_blocklists(conn: Connection, tenant_id: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(blocklists).order_by(blocklists.c.tenant_id, blocklists.c.name)
    if tenant_id is not None:
        query = query.where(blocklists.c.tenant_id == tenant_id)
    return [{**dict(r), "words": orjson.loads(r["words"])} for r in conn.execute(query).mappings()]


def blocklists_version(conn: Connection) -> tuple[int, float]:
    count, latest = conn.execute(sa.select(sa.func.count(), sa.func.max(blocklists.c.updated_at))).one()
    return int(count or 0), float(latest or 0.0)


# --- on-call: failure report and requeue --------------------------------------------------------

REPORT_DIMENSIONS = {
    "reason": messages.c.reason,
    "provider": messages.c.provider,
    "error_code": messages.c.error_code,
    "sender": messages.c.sender,
    "campaign": messages.c.campaign,
    "channel": messages.c.channel,
    "status": messages.c.status,
}


def _failure_scope(conn: Connection, tenant_id: str, since: float, until: float, statuses: Sequence[str]) -> Any:
    """Failed messages of a tenant in [since, until) by when they ended: the scope of every failure view."""
    return sa.and_(
        messages.c.tenant_id == tenant_id,
        _rare(conn, messages.c.status.in_(list(statuses))),
        messages.c.updated_at >= since,
        messages.c.updated_at < until,
    )


def _rare(conn: Connection, condition: Any) -> Any:
    """Tell SQLite's planner that few messages meet this (failures are a small share of them).
    The gateway runs no ANALYZE, and without statistics SQLite takes an equality on tenant_id for
    highly selective: it would walk (tenant_id, campaign, id) and read every message of the
    tenant rather than seek the window in (tenant_id, status, updated_at, ...). PostgreSQL plans
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
        _filter_only(conn, REPORT_DIMENSIONS[name]).is_(None)
        if value is None
        else _filter_only(conn, REPORT_DIMENSIONS[name]) == value
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
    columns = [REPORT_DIMENSIONS[name].label(name) for name in group_by]
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
            .group_by(*[REPORT_DIMENSIONS[name] for name in group_by])
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


# What a purged message's content column holds: JSON null, so the API shows `"content": null`.
PURGED_CONTENT = "null"


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
        _audit(conn, tenant_id, at, "retention", "content.purged", detail)
    return len(rows)


def requeue_candidates(conn: Connection, tenant_id: str, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    query = sa.select(messages.c.id, messages.c.status, messages.c.expires_at).where(
        messages.c.tenant_id == tenant_id, messages.c.content != PURGED_CONTENT
    )
    # A failure group's messages (the console's requeue): seek them in the failure window's index.
    in_window = bool(filters.get("statuses"))
    for name in ("status", "reason", "provider", "error_code", "campaign", "channel", "sender"):
        if filters.get(name) is not None:
            column = _filter_only(conn, REPORT_DIMENSIONS[name]) if in_window else REPORT_DIMENSIONS[name]
            query = query.where(column == filters[name])
    order = messages.c.id.asc()
    if in_window:
        query = query.where(_rare(conn, messages.c.status.in_(list(filters["statuses"]))))
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
            status="queued",
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
                "status": "queued",
                "reason": "requeued",
                "detail": orjson.dumps({"by": actor}).decode(),
            }
            for mid in ids
        ],
    )
    return ids


# --- tracked links, clicks, conversions ----------------------------------------------------------


def find_link(conn: Connection, token: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(links).where(links.c.token == token)).mappings().first()
    return dict(row) if row else None


def record_clicks(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        _executemany_fast(conn, "click", clicks.insert(), rows)


def add_conversion(conn: Connection, row: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Record a conversion once per (tenant, event_id); a repeat returns the first one."""
    stmt = _insert(conn, conversions).values(**row).on_conflict_do_nothing(index_elements=["tenant_id", "event_id"])
    created = conn.execute(stmt.returning(conversions.c.id)).first() is not None
    stored = (
        conn.execute(
            sa.select(conversions).where(
                conversions.c.tenant_id == row["tenant_id"], conversions.c.event_id == row["event_id"]
            )
        )
        .mappings()
        .one()
    )
    if created:
        _audit(
            conn,
            row["tenant_id"],
            row["received_at"],
            "conversion",
            row["event"],
            detail=orjson.dumps({"value": row["value"]}).decode(),
            message_id=row["message_id"],
        )
    return created, dict(stored)


def message_clicks(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            sa.select(clicks.c.at, clicks.c.automated, clicks.c.token, links.c.url)
            .join(links, links.c.token == clicks.c.token)
            .where(clicks.c.message_id == message_id)
            .order_by(clicks.c.id)
        ).mappings()
    ]


CAMPAIGN_DIMENSIONS = {
    "variant": messages.c.variant,
    "channel": messages.c.channel,
    "provider": messages.c.provider,
    "sender": messages.c.sender,
}
SENT = ("sent", "delivered", "undelivered")
FAILED = ("failed", "undelivered", "rejected", "expired", "unknown")


def campaign_report(conn: Connection, tenant_id: str, campaign: str, group_by: Sequence[str]) -> list[dict[str, Any]]:
    dims = [CAMPAIGN_DIMENSIONS[name].label(name) for name in group_by]
    keys = [CAMPAIGN_DIMENSIONS[name] for name in group_by]
    scope = sa.and_(messages.c.tenant_id == tenant_id, messages.c.campaign == campaign)

    def count_if(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in conn.execute(
        sa.select(
            *dims,
            sa.func.count().label("messages"),
            count_if(messages.c.status.in_(SENT)).label("sent"),
            count_if(messages.c.status == "delivered").label("delivered"),
            count_if(messages.c.status.in_(FAILED)).label("failed"),
            count_if(messages.c.status == "suppressed").label("suppressed"),
        )
        .where(scope)
        .group_by(*keys)
    ).mappings():
        key = tuple(row[name] for name in group_by)
        groups[key] = {
            **{name: row[name] for name in group_by},
            "messages": int(row["messages"]),
            "sent": int(row["sent"] or 0),
            "delivered": int(row["delivered"] or 0),
            "failed": int(row["failed"] or 0),
            "suppressed": int(row["suppressed"] or 0),
            "clicks": 0,
            "human_clicks": 0,
            "unique_clicks": 0,
            "conversions": 0,
            "value": 0.0,
            "seconds_to_first_click": [],
        }
    first_clicks = conn.execute(
        sa.select(
            *dims,
            messages.c.id,
            messages.c.created_at,
            sa.func.count().label("all"),
            count_if(clicks.c.automated.is_(False)).label("human"),
            sa.func.min(sa.case((clicks.c.automated.is_(False), clicks.c.at), else_=None)).label("first"),
        )
        .join(clicks, clicks.c.message_id == messages.c.id)
        .where(scope)
        .group_by(*keys, messages.c.id, messages.c.created_at)
    ).mappings()
    for row in first_clicks:
        group = groups[tuple(row[name] for name in group_by)]
        group["clicks"] += int(row["all"])
        group["human_clicks"] += int(row["human"] or 0)
        if row["first"] is not None:
            group["unique_clicks"] += 1
            group["seconds_to_first_click"].append(row["first"] - row["created_at"])
    for row in conn.execute(
        sa.select(*dims, sa.func.count().label("conversions"), sa.func.sum(conversions.c.value).label("value"))
        .join(conversions, conversions.c.message_id == messages.c.id)
        .where(scope)
        .group_by(*keys)
    ).mappings():
        group = groups[tuple(row[name] for name in group_by)]
        group["conversions"] = int(row["conversions"])
        group["value"] = float(row["value"] or 0.0)
    return list(groups.values())


def campaign_link_report(conn: Connection, tenant_id: str, campaign: str) -> list[dict[str, Any]]:
    """Clicks and conversions through per_campaign links, by variant: people are told apart by hashed IP."""
    shared = sa.and_(links.c.message_id == "", links.c.tenant_id == tenant_id, links.c.campaign == campaign)
    report: dict[Any, dict[str, Any]] = {}
    for row in conn.execute(
        sa.select(
            links.c.variant,
            sa.func.count(clicks.c.id).label("clicks"),
            sa.func.sum(sa.case((clicks.c.automated.is_(False), 1), else_=0)).label("human_clicks"),
            sa.func.count(sa.distinct(sa.case((clicks.c.automated.is_(False), clicks.c.ip_hash), else_=None))).label(
                "unique_visitors"
            ),
        )
        .select_from(links.outerjoin(clicks, clicks.c.token == links.c.token))
        .where(shared)
        .group_by(links.c.variant)
    ).mappings():
        report[row["variant"]] = {
            "variant": row["variant"],
            "clicks": int(row["clicks"] or 0),
            "human_clicks": int(row["human_clicks"] or 0),
            "unique_visitors": int(row["unique_visitors"] or 0),
            "conversions": 0,
            "value": 0.0,
        }
    for row in conn.execute(
        sa.select(
            links.c.variant, sa.func.count().label("conversions"), sa.func.sum(conversions.c.value).label("value")
        )
        .join(conversions, conversions.c.click_token == links.c.token)
        .where(shared, conversions.c.message_id == "")
        .group_by(links.c.variant)
    ).mappings():
        report[row["variant"]].update(conversions=int(row["conversions"]), value=float(row["value"] or 0.0))
    return sorted(report.values(), key=lambda r: str(r["variant"] or ""))


def message_links(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            sa.select(links.c.token, links.c.url).where(links.c.message_id == message_id).order_by(links.c.token)
        ).mappings()
    ]


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
    query = sa.select(events).where(
        events.c.tenant_id == tenant_id, events.c.at >= since, events.c.at < until, events.c.id > after_id
    )
    if types:
        query = query.where(events.c.type.in_(list(types)))
    if message_id is not None:
        query = query.where(events.c.message_id == message_id)
    return [dict(r) for r in conn.execute(query.order_by(events.c.id).limit(limit)).mappings()]


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
            messages.c.status.in_(SENT),
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

"""Delivery receipts: stored once each, matched to their message, and the status moved up only."""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain import receipts as rules
from gateway.domain.models import RECEIPTED, Status
from gateway.store.batcher import GroupCommitter
from gateway.store.outage import DatabaseUnavailable
from gateway.store.records import Outcome, ReceiptRecord
from gateway.store.schema import ATTEMPT_HAS_REF, HELD, MESSAGE_HAS_REF, attempts, message_parts, messages, receipts
from gateway.store.sql import batches
from gateway.store.sql.common import Room, any_of, dialect_insert, fetch_compiled, listed, partial_index_term

# The statements a receipt call runs, built once and run straight on the driver (fetch_compiled):
# at a trickle each call carries one receipt, and building, caching and compiling the statements
# anew per call cost more than the database's own work.

# Which receipts are stored already, and which of the messages they name are ours: one round trip.
_SEEN_AND_KNOWN = sa.union_all(
    sa.select(sa.literal_column("'receipt'").label("kind"), receipts.c.dedup_key.label("key")).where(
        any_of(receipts.c.dedup_key, "keys")
    ),
    sa.select(sa.literal_column("'message'"), messages.c.id).where(any_of(messages.c.id, "ids")),
)
_BY_PROVIDER_ID = sa.select(messages.c.id, messages.c.provider_message_id).where(
    messages.c.provider == sa.bindparam("provider", type_=sa.String),
    partial_index_term(MESSAGE_HAS_REF),
    any_of(messages.c.provider_message_id, "pmids"),
)
_BY_EARLIER_ATTEMPT = (
    sa.select(
        attempts.c.message_id,
        attempts.c.provider_message_id,
        attempts.c.channel,
        messages.c.channel.label("message_channel"),
    )
    .join(messages, messages.c.id == attempts.c.message_id)
    .where(
        attempts.c.provider == sa.bindparam("provider", type_=sa.String),
        partial_index_term(ATTEMPT_HAS_REF),
        any_of(attempts.c.provider_message_id, "pmids"),
    )
)
_PARTS = sa.select(
    message_parts.c.part_message_id, message_parts.c.provider_message_id, message_parts.c.part, message_parts.c.parts
).where(
    message_parts.c.provider == sa.bindparam("provider", type_=sa.String),
    any_of(message_parts.c.part_message_id, "pmids"),
)


def _states(named: sa.FromClause, on: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The matched messages, each with the attempts the receipts name (none, mostly: one row per
    message), in one statement: what the receipt rules judge by."""
    return (
        sa.select(
            messages.c.id,
            messages.c.status,
            messages.c.tenant_id,
            messages.c.sender,
            messages.c.channel.label("message_channel"),
            named.c.provider.label("attempt_provider"),
            named.c.provider_message_id.label("attempt_pmid"),
            named.c.channel.label("attempt_channel"),
        )
        .select_from(messages.outerjoin(named, on))
        .where(any_of(messages.c.id, "ids"))
    )


_STATES = _states(
    attempts, sa.and_(attempts.c.message_id == messages.c.id, any_of(attempts.c.provider_message_id, "pmids"))
)
# The same on PostgreSQL, each message's named attempts looked up by its id (uq_attempts_message_number).
# Joined as above, PostgreSQL hashed a scan of every attempt ever made, each compared with every
# provider id of the batch (a bound array is not hashed): 17 ms per batch of 200 receipts at 5,000
# attempts, growing with the table. OFFSET 0 keeps the lookup per message (a subquery with an OFFSET
# is not merged into the join).
_NAMED_ATTEMPTS = (
    sa.select(attempts.c.provider, attempts.c.provider_message_id, attempts.c.channel)
    .where(attempts.c.message_id == messages.c.id, any_of(attempts.c.provider_message_id, "pmids"))
    .offset(sa.literal_column("0"))
    .lateral("named")
)
_STATES_BY_MESSAGE = _states(_NAMED_ATTEMPTS, sa.true())
_DELIVERED_PARTS = (
    sa.select(receipts.c.message_id, sa.func.count(sa.distinct(receipts.c.part)))
    .where(any_of(receipts.c.message_id, "ids"), receipts.c.status == Status.DELIVERED, receipts.c.part.is_not(None))
    .group_by(receipts.c.message_id)
)


def apply_receipts(
    conn: Connection,
    incoming: Sequence[ReceiptRecord],
    now: float,
    observed: list[tuple[str, ReceiptRecord]] | None = None,
) -> dict[str, int]:
    """Store receipts once each and move message statuses forward only; unknown ids are held.

    `observed`, when given, gets (sender, receipt) for each new final receipt of a message that went
    out from a sender number: the evidence number health is judged on."""
    return apply_receipt_calls(conn, [(incoming, observed)], now)[0]


# One receipt callback's receipts, and its list for the senders' evidence (apply_receipts' `observed`).
ReceiptCall = tuple[Sequence[ReceiptRecord], list[tuple[str, ReceiptRecord]] | None]


def apply_receipt_calls(conn: Connection, calls: Sequence[ReceiptCall], now: float) -> list[dict[str, int]]:
    """apply_receipts for several callbacks at once, in the same statements, each call answered for
    its own receipts as if applied one after the other: a receipt in two calls is applied (or held)
    for the first and a duplicate in the second."""
    summaries = [{"applied": 0, "duplicate": 0, "held": 0} for _ in calls]
    for _, observed in calls:
        if observed is not None:
            observed.clear()  # a transaction run again, or alone after its group's failed, starts afresh
    owners = [call for call, (receipts, _) in enumerate(calls) for _ in receipts]
    incoming = [receipt for receipts, _ in calls for receipt in receipts]
    if not incoming:
        return summaries
    # Receipts matched by the provider's id may have to be held for a send not yet recorded: take the
    # lock before anything is read for them (the segment ids included), or the recording of that send
    # may commit in between and never see them.
    serialise_receipt_matching(conn, {r.provider for r in incoming if not r.reference})
    incoming = _as_parts(conn, incoming)  # one for one, in order
    first: dict[str, int] = {}
    for index, receipt in enumerate(incoming):
        first.setdefault(receipt.dedup_key, index)
    seen, known_refs = _seen_and_known(conn, {key: incoming[index] for key, index in first.items()})
    fresh = {index for key, index in first.items() if key not in seen}
    unresolved = [incoming[i] for i in sorted(fresh) if incoming[i].reference not in known_refs]
    by_provider_id = _match_by_provider_id(conn, unresolved) if unresolved else {}
    matched: list[tuple[str, ReceiptRecord]] = []
    matched_for: list[int] = []  # the call each matched receipt came in
    rows = []
    for index, r in enumerate(incoming):
        summary = summaries[owners[index]]
        if index not in fresh:
            summary["duplicate"] += 1
            continue
        message_id = (
            r.reference if r.reference in known_refs else by_provider_id.get((r.provider, r.provider_message_id))
        )
        if message_id:
            matched.append((message_id, r))
            matched_for.append(owners[index])
        summary["applied" if message_id else "held"] += 1
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
        batches.insert_rows(conn, receipts, rows, unique=["dedup_key"])
    wanted = any(observed is not None for _, observed in calls)
    senders: dict[str, str | None] | None = {} if wanted else None
    _advance_statuses(conn, matched, now, senders)
    if senders:
        for (message_id, receipt), call in zip(matched, matched_for, strict=True):
            observed = calls[call][1]
            sender = senders.get(message_id)
            if observed is not None and sender is not None and receipt.status in RECEIPTED:
                observed.append((sender, receipt))
    return summaries


def _seen_and_known(conn: Connection, unique: dict[str, ReceiptRecord]) -> tuple[set[str], set[str]]:
    """The dedup keys already stored, and the message ids the receipts name (`reference`) that are ours."""
    references = sorted({r.reference for r in unique.values() if r.reference})
    params = {"keys": listed(conn, unique), "ids": listed(conn, references)}
    found: dict[str, set[str]] = {"receipt": set(), "message": set()}
    for kind, key in fetch_compiled(conn, _SEEN_AND_KNOWN, params):
        found[kind].add(key)
    return found["receipt"], found["message"]


def _match_by_provider_id(conn: Connection, unresolved: Sequence[ReceiptRecord]) -> dict[tuple[str, str], str]:
    """(provider, provider id) -> message id, for receipts that did not name a message we know."""
    by_provider_id: dict[tuple[str, str], str] = {}
    serialise_receipt_matching(conn, {r.provider for r in unresolved if r.reference})
    for provider, pmids in _group(unresolved).items():
        for row in fetch_compiled(conn, _BY_PROVIDER_ID, {"provider": provider, "pmids": listed(conn, sorted(pmids))}):
            by_provider_id[(provider, row.provider_message_id)] = row.id
    # A job that fell back to another channel carries its new attempt's provider id; a late
    # receipt of an earlier attempt is found through that attempt.
    earlier = [r for r in unresolved if (r.provider, r.provider_message_id) not in by_provider_id]
    for provider, pmids in _group(earlier).items():
        params = {"provider": provider, "pmids": listed(conn, sorted(pmids))}
        for attempt in fetch_compiled(conn, _BY_EARLIER_ATTEMPT, params):
            if rules.is_earlier_channel(attempt.channel, attempt.message_channel):
                by_provider_id.setdefault((provider, attempt.provider_message_id), attempt.message_id)
    return by_provider_id


def serialise_receipt_matching(conn: Connection, providers: set[str]) -> None:
    """On PostgreSQL, a receipt held for a send not yet recorded and the recording of that send must
    not pass each other unseen (each in a transaction the other cannot see yet, the receipt would be
    held for ever): both take the provider's transaction lock first, so the second sees the first.
    SQLite runs one writer at a time already."""
    if conn.dialect.name != "postgresql":
        return
    for provider in sorted(providers):
        fetch_compiled(conn, _MATCHING_LOCK, {"key": f"receipts:{provider}"})


_MATCHING_LOCK = sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(sa.bindparam("key", type_=sa.String))))


def record_parts(conn: Connection, sent: Sequence[Outcome]) -> None:
    """Each segment id of a send the provider numbered apart, so its receipts find the message."""
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
        conn.execute(dialect_insert(conn, message_parts).on_conflict_do_nothing(), rows)


def _as_parts(conn: Connection, incoming: Sequence[ReceiptRecord]) -> list[ReceiptRecord]:
    """Receipts naming a segment's own id, as receipts for that part of the message's first id."""
    lone = _group(r for r in incoming if r.parts is None)
    if not lone:
        return list(incoming)
    known: dict[tuple[str, str], tuple[str, int, int]] = {}
    for provider, pmids in lone.items():
        for row in fetch_compiled(conn, _PARTS, {"provider": provider, "pmids": listed(conn, sorted(pmids))}):
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
    """Apply what the receipt rules (domain/receipts.py) decide for each matched receipt.

    `senders`, when given, gets each matched message's sender number (read in the same query)."""
    if not matched:
        return
    params = {
        "ids": listed(conn, sorted({m for m, _ in matched})),
        "pmids": listed(conn, sorted({r.provider_message_id for _, r in matched})),
    }
    rows = fetch_compiled(conn, _STATES_BY_MESSAGE if conn.dialect.name == "postgresql" else _STATES, params).all()
    if senders is not None:
        senders.update((row.id, row.sender) for row in rows)
    tenants = {row.id: row.tenant_id for row in rows}
    earlier = _earlier_channel_attempts(rows)
    judged = rules.judge_batch(
        matched,
        {row.id: row.status for row in rows},
        lambda message_id, r: earlier.get((message_id, r.provider, r.provider_message_id)),
        _messages_with_every_part_delivered(conn, matched),
    )
    updates: dict[str, dict[str, Any]] = {}
    new_events = []
    for j in judged:
        if j.verdict is rules.Verdict.EARLIER_CHANNEL:
            new_events.append(_earlier_channel_event(tenants[j.message_id], j, now))
        elif j.verdict is rules.Verdict.ADVANCE:
            updates[j.message_id] = _status_update(j.message_id, j.receipt, now)
            new_events.append(_status_event(tenants[j.message_id], j.message_id, j.receipt, now))
    batches.advance_by_receipts(conn, list(updates.values()), new_events)


def _status_update(message_id: str, receipt: ReceiptRecord, now: float) -> dict[str, Any]:
    return {
        "b_id": message_id,
        "b_status": receipt.status,
        "b_reason": rules.status_reason(receipt.status, receipt.error_code),
        "b_code": receipt.error_code,
        "b_pmid": receipt.provider_message_id,
        "b_at": now,
    }


def _status_event(tenant_id: str, message_id: str, receipt: ReceiptRecord, now: float) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "message_id": message_id,
        "at": now,
        "type": "status",
        "status": receipt.status,
        "reason": rules.status_reason(receipt.status, receipt.error_code),
        "detail": orjson.dumps(
            {"provider": receipt.provider, "error_code": receipt.error_code, "occurred_at": receipt.occurred_at}
        ).decode(),
    }


def _earlier_channel_event(tenant_id: str, judged: rules.Judged[ReceiptRecord], now: float) -> dict[str, Any]:
    """The receipt is kept and shown; the status belongs to the channel the job is on now."""
    receipt = judged.receipt
    return {
        "tenant_id": tenant_id,
        "message_id": judged.message_id,
        "at": now,
        "type": "receipt.earlier_channel",
        "status": None,
        "reason": f"receipt.{receipt.status}",
        "detail": orjson.dumps(
            {
                "channel": judged.left_channel,
                "provider": receipt.provider,
                "provider_message_id": receipt.provider_message_id,
                "error_code": receipt.error_code,
            }
        ).decode(),
    }


def _earlier_channel_attempts(rows: Sequence[sa.Row[Any]]) -> dict[tuple[str, str, str], str]:
    """(message, provider, provider id) -> channel, for receipts of an attempt made on a channel the
    message has since left by falling back (rows of _STATES)."""
    return {
        (row.id, row.attempt_provider, row.attempt_pmid): row.attempt_channel
        for row in rows
        if row.attempt_channel is not None and rules.is_earlier_channel(row.attempt_channel, row.message_channel)
    }


def _messages_with_every_part_delivered(conn: Connection, matched: Sequence[tuple[str, ReceiptRecord]]) -> set[str]:
    """Of the messages with a delivered segment receipt here, those whose every segment is delivered.

    Counted in the receipts table, which already holds this batch: segments come in any order, any
    number of calls apart, and a duplicate segment receipt was collapsed by its dedup key.
    """
    parts = {
        message_id: receipt.parts
        for message_id, receipt in matched
        if receipt.parts is not None and rules.is_delivered_segment(receipt.status, receipt.parts)
    }
    if not parts:
        return set()
    delivered = fetch_compiled(conn, _DELIVERED_PARTS, {"ids": listed(conn, sorted(parts))}).all()
    return {message_id for message_id, count in delivered if rules.segments_complete(parts[message_id], count)}


# Receipts held for sends not yet recorded, of one provider, among a list of its message ids.
_HELD = sa.select(receipts).where(
    HELD,
    receipts.c.provider == sa.bindparam("provider", type_=sa.String),
    any_of(receipts.c.provider_message_id, "pmids"),
)


def _held_for(conn: Connection, provider: str | None, pmids: list[str]) -> Iterable[sa.RowMapping]:
    return fetch_compiled(conn, _HELD, {"provider": provider, "pmids": listed(conn, pmids)}).mappings()


def apply_held_receipts(conn: Connection, sent: Sequence[Outcome]) -> list[tuple[str, ReceiptRecord]]:
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
        for row in _held_for(conn, provider, pmids):
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


class ReceiptsRoom(Room):
    _receipts: GroupCommitter[ReceiptCall, dict[str, int] | Exception]

    async def apply_receipts(
        self, receipts: Sequence[ReceiptRecord], observed: list[tuple[str, ReceiptRecord]] | None = None
    ) -> dict[str, int]:
        """Store receipts once each and move statuses up; `observed` gets (sender, final receipt).
        Answered once on disk; callbacks that come together share the commit."""
        applied = await self._receipts.submit((receipts, observed))
        if isinstance(applied, Exception):
            raise applied
        return applied

    async def _flush_receipts(self, calls: list[ReceiptCall]) -> list[dict[str, int] | Exception]:
        # Most providers post a callback per status of each message: at 1,000 messages a second
        # that is thousands of requests, each a commit and an fsync of its own on the loop's thread
        # if applied alone. Together: the same statements for all of them, and one commit beside
        # the loop, as accepts and outcomes are committed.
        try:
            return list(await self.db.write_beside_loop(apply_receipt_calls, calls, time.time()))
        except DatabaseUnavailable:
            raise
        except Exception:
            if len(calls) == 1:
                raise
        # One callback's receipts must not fail the others' (the provider would post them all
        # again, into the same failure): each in a transaction of its own.
        return [await self._apply_alone(call) for call in calls]

    async def _apply_alone(self, call: ReceiptCall) -> dict[str, int] | Exception:
        try:
            return (await self.db.write_beside_loop(apply_receipt_calls, [call], time.time()))[0]
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - that callback's own failure, raised to it alone
            return exc

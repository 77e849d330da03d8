"""Set-based dispatch on PostgreSQL: a batch of `sending` marks, of outcomes, or of receipts' writes,
in one statement each.

An executemany runs its statement once per row (one call each in pg_stat_statements, one plan
execution and its bookkeeping each), so marking a batch `sending` cost three statements per job,
recording its outcomes three more and applying its receipts three more. Here each batch travels as
one array per column, unnested into rows, and the message update, the attempt rows and the events
are data-modifying CTEs of one statement. One array per column, not a VALUES list: the SQL text is
the same whatever the batch size, so it is prepared once per connection and counted as one statement.

The rules are the callers' (leases.py, outcomes.py, receipts.py decide; this module writes): a mark
holds only while the worker's lease does; an outcome never moves a job back down the status lattice.
SQLite keeps the per-row executemany (in-process, no round trips to save), its rows handed to the
driver as tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.models import RECEIPTED, AttemptOutcome, Status
from gateway.store.records import Outcome, SendingMark
from gateway.store.schema import events, messages
from gateway.store.sql.common import dialect_insert, executemany_fast


def _words(statuses: Sequence[str]) -> str:
    return ", ".join(f"'{status}'" for status in sorted(statuses))


_MARK_SENDING = sa.text(
    f"""
    WITH batch AS (
        SELECT * FROM unnest(
            CAST(:ids AS TEXT[]), CAST(:tenants AS TEXT[]), CAST(:channels AS TEXT[]), CAST(:providers AS TEXT[]),
            CAST(:senders AS TEXT[]), CAST(:attempts AS INTEGER[]), CAST(:ats AS DOUBLE PRECISION[]),
            CAST(:workers AS TEXT[]), CAST(:reasons AS TEXT[]), CAST(:details AS TEXT[])
        ) WITH ORDINALITY AS b(id, tenant_id, channel, provider, sender, attempt, at, worker, reason, detail, ord)
    ),
    marked AS (
        UPDATE messages AS m
        SET status = '{Status.SENDING}', provider = b.provider, sender = b.sender, attempt_count = b.attempt,
            updated_at = b.at, lease_until = :lease_until
        FROM batch AS b
        WHERE m.id = b.id AND (b.worker IS NULL OR m.lease_owner = b.worker)
        RETURNING m.id
    ),
    tried AS (
        INSERT INTO attempts (message_id, number, channel, provider, sender, started_at, outcome)
        SELECT b.id, b.attempt, b.channel, b.provider, b.sender, b.at, '{AttemptOutcome.PENDING}'
        FROM batch AS b JOIN marked USING (id) ORDER BY b.ord
    )
    INSERT INTO events (tenant_id, message_id, at, type, status, reason, detail)
    SELECT b.tenant_id, b.id, b.at, 'status', '{Status.SENDING}', b.reason, b.detail
    FROM batch AS b JOIN marked USING (id) ORDER BY b.ord
    RETURNING message_id
    """
)


def mark_sending(conn: Connection, marks: Sequence[SendingMark], lease_until: float) -> set[str]:
    """Mark the jobs `sending` with their attempt and event, each only while the lease it was
    claimed under holds (the row lock the UPDATE takes is what a concurrent claim skips). Returns
    the ids marked; the marks of one batch name distinct jobs."""
    rows = conn.execute(
        _MARK_SENDING,
        {
            "ids": [m.message_id for m in marks],
            "tenants": [m.tenant_id for m in marks],
            "channels": [m.channel for m in marks],
            "providers": [m.provider for m in marks],
            "senders": [m.sender for m in marks],
            "attempts": [m.attempt for m in marks],
            "ats": [m.at for m in marks],
            "workers": [m.worker for m in marks],
            "reasons": [f"attempt {m.attempt}" for m in marks],
            "details": [orjson.dumps({"provider": m.provider}).decode() for m in marks],
            "lease_until": lease_until,
        },
    )
    return set(rows.scalars())


_RECEIPTED_WORDS = _words(sorted(RECEIPTED))
# What the job keeps (see outcomes._KEEP): a receipt's final status, or `sent` against a later
# unknown hand-off or retry of the same attempt.
_KEEP = (
    f"(m.status IN ({_RECEIPTED_WORDS})"
    f" OR (m.status = '{Status.SENT}' AND b.status IN ('{Status.UNKNOWN}', '{Status.QUEUED}')))"
)
_RECORD_OUTCOMES = sa.text(
    f"""
    WITH batch AS (
        SELECT * FROM unnest(
            CAST(:ids AS TEXT[]), CAST(:tenants AS TEXT[]), CAST(:statuses AS TEXT[]), CAST(:reasons AS TEXT[]),
            CAST(:pmids AS TEXT[]), CAST(:providers AS TEXT[]), CAST(:channels AS TEXT[]),
            CAST(:tos AS TEXT[]), CAST(:fallbacks AS TEXT[]), CAST(:error_kinds AS TEXT[]),
            CAST(:error_codes AS TEXT[]),
            CAST(:error_messages AS TEXT[]), CAST(:nexts AS DOUBLE PRECISION[]), CAST(:ats AS DOUBLE PRECISION[]),
            CAST(:attempts AS INTEGER[]), CAST(:attempt_outcomes AS TEXT[]), CAST(:details AS TEXT[]),
            CAST(:costs AS DOUBLE PRECISION[]), CAST(:currencies AS TEXT[])
        ) WITH ORDINALITY AS b(
            id, tenant_id, status, reason, pmid, provider, channel, to_addr, fallback, error_kind, error_code,
            error_message, next_at, at, attempt, attempt_outcome, detail, cost, currency, ord
        )
    ),
    updated AS (
        UPDATE messages AS m
        SET status = CASE WHEN {_KEEP} THEN m.status ELSE b.status END,
            reason = CASE WHEN {_KEEP} THEN m.reason ELSE b.reason END,
            provider_message_id = COALESCE(b.pmid, m.provider_message_id),
            provider = COALESCE(b.provider, m.provider),
            channel = COALESCE(b.channel, m.channel),
            to_addr = COALESCE(b.to_addr, m.to_addr),
            fallback = CASE WHEN b.channel IS NULL THEN m.fallback ELSE b.fallback END,
            error_code = CASE WHEN {_KEEP} THEN m.error_code ELSE b.error_code END,
            error_message = CASE WHEN {_KEEP} THEN m.error_message ELSE b.error_message END,
            next_attempt_at = COALESCE(b.next_at, m.next_attempt_at),
            lease_owner = NULL,
            lease_until = NULL,
            updated_at = b.at
        FROM batch AS b
        WHERE m.id = b.id
        RETURNING m.id, m.status
    ),
    finished AS (
        UPDATE attempts AS a
        SET finished_at = b.at, outcome = b.attempt_outcome, error_kind = b.error_kind,
            error_code = b.error_code, error_message = b.error_message, provider_message_id = b.pmid,
            cost = b.cost, currency = b.currency
        FROM batch AS b
        WHERE b.attempt_outcome IS NOT NULL AND a.message_id = b.id AND a.number = b.attempt
    ),
    overtaken AS (
        -- A receipt overtook the hand-off's own commit: the status stays where the receipt put it,
        -- and the event says what the attempt did, not a step back down the lattice.
        SELECT b.ord FROM batch AS b JOIN updated AS u USING (id)
        WHERE b.status NOT IN ({_RECEIPTED_WORDS}) AND u.status IN ({_RECEIPTED_WORDS})
    )
    INSERT INTO events (tenant_id, message_id, at, type, status, reason, detail)
    SELECT b.tenant_id, b.id, b.at,
        CASE WHEN o.ord IS NULL THEN 'status'
             WHEN b.status = '{Status.SENT}' THEN 'attempt.accepted'
             ELSE 'attempt.' || b.status END,
        CASE WHEN o.ord IS NULL THEN b.status END,
        b.reason, b.detail
    FROM batch AS b LEFT JOIN overtaken AS o USING (ord) ORDER BY b.ord
    """
)


def record_outcomes(conn: Connection, outcomes: Sequence[Outcome], details: Sequence[str | None]) -> None:
    """Each job's status, its attempt's result and its event, in one statement per round: a job
    named twice in a batch goes in a later round, so its outcomes apply in order as per row."""
    for round_ in _rounds(list(zip(outcomes, details, strict=True))):
        conn.execute(_RECORD_OUTCOMES, _columns(round_))


def _rounds(items: list[tuple[Outcome, str | None]]) -> list[list[tuple[Outcome, str | None]]]:
    rounds: list[list[tuple[Outcome, str | None]]] = []
    seen: list[set[str]] = []
    for item in items:
        # The first round after the last one naming this job (order kept per job).
        last = max((i for i, ids in enumerate(seen) if item[0].message_id in ids), default=-1)
        if last + 1 == len(rounds):
            rounds.append([])
            seen.append(set())
        rounds[last + 1].append(item)
        seen[last + 1].add(item[0].message_id)
    return rounds


def _columns(items: list[tuple[Outcome, str | None]]) -> dict[str, Any]:
    outcomes = [o for o, _ in items]
    tried = [o.attempt_outcome is not None and o.attempt is not None for o in outcomes]
    return {
        "ids": [o.message_id for o in outcomes],
        "tenants": [o.tenant_id for o in outcomes],
        "statuses": [str(o.status) for o in outcomes],
        "reasons": [o.reason for o in outcomes],
        "pmids": [o.provider_message_id for o in outcomes],
        "providers": [o.provider for o in outcomes],
        "channels": [o.channel for o in outcomes],
        "tos": [o.to_addr for o in outcomes],
        "fallbacks": [o.fallback for o in outcomes],
        "error_kinds": [o.error_kind for o in outcomes],
        "error_codes": [o.error_code for o in outcomes],
        "error_messages": [o.error_message for o in outcomes],
        "nexts": [o.next_attempt_at for o in outcomes],
        "ats": [o.at for o in outcomes],
        "attempts": [o.attempt for o in outcomes],
        "attempt_outcomes": [str(o.attempt_outcome) if t else None for o, t in zip(outcomes, tried, strict=True)],
        "details": [detail for _, detail in items],
        "costs": [o.cost for o in outcomes],
        "currencies": [o.currency for o in outcomes],
    }


_ARRAY_TYPES: dict[type, str] = {sa.Float: "DOUBLE PRECISION", sa.Integer: "BIGINT", sa.String: "TEXT"}
_INSERTS: dict[tuple[str, tuple[str, ...], tuple[str, ...]], sa.TextClause] = {}


def _array_type(column: sa.Column[Any]) -> str:
    for kind, name in _ARRAY_TYPES.items():
        if isinstance(column.type, kind):
            return name
    raise TypeError(f"no array type for {column}")


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], unique: Sequence[str] = ()) -> None:
    """Insert rows (all with the same keys) in one statement on PostgreSQL, skipping those whose
    `unique` columns are taken when given; an executemany elsewhere."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        insert = dialect_insert(conn, table)
        stmt = insert.on_conflict_do_nothing(index_elements=list(unique)) if unique else insert
        executemany_fast(conn, f"insert_rows:{table.name}:{','.join(unique)}", stmt, rows)
        return
    keys = tuple(rows[0])
    cache_key = (table.name, keys, tuple(unique))
    stmt = _INSERTS.get(cache_key)
    if stmt is None:
        arrays = ", ".join(f"CAST(:{key} AS {_array_type(table.c[key])}[])" for key in keys)
        conflict = f" ON CONFLICT ({', '.join(unique)}) DO NOTHING" if unique else ""
        stmt = _INSERTS[cache_key] = sa.text(
            f"INSERT INTO {table.name} ({', '.join(keys)}) SELECT * FROM unnest({arrays}){conflict}"
        )
    conn.execute(stmt, {key: [row[key] for row in rows] for key in keys})


_ADVANCE = """
    UPDATE messages AS m
    SET status = b.status, reason = b.reason, error_code = COALESCE(b.code, m.error_code),
        provider_message_id = COALESCE(m.provider_message_id, b.pmid), updated_at = b.at
    FROM unnest(
        CAST(:ids AS TEXT[]), CAST(:statuses AS TEXT[]), CAST(:reasons AS TEXT[]), CAST(:codes AS TEXT[]),
        CAST(:pmids AS TEXT[]), CAST(:ats AS DOUBLE PRECISION[])
    ) AS b(id, status, reason, code, pmid, at)
    WHERE m.id = b.id
"""
_ADVANCE_BY_RECEIPTS = sa.text(_ADVANCE)
# The update and the events' insert in one statement (one round trip): a statement in WITH is run
# to completion whether or not the main statement reads it.
_EVENT_COLUMNS = ("tenant_id", "message_id", "at", "type", "status", "reason", "detail")
_ADVANCE_AND_RECORD = sa.text(
    f"WITH advanced AS ({_ADVANCE}) INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:e_{key} AS {_array_type(events.c[key])}[])" for key in _EVENT_COLUMNS)
    + ")"
)


def advance_by_receipts(
    conn: Connection, updates: Sequence[dict[str, Any]], new_events: Sequence[dict[str, Any]] = ()
) -> None:
    """The statuses receipts moved up (one update per message, decided by the caller) and the
    events they bring (rows of the events table with _EVENT_COLUMNS), in one statement on
    PostgreSQL; executemanys elsewhere."""
    if not updates or conn.dialect.name != "postgresql":
        if updates:
            executemany_fast(conn, "advance_by_receipts", _ADVANCE_EACH, updates)
        insert_rows(conn, events, new_events)
        return
    values = {
        name: [u[key] for u in updates]
        for name, key in (
            ("ids", "b_id"),
            ("statuses", "b_status"),
            ("reasons", "b_reason"),
            ("codes", "b_code"),
            ("pmids", "b_pmid"),
            ("ats", "b_at"),
        )
    }
    if not new_events:
        conn.execute(_ADVANCE_BY_RECEIPTS, values)
        return
    values.update({f"e_{key}": [row[key] for row in new_events] for key in _EVENT_COLUMNS})
    conn.execute(_ADVANCE_AND_RECORD, values)


_ADVANCE_EACH = (
    messages.update()
    .where(messages.c.id == sa.bindparam("b_id"))
    .values(
        status=sa.bindparam("b_status"),
        reason=sa.bindparam("b_reason"),
        error_code=sa.func.coalesce(sa.bindparam("b_code"), messages.c.error_code),
        provider_message_id=sa.func.coalesce(messages.c.provider_message_id, sa.bindparam("b_pmid")),
        updated_at=sa.bindparam("b_at"),
    )
)

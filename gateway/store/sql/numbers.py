"""Store functions for sender number pools: numbers, sticky assignments, state-change events.

Like the other modules here: synchronous SQLAlchemy Core, one unit of work per function.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.numbers import EDITABLE, NumberState, SenderNumber, Transition
from gateway.domain.webhooks import EVERY_TENANT, NUMBER_STATE_CHANGED
from gateway.store.records import to_number
from gateway.store.schema import number_assignments, number_events, numbers
from gateway.store.sql.common import Room, audit, dialect_insert, executemany_fast


def list_numbers(conn: Connection, pool: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(numbers).order_by(numbers.c.pool, numbers.c.sender)
    if pool is not None:
        query = query.where(numbers.c.pool == pool)
    if state is not None:
        query = query.where(numbers.c.state == state)
    return [dict(row) for row in conn.execute(query).mappings()]


def any_number(conn: Connection) -> bool:
    return conn.execute(sa.select(numbers.c.id).limit(1)).first() is not None


def get_number(conn: Connection, number_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(numbers).where(numbers.c.id == number_id)).mappings().first()
    return dict(row) if row else None


def numbers_by_sender(conn: Connection, senders: Sequence[str]) -> list[dict[str, Any]]:
    if not senders:
        return []
    return [
        dict(r) for r in conn.execute(sa.select(numbers).where(numbers.c.sender.in_(sorted(set(senders))))).mappings()
    ]


def insert_number(conn: Connection, row: dict[str, Any]) -> bool:
    """False when the pool already has this sender."""
    result = conn.execute(
        dialect_insert(conn, numbers).on_conflict_do_nothing(index_elements=["pool", "sender"]), [row]
    )
    if result.rowcount != 1:
        return False
    _event(conn, row["id"], row["created_at"], None, row["state"], "created", {"source": row["source"]}, row["source"])
    return True


def sync_config_numbers(conn: Connection, rows: Sequence[dict[str, Any]], now: float) -> int:
    """Numbers declared in the config: added if missing, attributes refreshed; health is left alone."""
    added = 0
    existing = {
        (r["pool"], r["sender"]): r
        for r in conn.execute(sa.select(numbers.c.id, numbers.c.pool, numbers.c.sender, numbers.c.source)).mappings()
    }
    for row in rows:
        found = existing.get((row["pool"], row["sender"]))
        if found is None:
            added += int(insert_number(conn, row))
            continue
        conn.execute(
            numbers.update().where(numbers.c.id == found["id"]).values(**{k: row[k] for k in EDITABLE}, updated_at=now)
        )
    return added


def update_number(conn: Connection, number_id: str, changes: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    if changes:
        conn.execute(numbers.update().where(numbers.c.id == number_id).values(**changes, updated_at=now))
    return get_number(conn, number_id)


def delete_number(conn: Connection, number_id: str) -> bool:
    conn.execute(number_assignments.delete().where(number_assignments.c.number_id == number_id))
    return bool(conn.execute(numbers.delete().where(numbers.c.id == number_id)).rowcount)


def apply_transition(
    conn: Connection, number: SenderNumber, change: Transition, actor: str, now: float
) -> dict[str, Any] | None:
    """Move the number if it is still in the state (and epoch) the decision was taken on, and record
    the event with its evidence; None when another process moved it first."""
    result = conn.execute(
        numbers.update()
        .where(numbers.c.id == number.id, numbers.c.state == number.state.value, numbers.c.epoch == number.epoch)
        .values(
            state=change.to.value,
            state_reason=change.reason,
            state_since=now,
            cooldown_until=change.cooldown_until,
            epoch=number.epoch + (1 if change.new_epoch else 0),
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        return None
    _event(conn, number.id, now, number.state.value, change.to.value, change.reason, change.evidence, actor)
    return get_number(conn, number.id)


def _event(
    conn: Connection,
    number_id: str,
    at: float,
    from_state: str | None,
    to_state: str,
    reason: str,
    evidence: Mapping[str, Any],
    actor: str,
) -> None:
    conn.execute(
        number_events.insert().values(
            number_id=number_id,
            at=at,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            evidence=orjson.dumps(dict(evidence)).decode(),
            actor=actor,
        )
    )
    # In the audit log too, for every tenant (numbers are shared): a status callback's outbox.
    detail = {"number_id": number_id, "from_state": from_state, "to_state": to_state, "actor": actor}
    audit(conn, EVERY_TENANT, at, NUMBER_STATE_CHANGED, reason, orjson.dumps(detail).decode())


def events_of(conn: Connection, number_id: str, limit: int = 50) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(number_events)
        .where(number_events.c.number_id == number_id)
        .order_by(number_events.c.at.desc(), number_events.c.id.desc())
        .limit(limit)
    ).mappings()
    return [{**row, "evidence": orjson.loads(row["evidence"]) if row["evidence"] else {}} for row in rows]


def sticky_numbers(conn: Connection, keys: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """(tenant, channel, recipient) -> the number the recipient last got."""
    if not keys:
        return {}
    found: dict[tuple[str, str, str], str] = {}
    a = number_assignments.c
    for tenant_id in sorted({k[0] for k in keys}):
        recipients = sorted({k[2] for k in keys if k[0] == tenant_id})
        for row in conn.execute(
            sa.select(a.tenant_id, a.channel, a.recipient, a.number_id).where(
                a.tenant_id == tenant_id, a.recipient.in_(recipients)
            )
        ):
            found[(row.tenant_id, row.channel, row.recipient)] = row.number_id
    return found


def assign_sticky(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    stmt = dialect_insert(conn, number_assignments)
    upsert = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "channel", "recipient"],
        set_={"number_id": stmt.excluded.number_id, "assigned_at": stmt.excluded.assigned_at},
    )
    # One row per new recipient on the dispatch path: skip SQLAlchemy's per-row work.
    executemany_fast(conn, "assign_sticky", upsert, rows)


def claim_checks(conn: Connection, at: float, interval: float, limit: int) -> list[dict[str, Any]]:
    """Numbers due a reputation check, claimed (checked_at = at) so that another worker process
    running the same schedule skips them: usable numbers not checked within `interval`, and
    suspects not checked since they became suspect."""
    n = numbers.c
    due = (
        sa.select(n.id)
        .where(
            n.state.in_([s.value for s in NumberState if s.usable]),
            sa.or_(
                n.checked_at.is_(None),
                n.checked_at <= at - interval,
                sa.and_(n.state == NumberState.SUSPECT.value, n.checked_at < n.state_since),
            ),
        )
        .order_by(n.checked_at.is_not(None), n.checked_at, n.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    rows = [dict(r) for r in conn.execute(sa.select(numbers).where(n.id.in_(ids))).mappings()]
    conn.execute(numbers.update().where(n.id.in_(ids)).values(checked_at=at))
    return rows


def unclaim_checks(conn: Connection, previous: Mapping[str, float | None], at: float) -> None:
    """A check that failed: the numbers are due again on the next run."""
    for number_id, checked_at in previous.items():
        conn.execute(
            numbers.update().where(numbers.c.id == number_id, numbers.c.checked_at == at).values(checked_at=checked_at)
        )


class NumbersRoom(Room):
    """Rows (dicts) are what the API, CLI and console render; SenderNumber is what the pool decides on."""

    async def number_rows(self, pool: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        return await self.db.read(list_numbers, pool, state)

    async def sender_numbers(self, pool: str | None = None, state: str | None = None) -> list[SenderNumber]:
        return [to_number(row) for row in await self.db.read(list_numbers, pool, state)]

    async def any_number(self) -> bool:
        return await self.db.read(any_number)

    async def number_row(self, number_id: str) -> dict[str, Any] | None:
        return await self.db.read(get_number, number_id)

    async def numbers_by_sender(self, senders: Sequence[str]) -> list[SenderNumber]:
        return [to_number(row) for row in await self.db.read(numbers_by_sender, senders)]

    async def add_number(self, row: dict[str, Any]) -> bool:
        """False when the pool already has this sender."""
        return await self.db.write(insert_number, row)

    async def sync_config_numbers(self, rows: Sequence[dict[str, Any]], now: float) -> int:
        return await self.db.write(sync_config_numbers, rows, now)

    async def update_number(self, number_id: str, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        return await self.db.write(update_number, number_id, changes, time.time())

    async def delete_number(self, number_id: str) -> bool:
        return await self.db.write(delete_number, number_id)

    async def apply_number_transition(
        self, number: SenderNumber, change: Transition, actor: str, now: float
    ) -> dict[str, Any] | None:
        """The number after the change; None when another process moved it first."""
        return await self.db.write(apply_transition, number, change, actor, now)

    async def number_events(self, number_id: str, limit: int = 50) -> list[dict[str, Any]]:
        return await self.db.read(events_of, number_id, limit)

    async def sticky_numbers(self, keys: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        return await self.db.read(sticky_numbers, keys)

    async def assign_sticky(self, rows: Sequence[dict[str, Any]]) -> None:
        await self.db.write(assign_sticky, rows)

    async def claim_number_checks(self, at: float, interval: float, limit: int) -> list[dict[str, Any]]:
        return await self.db.write(claim_checks, at, interval, limit)

    async def unclaim_number_checks(self, previous: Mapping[str, float | None], at: float) -> None:
        await self.db.write(unclaim_checks, previous, at)

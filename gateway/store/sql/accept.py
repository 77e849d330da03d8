"""Accepting jobs: the insert behind the accept group commit, idempotency keys decided in it."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.domain.recipients import CHANNEL_CHOSEN
from gateway.store.batcher import GroupCommitter
from gateway.store.records import CHANNEL_CHOICE, AcceptOutcome
from gateway.store.schema import events, messages
from gateway.store.sql.common import Room, any_of, executemany_fast, fetch_compiled, listed
from gateway.store.wakeups import notify_work

# Built once: a single job's commit (a trickle's) spent more building these than running them. One
# equality on tenant plus IN on keys, so the unique index serves it (a row-value IN over both columns
# makes SQLite scan the table).
_KEY_OWNERS = sa.select(messages.c.id, messages.c.idempotency_key).where(
    messages.c.tenant_id == sa.bindparam("tenant_id"),
    any_of(messages.c.idempotency_key, "keys"),
)
_INSERTS = {
    name: insert(messages).on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


def insert_accepted(conn: Connection, rows: Sequence[dict[str, Any]], now: float) -> list[AcceptOutcome]:
    """Insert accepted jobs in one statement, and their events (each job's status, a recipient's job's
    channel choice too) in another; a reused idempotency key loses to the stored row."""
    # A recipient's job's row carries its choice under a key that is no column: the insert names the
    # columns, so the rows go as they are (no copy of each without that key).
    columns = [key for key in rows[0] if key != CHANNEL_CHOICE]
    executemany_fast(conn, "accept", _INSERTS[conn.dialect.name], rows, columns)
    outcomes = [AcceptOutcome("accepted", row) for row in rows]
    keyed = [i for i, row in enumerate(rows) if row["idempotency_key"] is not None]
    if keyed:
        keys_by_tenant: dict[str, set[str]] = defaultdict(set)
        for i in keyed:
            keys_by_tenant[rows[i]["tenant_id"]].add(rows[i]["idempotency_key"])
        # Only ids first: nearly every key is new, and whole rows are needed just for the rest.
        owner: dict[tuple[str, str], str] = {}
        for tenant_id, keys in keys_by_tenant.items():
            params = {"tenant_id": tenant_id, "keys": listed(conn, sorted(keys))}
            for message_id, key in fetch_compiled(conn, _KEY_OWNERS, params):
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
            conn.execute(messages.insert(), [{key: rows[i][key] for key in columns} for i in stale])
    accepted = [o.row for o in outcomes if o.kind == "accepted"]
    if accepted:
        entries = []
        for r in accepted:
            entries.append(
                {
                    "tenant_id": r["tenant_id"],
                    "message_id": r["id"],
                    "at": r["created_at"],
                    "type": "status",
                    "status": r["status"],
                    "reason": r["reason"] or "accepted",  # a held-out job says why
                    "detail": None,
                }
            )
            if CHANNEL_CHOICE in r:
                entries.append(_choice_event(r, r[CHANNEL_CHOICE]))
        # One statement for both kinds (the same columns): a second one cost a statement per commit.
        executemany_fast(conn, "accept-event", events.insert(), entries)
        notify_work(conn)  # one notification per commit, however many jobs it carried
    return outcomes


def _choice_event(row: dict[str, Any], choice: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": row["tenant_id"],
        "message_id": row["id"],
        "at": row["created_at"],
        "type": CHANNEL_CHOSEN,
        "status": None,
        "reason": f"recipient.{choice['order_by']}",
        "detail": orjson.dumps(choice).decode(),
    }


class AcceptRoom(Room):
    _accepts: GroupCommitter[dict[str, Any], AcceptOutcome]
    work_available: asyncio.Event

    async def accept(self, rows: Sequence[dict[str, Any]]) -> list[AcceptOutcome]:
        """Commit jobs durably (together with whatever else is being accepted right now)."""
        return await self._accepts.submit_many(rows)

    async def accept_one(self, row: dict[str, Any]) -> AcceptOutcome:
        return await self._accepts.submit(row)

    async def _flush_accepts(self, rows: list[dict[str, Any]]) -> list[AcceptOutcome]:
        outcomes = await self.db.write_beside_loop(insert_accepted, rows, time.time())
        self.work_available.set()
        return outcomes

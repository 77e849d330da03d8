"""Status-callback subscriptions: a tenant's endpoints, their secrets, pausing, and the deliveries'
history and replay (the delivery loop's claims are in webhook_outbox.py)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.webhooks import DeliveryState, EndpointState
from gateway.store.schema import events, webhook_deliveries, webhook_endpoints
from gateway.store.sql.common import Room

_E = webhook_endpoints
_D = webhook_deliveries


def _endpoint(row: Any) -> dict[str, Any]:
    found = dict(row)
    found["events"] = orjson.loads(found["events"])
    return found


def create_endpoint(conn: Connection, row: dict[str, Any], most: int) -> dict[str, Any] | None:
    """Store a subscription; None when the tenant holds `most` already (counted under a lock, so two
    concurrent creates cannot both take the last place)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(zlib.crc32(row["tenant_id"].encode()))))
    held = conn.execute(sa.select(sa.func.count()).where(_E.c.tenant_id == row["tenant_id"])).scalar_one()
    if held >= most:
        return None
    after = conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one()
    stored = {**row, "events": orjson.dumps(row["events"]).decode(), "after_event_id": int(after)}
    conn.execute(_E.insert().values(**stored))
    return get_endpoint(conn, row["tenant_id"], row["id"])


def get_endpoint(conn: Connection, tenant_id: str, endpoint_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(_E).where(_E.c.tenant_id == tenant_id, _E.c.id == endpoint_id)).mappings().first()
    return _endpoint(row) if row else None


def list_endpoints(conn: Connection, tenant_id: str | None) -> list[dict[str, Any]]:
    query = sa.select(_E).order_by(_E.c.created_at, _E.c.id)
    if tenant_id is not None:
        query = query.where(_E.c.tenant_id == tenant_id)
    return [_endpoint(r) for r in conn.execute(query).mappings()]


def _locked_in_id_order(*conditions: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """The deliveries matching `conditions`, locked in id order before a statement changes them: the
    delivery loop records its results in that order, so the two wait for each other on PostgreSQL
    instead of deadlocking (each locking rows the other wants next). SQLite has one writer."""
    return _D.c.id.in_(sa.select(_D.c.id).where(*conditions).order_by(_D.c.id).with_for_update().scalar_subquery())


def delete_endpoint(conn: Connection, tenant_id: str, endpoint_id: str) -> bool:
    """Its deliveries go before the endpoint, in the order the delivery loop locks them (as resume
    does): the other order deadlocked on PostgreSQL against a round delivering to it."""
    mine = sa.exists().where(_E.c.tenant_id == tenant_id, _E.c.id == endpoint_id)
    conn.execute(_D.delete().where(_locked_in_id_order(_D.c.endpoint_id == endpoint_id, mine)))
    gone = conn.execute(_E.delete().where(_E.c.tenant_id == tenant_id, _E.c.id == endpoint_id)).rowcount
    return bool(gone)


def rotate_secret(
    conn: Connection, tenant_id: str, endpoint_id: str, secret: str, previous_until: float, now: float
) -> dict[str, Any] | None:
    """The new secret signs from now on; the old one beside it until `previous_until`."""
    found = get_endpoint(conn, tenant_id, endpoint_id)
    if found is None:
        return None
    conn.execute(
        _E.update()
        .where(_E.c.id == endpoint_id)
        .values(secret=secret, previous_secret=found["secret"], previous_until=previous_until, updated_at=now)
    )
    return get_endpoint(conn, tenant_id, endpoint_id)


def resume_endpoint(conn: Connection, tenant_id: str, endpoint_id: str, now: float) -> dict[str, Any] | None:
    """Active again, its failure streak forgotten and what waited while it was paused due at once.

    The deliveries are changed before the endpoint, in the order the delivery loop locks them (results,
    then the endpoint's counters): the other order deadlocked with it on PostgreSQL."""
    if get_endpoint(conn, tenant_id, endpoint_id) is None:
        return None
    conn.execute(
        _D.update()
        .where(_locked_in_id_order(_D.c.endpoint_id == endpoint_id, _D.c.state == DeliveryState.PENDING))
        .values(next_attempt_at=now)
    )
    result = conn.execute(
        _E.update()
        .where(_E.c.tenant_id == tenant_id, _E.c.id == endpoint_id)
        .values(
            state=EndpointState.ACTIVE,
            paused_reason=None,
            paused_at=None,
            consecutive_failures=0,
            failing_since=None,
            updated_at=now,
        )
    )
    if not result.rowcount:
        return None
    return get_endpoint(conn, tenant_id, endpoint_id)


def pause_endpoint(conn: Connection, endpoint_id: str, reason: str, now: float) -> bool:
    result = conn.execute(
        _E.update()
        .where(_E.c.id == endpoint_id, _E.c.state == EndpointState.ACTIVE)
        .values(state=EndpointState.PAUSED, paused_reason=reason, paused_at=now, updated_at=now)
    )
    return bool(result.rowcount)


def deliveries_page(
    conn: Connection, endpoint_id: str, state: str | None, before_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """One page of an endpoint's deliveries, newest first (keyset on the id)."""
    query = sa.select(_D).where(_D.c.endpoint_id == endpoint_id)
    if state is not None:
        query = query.where(_D.c.state == state)
    if before_id is not None:
        query = query.where(_D.c.id < before_id)
    return [dict(r) for r in conn.execute(query.order_by(_D.c.id.desc()).limit(limit)).mappings()]


def replay(conn: Connection, endpoint_id: str, since: float, include_delivered: bool, now: float) -> int:
    """Send again, from now, the endpoint's events since `since` that are dead-lettered or still
    failing (and, asked to, those delivered): each with its own webhook-id, so a receiver that had it
    drops the repeat. Retries start over, with a new horizon."""
    states = [DeliveryState.DEAD, DeliveryState.PENDING]
    if include_delivered:
        states.append(DeliveryState.DELIVERED)
    result = conn.execute(
        _D.update()
        .where(_locked_in_id_order(_D.c.endpoint_id == endpoint_id, _D.c.event_at >= since, _D.c.state.in_(states)))
        .values(
            state=DeliveryState.PENDING,
            attempts=0,
            first_attempt_at=None,
            next_attempt_at=now,
            delivered_at=None,
        )
    )
    return int(result.rowcount or 0)


def prune_deliveries(conn: Connection, state: str, finished_before: float, limit: int) -> int:
    """Delete up to `limit` deliveries in `state` (delivered or dead) that finished before the time
    given; the count deleted. A finished delivery's next_attempt_at is when it finished (record_results
    sets it to its last attempt's time), so the due index finds the old rows without a scan of the rest.
    The outer conditions are checked again on each row (a replay may have made it pending meanwhile)."""
    old = (
        sa.select(_D.c.id)
        .where(_D.c.state == state, _D.c.next_attempt_at < finished_before)
        .order_by(_D.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # a row a replay or a result holds is pruned next time
    )
    result = conn.execute(
        _D.delete().where(
            _D.c.id.in_(old.scalar_subquery()), _D.c.state == state, _D.c.next_attempt_at < finished_before
        )
    )
    return int(result.rowcount or 0)


PENDING_OR_DEAD = [DeliveryState.PENDING.value, DeliveryState.DEAD.value]


def delivery_health(conn: Connection, endpoint_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per endpoint: its pending and dead deliveries, and the time of the oldest event still waiting
    (its lag). Delivered ones are counted on the endpoint's row: read here, the days of them kept
    (`webhooks.delivered_retention_days`) made this read, every 5 s, cost 195 ms on SQLite at a
    million, growing with the traffic."""
    health: dict[str, dict[str, Any]] = {e: {"counts": {}, "oldest_pending_at": None} for e in endpoint_ids}
    if not endpoint_ids:
        return health
    rows = conn.execute(
        sa.select(_D.c.endpoint_id, _D.c.state, sa.func.count(), sa.func.min(_D.c.event_at))
        .where(_D.c.endpoint_id.in_(list(endpoint_ids)), _D.c.state.in_(PENDING_OR_DEAD))
        .group_by(_D.c.endpoint_id, _D.c.state)
    )
    for endpoint_id, state, count, oldest in rows:
        health[endpoint_id]["counts"][state] = int(count)
        if state == DeliveryState.PENDING:
            health[endpoint_id]["oldest_pending_at"] = oldest
    return health


class WebhooksRoom(Room):
    async def create_webhook(self, row: dict[str, Any], most: int) -> dict[str, Any] | None:
        return await self.db.write(create_endpoint, row, most)

    async def get_webhook(self, tenant_id: str, endpoint_id: str) -> dict[str, Any] | None:
        return await self.db.read(get_endpoint, tenant_id, endpoint_id)

    async def list_webhooks(self, tenant_id: str | None) -> list[dict[str, Any]]:
        return await self.db.read(list_endpoints, tenant_id)

    async def delete_webhook(self, tenant_id: str, endpoint_id: str) -> bool:
        return await self.db.write(delete_endpoint, tenant_id, endpoint_id)

    async def rotate_webhook_secret(
        self, tenant_id: str, endpoint_id: str, secret: str, previous_until: float, now: float
    ) -> dict[str, Any] | None:
        return await self.db.write(rotate_secret, tenant_id, endpoint_id, secret, previous_until, now)

    async def resume_webhook(self, tenant_id: str, endpoint_id: str, now: float) -> dict[str, Any] | None:
        return await self.db.write(resume_endpoint, tenant_id, endpoint_id, now)

    async def pause_webhook(self, endpoint_id: str, reason: str, now: float) -> bool:
        return await self.db.write(pause_endpoint, endpoint_id, reason, now)

    async def webhook_deliveries(
        self, endpoint_id: str, state: str | None, before_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        return await self.db.read(deliveries_page, endpoint_id, state, before_id, limit)

    async def replay_webhook(self, endpoint_id: str, since: float, include_delivered: bool, now: float) -> int:
        return await self.db.write(replay, endpoint_id, since, include_delivered, now)

    async def prune_webhook_deliveries(self, state: str, finished_before: float, batch: int) -> int:
        return await self.db.write(prune_deliveries, state, finished_before, batch)

    async def webhook_health(self, endpoint_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return await self.db.read(delivery_health, endpoint_ids)

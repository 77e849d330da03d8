"""Experiments: a campaign's arms and holdout share, per tenant (docs/campaigns.md)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.experiments import Experiment
from gateway.store.schema import experiments
from gateway.store.sql.common import Room, audit, dialect_insert


def get_experiment(conn: Connection, tenant_id: str, campaign: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            sa.select(experiments).where(experiments.c.tenant_id == tenant_id, experiments.c.campaign == campaign)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return {**dict(row), "variants": orjson.loads(row["variants"])}


def put_experiment(
    conn: Connection, tenant_id: str, campaign: str, experiment: Experiment
) -> tuple[bool, dict[str, Any]]:
    """Declare or replace the campaign's experiment; True when it is new. Jobs already assigned keep
    their arm: only later jobs with variant auto are assigned by the new weights."""
    now = time.time()
    arms = orjson.dumps(dict(experiment.variants)).decode()
    values: dict[str, Any] = {"variants": arms, "holdout": experiment.holdout, "updated_at": now}
    scope = sa.and_(experiments.c.tenant_id == tenant_id, experiments.c.campaign == campaign)
    # Two first declarations at once: the primary key lets one insert, the other replaces it.
    inserted = conn.execute(
        dialect_insert(conn, experiments)
        .values(tenant_id=tenant_id, campaign=campaign, created_at=now, **values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "campaign"])
        .returning(experiments.c.campaign)
    ).first()
    replaced = inserted is None
    if replaced:
        conn.execute(experiments.update().where(scope).values(**values))
    audit(conn, tenant_id, now, "experiment", "replaced" if replaced else "declared", detail=arms)
    stored = get_experiment(conn, tenant_id, campaign)
    assert stored is not None
    return not replaced, stored


class ExperimentsRoom(Room):
    async def get_experiment(self, tenant_id: str, campaign: str) -> dict[str, Any] | None:
        return await self.db.read(get_experiment, tenant_id, campaign)

    async def put_experiment(
        self, tenant_id: str, campaign: str, experiment: Experiment
    ) -> tuple[bool, dict[str, Any]]:
        return await self.db.write(put_experiment, tenant_id, campaign, experiment)

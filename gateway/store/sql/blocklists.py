"""Tenants' word lists for the content policy."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.schema import blocklists
from gateway.store.sql.common import Room, audit


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
    audit(
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
        audit(conn, tenant_id, at, "blocklist.deleted", name)
    return bool(result.rowcount)


def get_blocklists(conn: Connection, tenant_id: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(blocklists).order_by(blocklists.c.tenant_id, blocklists.c.name)
    if tenant_id is not None:
        query = query.where(blocklists.c.tenant_id == tenant_id)
    return [{**dict(r), "words": orjson.loads(r["words"])} for r in conn.execute(query).mappings()]


def blocklists_version(conn: Connection) -> tuple[int, float]:
    count, latest = conn.execute(sa.select(sa.func.count(), sa.func.max(blocklists.c.updated_at))).one()
    return int(count or 0), float(latest or 0.0)


class BlocklistsRoom(Room):
    async def put_blocklist(self, tenant_id: str, name: str, words: Sequence[str], severity: str) -> bool:
        return await self.db.write(put_blocklist, tenant_id, name, words, severity, time.time())

    async def delete_blocklist(self, tenant_id: str, name: str) -> bool:
        return await self.db.write(delete_blocklist, tenant_id, name, time.time())

    async def blocklists(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        return await self.db.read(get_blocklists, tenant_id)

    async def blocklists_version(self) -> tuple[int, float]:
        return await self.db.read(blocklists_version)

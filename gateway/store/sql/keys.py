"""Tenants, API keys and shared secrets."""

from __future__ import annotations

import secrets as pysecrets
import time
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.schema import api_keys, secrets, tenants
from gateway.store.sql.common import Room, audit, dialect_insert


def ensure_tenant(conn: Connection, tenant_id: str, name: str | None = None) -> None:
    stmt = dialect_insert(conn, tenants).values(id=tenant_id, name=name or tenant_id, created_at=time.time())
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
        audit(
            conn,
            tenant_id,
            at,
            "api_key.used",
            key_id,
            detail=orjson.dumps({"requests": count, "last_used_at": last}).decode(),
        )


def get_or_create_secret(conn: Connection, name: str) -> str:
    """A secret shared by every process on this store (e.g. the sandbox's receipt signing key)."""
    stmt = dialect_insert(conn, secrets).values(name=name, value=pysecrets.token_hex(32), created_at=time.time())
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    return str(conn.execute(sa.select(secrets.c.value).where(secrets.c.name == name)).scalar_one())


class KeysRoom(Room):
    async def ensure_tenant(self, tenant_id: str, name: str | None = None) -> None:
        await self.db.write(ensure_tenant, tenant_id, name)

    async def add_api_key(self, row: dict[str, Any]) -> None:
        await self.db.write(insert_api_key, row)

    async def provision_api_key(self, row: dict[str, Any]) -> bool:
        return await self.db.write(upsert_provisioned_key, row)

    async def count_api_keys(self) -> int:
        return await self.db.read(count_api_keys)

    async def find_api_key(self, key_hash: str) -> dict[str, Any] | None:
        return await self.db.read(find_api_key, key_hash)

    async def list_api_keys(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        return await self.db.read(list_api_keys, tenant_id)

    async def revoke_api_key(self, key_id: str) -> bool:
        return await self.db.write(revoke_api_key, key_id, time.time())

    async def record_key_use(self, uses: Sequence[tuple[str, str, int, float]]) -> None:
        await self.db.write(record_key_use, uses, time.time())

    async def get_or_create_secret(self, name: str) -> str:
        return await self.db.write(get_or_create_secret, name)

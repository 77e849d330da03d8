"""Message templates: a tenant's drafts by name, their immutable numbered versions, and an audit row
for every change (who, what, when) in template_changes and the audit log."""

from __future__ import annotations

import time
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.schema import template_changes, template_versions, templates
from gateway.store.sql.common import Room, audit, dialect_insert


def _changed(conn: Connection, row: dict[str, Any], action: str, actor: str, at: float, **detail: Any) -> None:
    version = detail.pop("version", None)
    text = orjson.dumps(detail).decode() if detail else None
    conn.execute(
        template_changes.insert().values(
            template_id=row["id"],
            tenant_id=row["tenant_id"],
            action=action,
            version=version,
            actor=actor,
            at=at,
            detail=text,
        )
    )
    summary = orjson.dumps({"name": row["name"], "version": version, "actor": actor, **detail}).decode()
    audit(conn, row["tenant_id"], at, f"template.{action}", row["name"], detail=summary)


def _one(conn: Connection, tenant_id: str, name: str) -> dict[str, Any] | None:
    found = (
        conn.execute(sa.select(templates).where(templates.c.tenant_id == tenant_id, templates.c.name == name))
        .mappings()
        .first()
    )
    return dict(found) if found is not None else None


def create_template(
    conn: Connection, tenant_id: str, name: str, draft: str, actor: str, at: float
) -> dict[str, Any] | None:
    """The new draft, or None when the tenant has a template of that name (archived or not)."""
    stmt = (
        dialect_insert(conn, templates)
        .values(
            tenant_id=tenant_id, name=name, draft=draft, archived=False, latest_version=0, created_at=at, updated_at=at
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "name"])
        .returning(templates.c.id)
    )
    if conn.execute(stmt).first() is None:
        return None
    row = _one(conn, tenant_id, name)
    assert row is not None
    _changed(conn, row, "created", actor, at)
    return row


def update_draft(
    conn: Connection, tenant_id: str, name: str, draft: str, fields: list[str], actor: str, at: float
) -> dict[str, Any] | None:
    """The draft replaced (an archived template's too: the caller refuses that first)."""
    result = conn.execute(
        templates.update()
        .where(templates.c.tenant_id == tenant_id, templates.c.name == name)
        .values(draft=draft, updated_at=at)
    )
    if not result.rowcount:
        return None
    row = _one(conn, tenant_id, name)
    assert row is not None
    _changed(conn, row, "updated", actor, at, fields=fields)
    return row


def publish(
    conn: Connection, tenant_id: str, name: str, content: str, findings: str, actor: str, at: float
) -> int | None:
    """A new version of `content` (the draft the caller linted); None when the template is gone or
    archived. The number comes from one UPDATE, so two publishes at once get two numbers."""
    numbered = conn.execute(
        templates.update()
        .where(templates.c.tenant_id == tenant_id, templates.c.name == name, templates.c.archived.is_(False))
        .values(latest_version=templates.c.latest_version + 1, updated_at=at)
        .returning(templates.c.id, templates.c.latest_version)
    ).first()
    if numbered is None:
        return None
    template_id, version = int(numbered[0]), int(numbered[1])
    conn.execute(
        template_versions.insert().values(
            template_id=template_id,
            version=version,
            content=content,
            findings=findings,
            created_at=at,
            created_by=actor,
        )
    )
    row = _one(conn, tenant_id, name)
    assert row is not None
    _changed(conn, row, "published", actor, at, version=version)
    return version


def archive(conn: Connection, tenant_id: str, name: str, actor: str, at: float) -> dict[str, Any] | None:
    row = _one(conn, tenant_id, name)
    if row is None or row["archived"]:
        return row
    conn.execute(templates.update().where(templates.c.id == row["id"]).values(archived=True, updated_at=at))
    _changed(conn, row, "archived", actor, at)
    return {**row, "archived": True, "updated_at": at}


def list_templates(
    conn: Connection, tenant_id: str, after_id: int | None, limit: int, archived: bool
) -> list[dict[str, Any]]:
    query = sa.select(templates).where(templates.c.tenant_id == tenant_id)
    if not archived:
        query = query.where(templates.c.archived.is_(False))
    if after_id is not None:
        query = query.where(templates.c.id > after_id)
    return [dict(r) for r in conn.execute(query.order_by(templates.c.id).limit(limit)).mappings()]


def versions(conn: Connection, template_id: int) -> list[dict[str, Any]]:
    query = (
        sa.select(template_versions)
        .where(template_versions.c.template_id == template_id)
        .order_by(template_versions.c.version.desc())
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def template_version(
    conn: Connection, tenant_id: str, name: str, version: int | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The template and one of its versions (None: the latest); either None when there is none."""
    template = _one(conn, tenant_id, name)
    if template is None:
        return None, None
    number = version if version is not None else template["latest_version"]
    found = (
        conn.execute(
            sa.select(template_versions).where(
                template_versions.c.template_id == template["id"], template_versions.c.version == number
            )
        )
        .mappings()
        .first()
    )
    return template, dict(found) if found is not None else None


def changes(conn: Connection, template_id: int) -> list[dict[str, Any]]:
    query = sa.select(template_changes).where(template_changes.c.template_id == template_id)
    return [dict(r) for r in conn.execute(query.order_by(template_changes.c.id)).mappings()]


class TemplatesRoom(Room):
    async def create_template(self, tenant_id: str, name: str, draft: str, actor: str) -> dict[str, Any] | None:
        return await self.db.write(create_template, tenant_id, name, draft, actor, time.time())

    async def update_template_draft(
        self, tenant_id: str, name: str, draft: str, fields: list[str], actor: str
    ) -> dict[str, Any] | None:
        return await self.db.write(update_draft, tenant_id, name, draft, fields, actor, time.time())

    async def publish_template(self, tenant_id: str, name: str, content: str, findings: str, actor: str) -> int | None:
        return await self.db.write(publish, tenant_id, name, content, findings, actor, time.time())

    async def archive_template(self, tenant_id: str, name: str, actor: str) -> dict[str, Any] | None:
        return await self.db.write(archive, tenant_id, name, actor, time.time())

    async def get_template(self, tenant_id: str, name: str) -> dict[str, Any] | None:
        return await self.db.read(_one, tenant_id, name)

    async def list_templates(
        self, tenant_id: str, after_id: int | None, limit: int, archived: bool
    ) -> list[dict[str, Any]]:
        return await self.db.read(list_templates, tenant_id, after_id, limit, archived)

    async def template_versions(self, template_id: int) -> list[dict[str, Any]]:
        return await self.db.read(versions, template_id)

    async def template_version(
        self, tenant_id: str, name: str, version: int | None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        return await self.db.read(template_version, tenant_id, name, version)

    async def template_changes(self, template_id: int) -> list[dict[str, Any]]:
        return await self.db.read(changes, template_id)

"""Tracked links, their clicks and the conversions attributed to them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.batcher import GroupCommitter
from gateway.store.schema import CLICK_KIND, clicks, conversions, events, links
from gateway.store.sql.common import Room, audit, dialect_insert, insert_rows
from gateway.store.sql.recipients import mark_engaged


def find_link(conn: Connection, token: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(links).where(links.c.token == token)).mappings().first()
    return dict(row) if row else None


# A message clicked again this soon after its last engagement mark is not marked again: a person's
# engaged_at may trail their latest click by this much (docs/recipients.md), one update per message
# per interval instead of one per click.
ENGAGEMENT_RESOLUTION_SECONDS = 60.0
ENGAGEMENT_MARKS_KEPT = 100_000


def record_clicks(conn: Connection, rows: Sequence[dict[str, Any]], engaged: Sequence[str] = ()) -> None:
    """The clicks, each with its entry in the audit log (in the same transaction: the callbacks' outbox),
    and the engagement of the people behind the messages `engaged`."""
    if rows:
        insert_rows(conn, clicks, rows)
        insert_rows(conn, events, [_click_event(r) for r in rows])
        if engaged:
            mark_engaged(conn, engaged, max(r["at"] for r in rows if not r["automated"]))


class EngagementMarks:
    """When this process last committed each clicked message's engagement mark."""

    def __init__(self) -> None:
        self._marked_at: dict[str, float] = {}

    def due(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        """The messages clicked by a person (a link preview is nobody engaging) not marked lately."""
        due = set()
        for row in rows:
            if not row["automated"]:
                last = self._marked_at.get(row["message_id"])
                if last is None or row["at"] - last >= ENGAGEMENT_RESOLUTION_SECONDS:
                    due.add(row["message_id"])
        return sorted(due)

    def committed(self, message_ids: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
        if message_ids:
            if len(self._marked_at) >= ENGAGEMENT_MARKS_KEPT:
                self._marked_at.clear()
            at = max(r["at"] for r in rows if not r["automated"])
            self._marked_at.update(dict.fromkeys(message_ids, at))


def _click_event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": row["tenant_id"],
        "message_id": row["message_id"] or None,
        "at": row["at"],
        "type": CLICK_KIND,
        "status": None,
        "reason": "automated" if row["automated"] else "person",
        "detail": orjson.dumps({"token": row["token"]}).decode(),
    }


def add_conversion(conn: Connection, row: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Record a conversion once per (tenant, event_id); a repeat returns the first one."""
    stmt = (
        dialect_insert(conn, conversions).values(**row).on_conflict_do_nothing(index_elements=["tenant_id", "event_id"])
    )
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
        mark_engaged(conn, [row["message_id"]], row["received_at"])
        audit(
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


def message_links(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            sa.select(links.c.token, links.c.url).where(links.c.message_id == message_id).order_by(links.c.token)
        ).mappings()
    ]


class TrackingRoom(Room):
    click_synchronous: str | None
    engagement_marks: EngagementMarks
    _clicks: GroupCommitter[dict[str, Any], None]
    _queued_clicks: GroupCommitter[dict[str, Any], None]

    async def find_link(self, token: str) -> dict[str, Any] | None:
        return await self.db.read(find_link, token)

    async def record_click(self, click: dict[str, Any], wait: bool = True) -> None:
        """Clicks that arrive together share a commit (a campaign's links are clicked in bursts).
        wait=False returns once the click is queued for the next commit (links.wait_for_click_commit)."""
        if wait:
            await self._clicks.submit(click)
        else:
            self._queued_clicks.add([click])

    async def flush_clicks(self) -> None:
        """Wait until the clicks queued so far are committed."""
        await self._clicks.settle()
        await self._queued_clicks.settle()

    async def _flush_clicks(self, rows: list[dict[str, Any]]) -> list[None]:
        # Beside the loop, as accepts and outcomes: the COMMIT (the fsync at synchronous=FULL) on a
        # commit thread while the loop answers the next clicks, which gather for the next flush.
        engaged = self.engagement_marks.due(rows)
        await self.db.write_beside_loop(record_clicks, rows, engaged, synchronous=self.click_synchronous)
        self.engagement_marks.committed(engaged, rows)
        return [None] * len(rows)

    async def add_conversion(self, row: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        return await self.db.write(add_conversion, row)

    async def message_clicks(self, message_id: str) -> list[dict[str, Any]]:
        return await self.db.read(message_clicks, message_id)

    async def message_links(self, message_id: str) -> list[dict[str, Any]]:
        return await self.db.read(message_links, message_id)

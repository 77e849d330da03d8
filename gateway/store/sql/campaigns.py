"""Campaign reports: sends, deliveries, clicks and conversions per campaign and variant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.models import FAILED, SENT, Status
from gateway.domain.tracking import CAMPAIGN_DIMENSIONS
from gateway.store.schema import clicks, conversions, links, messages
from gateway.store.sql.common import Room

# Every dimension of the campaign report is the messages column of that name.
CAMPAIGN_COLUMNS = {name: messages.c[name] for name in CAMPAIGN_DIMENSIONS}


# The reason the policy gate gives a marketing job to a sleeping recipient (gateway/gate.py).
SLEEPING_REASON = "suppressed.sleeping"


def campaign_report(conn: Connection, tenant_id: str, campaign: str, group_by: Sequence[str]) -> list[dict[str, Any]]:
    dims = [CAMPAIGN_COLUMNS[name].label(name) for name in group_by]
    keys = [CAMPAIGN_COLUMNS[name] for name in group_by]
    scope = sa.and_(messages.c.tenant_id == tenant_id, messages.c.campaign == campaign)

    def count_if(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in conn.execute(
        sa.select(
            *dims,
            sa.func.count().label("messages"),
            count_if(messages.c.status.in_(sorted(SENT))).label("sent"),
            count_if(messages.c.status == Status.DELIVERED).label("delivered"),
            count_if(messages.c.status.in_(sorted(FAILED))).label("failed"),
            count_if(messages.c.status == Status.SUPPRESSED).label("suppressed"),
            count_if(messages.c.reason == SLEEPING_REASON).label("sleeping"),
        )
        .where(scope)
        .group_by(*keys)
    ).mappings():
        key = tuple(row[name] for name in group_by)
        groups[key] = {
            **{name: row[name] for name in group_by},
            "messages": int(row["messages"]),
            "sent": int(row["sent"] or 0),
            "delivered": int(row["delivered"] or 0),
            "failed": int(row["failed"] or 0),
            "suppressed": int(row["suppressed"] or 0),
            "sleeping": int(row["sleeping"] or 0),
            "clicks": 0,
            "human_clicks": 0,
            "unique_clicks": 0,
            "conversions": 0,
            "value": 0.0,
            "seconds_to_first_click": [],
        }
    first_clicks = conn.execute(
        sa.select(
            *dims,
            messages.c.id,
            messages.c.created_at,
            sa.func.count().label("all"),
            count_if(clicks.c.automated.is_(False)).label("human"),
            sa.func.min(sa.case((clicks.c.automated.is_(False), clicks.c.at), else_=None)).label("first"),
        )
        .join(clicks, clicks.c.message_id == messages.c.id)
        .where(scope)
        .group_by(*keys, messages.c.id, messages.c.created_at)
    ).mappings()
    for row in first_clicks:
        group = groups[tuple(row[name] for name in group_by)]
        group["clicks"] += int(row["all"])
        group["human_clicks"] += int(row["human"] or 0)
        if row["first"] is not None:
            group["unique_clicks"] += 1
            group["seconds_to_first_click"].append(row["first"] - row["created_at"])
    for row in conn.execute(
        sa.select(*dims, sa.func.count().label("conversions"), sa.func.sum(conversions.c.value).label("value"))
        .join(conversions, conversions.c.message_id == messages.c.id)
        .where(scope)
        .group_by(*keys)
    ).mappings():
        group = groups[tuple(row[name] for name in group_by)]
        group["conversions"] = int(row["conversions"])
        group["value"] = float(row["value"] or 0.0)
    return list(groups.values())


def campaign_link_report(conn: Connection, tenant_id: str, campaign: str) -> list[dict[str, Any]]:
    """Clicks and conversions through per_campaign links, by variant: people are told apart by hashed IP."""
    shared = sa.and_(links.c.message_id == "", links.c.tenant_id == tenant_id, links.c.campaign == campaign)
    report: dict[Any, dict[str, Any]] = {}
    for row in conn.execute(
        sa.select(
            links.c.variant,
            sa.func.count(clicks.c.id).label("clicks"),
            sa.func.sum(sa.case((clicks.c.automated.is_(False), 1), else_=0)).label("human_clicks"),
            sa.func.count(sa.distinct(sa.case((clicks.c.automated.is_(False), clicks.c.ip_hash), else_=None))).label(
                "unique_visitors"
            ),
        )
        .select_from(links.outerjoin(clicks, clicks.c.token == links.c.token))
        .where(shared)
        .group_by(links.c.variant)
    ).mappings():
        report[row["variant"]] = {
            "variant": row["variant"],
            "clicks": int(row["clicks"] or 0),
            "human_clicks": int(row["human_clicks"] or 0),
            "unique_visitors": int(row["unique_visitors"] or 0),
            "conversions": 0,
            "value": 0.0,
        }
    for row in conn.execute(
        sa.select(
            links.c.variant, sa.func.count().label("conversions"), sa.func.sum(conversions.c.value).label("value")
        )
        .join(conversions, conversions.c.click_token == links.c.token)
        .where(shared, conversions.c.message_id == "")
        .group_by(links.c.variant)
    ).mappings():
        report[row["variant"]].update(conversions=int(row["conversions"]), value=float(row["value"] or 0.0))
    return sorted(report.values(), key=lambda r: str(r["variant"] or ""))


def campaign_names(conn: Connection, tenant_id: str, limit: int = 200) -> list[str]:
    """A tenant's campaigns in name order, one index probe each (a loose index scan), so the list
    costs the number of campaigns, not the number of messages."""
    names: list[str] = []
    after: str | None = None
    while len(names) < limit:
        query = sa.select(messages.c.campaign).where(
            messages.c.tenant_id == tenant_id, messages.c.campaign.is_not(None)
        )
        if after is not None:
            query = query.where(messages.c.campaign > after)
        after = conn.execute(query.order_by(messages.c.campaign).limit(1)).scalar()
        if after is None:
            break
        names.append(after)
    return names


class CampaignsRoom(Room):
    async def campaign_report(self, tenant_id: str, campaign: str, group_by: Sequence[str]) -> list[dict[str, Any]]:
        return await self.db.read(campaign_report, tenant_id, campaign, group_by)

    async def campaign_link_report(self, tenant_id: str, campaign: str) -> list[dict[str, Any]]:
        return await self.db.read(campaign_link_report, tenant_id, campaign)

    async def campaign_names(self, tenant_id: str, limit: int = 200) -> list[str]:
        return await self.db.read(campaign_names, tenant_id, limit)

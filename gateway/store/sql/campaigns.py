"""Campaign reports: sends, deliveries, clicks, conversions, cost, suppressions and deferrals per
campaign, by any of the report's dimensions; and the campaign list with its totals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from gateway.domain.models import FAILED, SENT, Status
from gateway.domain.tracking import METADATA_DIMENSION, RECIPIENT_STATE, RecipientState
from gateway.store.schema import (
    NOT_A_CLICK,
    attempts,
    claims,
    clicks,
    conversions,
    events,
    links,
    message_keys,
    messages,
)
from gateway.store.sql.common import Room, keyed
from gateway.store.sql.recipients import sleeping_users

# The plain dimensions of the campaign report are the messages column of that name.
CAMPAIGN_COLUMNS = {name: messages.c[name] for name in ("variant", "channel", "provider", "sender", "campaign")}

# The reason the policy gate gives a marketing job to a sleeping recipient (gateway/gate.py).
SLEEPING_REASON = "suppressed.sleeping"

# (tenant's sleeping policy as (unanswered sends, since)), or None: nobody sleeps but those suppressed for it.
SleepingWindow = tuple[int, float] | None


def metadata_value(dialect: str, key: str) -> Any:
    """A message's metadata value at `key`, as text on both engines (true/false/numbers as JSON writes them)."""
    if dialect == "postgresql":
        return sa.func.json_extract_path_text(sa.cast(messages.c.metadata, postgresql.JSON), key)
    path = sa.literal(f'$."{key}"')  # key is [A-Za-z0-9_.-] (the contract's pattern): nothing to escape
    kind = sa.func.json_type(messages.c.metadata, path)
    return sa.case(
        (kind == "true", "true"),
        (kind == "false", "false"),
        (kind.in_(("object", "array")), sa.func.json_extract(messages.c.metadata, path)),
        else_=sa.cast(sa.func.json_extract(messages.c.metadata, path), sa.Text),
    )


def recipient_state(tenant_id: str, sleeping: SleepingWindow) -> Any:
    """sleeping (suppressed for it, or asleep now by the policy), awake, or null for a job with no user_id."""
    asleep: Any = messages.c.reason == SLEEPING_REASON
    if sleeping is not None:
        asleep = sa.or_(asleep, messages.c.user_id.in_(sleeping_users(tenant_id, *sleeping)))
    return sa.case(
        (asleep, RecipientState.SLEEPING.value),
        (messages.c.user_id.is_(None), None),
        else_=RecipientState.AWAKE.value,
    )


def dimension(conn: Connection, name: str, tenant_id: str, sleeping: SleepingWindow) -> Any:
    if name in CAMPAIGN_COLUMNS:
        return CAMPAIGN_COLUMNS[name]
    if name == RECIPIENT_STATE:
        return recipient_state(tenant_id, sleeping)
    if name.startswith(METADATA_DIMENSION):
        return metadata_value(conn.dialect.name, name[len(METADATA_DIMENSION) :])
    raise ValueError(f"not a campaign report dimension: {name}")


def _count_if(condition: Any) -> Any:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _new_group(names: Sequence[str], key: tuple[Any, ...]) -> dict[str, Any]:
    return {
        **dict(zip(names, key, strict=True)),
        "messages": 0,
        "sent": 0,
        "delivered": 0,
        "failed": 0,
        "suppressed": 0,
        "sleeping": 0,
        "held_out": 0,
        "clicks": 0,
        "human_clicks": 0,
        "unique_clicks": 0,
        "conversions": 0,
        "converted": 0,
        "value": 0.0,
        "seconds_to_first_click": [],
        "cost": {},
        "suppressed_by_reason": {},
        "deferred_by_reason": {},
        "claims_verified": 0,
        "claims_refused": 0,
    }


class _Report:
    """One report's queries over the messages in `scope`, grouped by the labelled dimensions."""

    def __init__(self, conn: Connection, scope: Any, dims: Sequence[tuple[str, Any]]) -> None:
        self.conn = conn
        self.scope = scope
        self.names = [name for name, _ in dims]
        self.exprs = [expr.label(f"d{i}") for i, (_, expr) in enumerate(dims)]
        # By output name: an expression with bound values (a CASE, a JSON path) written again in the
        # GROUP BY gets new placeholders, and PostgreSQL would not know it for the selected one.
        self.keys: list[Any] = [sa.literal_column(f"d{i}") for i in range(len(dims))]
        self.labels = {expr.name for expr in self.exprs}
        self.groups: dict[tuple[Any, ...], dict[str, Any]] = {}

    def group(self, row: Any) -> dict[str, Any]:
        key = tuple(row[f"d{i}"] for i in range(len(self.names)))
        found = self.groups.get(key)
        if found is None:
            found = self.groups[key] = _new_group(self.names, key)
        return found

    def rows(self, *columns: Any, join: Any = None, where: Any = None, group_by: Sequence[Any] = ()) -> Any:
        query = sa.select(*self.exprs, *columns)
        if join is not None:
            query = query.select_from(join)
        query = query.where(self.scope, *(() if where is None else (where,)))
        return self.conn.execute(query.group_by(*self.keys, *group_by)).mappings()

    def run(self) -> list[dict[str, Any]]:
        self._counts()
        self._clicks()
        self._conversions()
        self._costs()
        self._reasons()
        self._claims()
        return list(self.groups.values())

    def _counts(self) -> None:
        for row in self.rows(
            sa.func.count().label("messages"),
            _count_if(messages.c.status.in_(sorted(SENT))).label("sent"),
            _count_if(messages.c.status == Status.DELIVERED).label("delivered"),
            _count_if(messages.c.status.in_(sorted(FAILED))).label("failed"),
            _count_if(messages.c.status == Status.SUPPRESSED).label("suppressed"),
            _count_if(messages.c.reason == SLEEPING_REASON).label("sleeping"),
            _count_if(messages.c.status == Status.HELD_OUT).label("held_out"),
        ):
            group = self.group(row)
            for name, count in row.items():
                if name not in self.labels:
                    group[name] = int(count or 0)

    def _clicks(self) -> None:
        per_message = self.conn.execute(
            sa.select(
                *self.exprs,
                messages.c.created_at,
                sa.func.count().label("all"),
                _count_if(clicks.c.automated.is_(False)).label("human"),
                sa.func.min(sa.case((clicks.c.automated.is_(False), clicks.c.at), else_=None)).label("first"),
            )
            .select_from(messages.join(clicks, clicks.c.message_id == messages.c.id))
            .where(self.scope)
            .group_by(*self.keys, messages.c.id, messages.c.created_at)
        ).mappings()
        for row in per_message:
            group = self.group(row)
            group["clicks"] += int(row["all"])
            group["human_clicks"] += int(row["human"] or 0)
            if row["first"] is not None:
                group["unique_clicks"] += 1
                group["seconds_to_first_click"].append(row["first"] - row["created_at"])

    def _conversions(self) -> None:
        for row in self.rows(
            sa.func.count().label("conversions"),
            sa.func.count(sa.distinct(conversions.c.message_id)).label("converted"),
            sa.func.sum(conversions.c.value).label("value"),
            join=messages.join(conversions, conversions.c.message_id == messages.c.id),
        ):
            group = self.group(row)
            group["conversions"] = int(row["conversions"])
            group["converted"] = int(row["converted"])
            group["value"] = float(row["value"] or 0.0)

    def _costs(self) -> None:
        for row in self.rows(
            attempts.c.currency,
            sa.func.sum(attempts.c.cost).label("cost"),
            join=messages.join(attempts, attempts.c.message_id == messages.c.id),
            where=attempts.c.cost.is_not(None),
            group_by=[attempts.c.currency],
        ):
            self.group(row)["cost"][row["currency"]] = round(float(row["cost"]), 6)

    def _reasons(self) -> None:
        for row in self.rows(
            messages.c.reason,
            sa.func.count().label("n"),
            where=messages.c.status == Status.SUPPRESSED,
            group_by=[messages.c.reason],
        ):
            self.group(row)["suppressed_by_reason"][row["reason"] or ""] = int(row["n"])
        # A deferral leaves no trace in the message once it is sent: the events keep it.
        for row in self.rows(
            events.c.reason,
            sa.func.count(sa.distinct(events.c.message_id)).label("n"),
            join=messages.join(events, events.c.message_id == messages.c.id),
            where=sa.and_(events.c.status == Status.DEFERRED, NOT_A_CLICK),
            group_by=[events.c.reason],
        ):
            self.group(row)["deferred_by_reason"][row["reason"] or ""] = int(row["n"])

    def _claims(self) -> None:
        for row in self.rows(
            sa.func.count().label("verified"),
            sa.func.sum(claims.c.refused).label("refused"),
            join=messages.join(claims, claims.c.message_id == messages.c.id),
        ):
            group = self.group(row)
            group["claims_verified"] = int(row["verified"])
            group["claims_refused"] = int(row["refused"] or 0)


def campaign_report(
    conn: Connection, tenant_id: str, campaign: str, group_by: Sequence[str], sleeping: SleepingWindow = None
) -> list[dict[str, Any]]:
    scope = keyed(tenant_id, message_keys.c.campaign == campaign)
    dims = [(name, dimension(conn, name, tenant_id, sleeping)) for name in group_by]
    return _Report(conn, scope, dims).run()


def campaign_totals(conn: Connection, tenant_id: str, campaigns: Sequence[str]) -> list[dict[str, Any]]:
    """The report's totals for each of the campaigns, grouped by campaign (one set of queries for all)."""
    if not campaigns:
        return []
    scope = keyed(tenant_id, message_keys.c.campaign.in_(sorted(campaigns)))
    return _Report(conn, scope, [("campaign", messages.c.campaign)]).run()


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


def campaign_names(conn: Connection, tenant_id: str, limit: int = 200, after: str | None = None) -> list[str]:
    """A tenant's campaigns in name order after `after`, one index probe each (a loose index scan),
    so the list costs the number of campaigns, not the number of messages."""
    names: list[str] = []
    while len(names) < limit:
        query = sa.select(message_keys.c.campaign).where(
            message_keys.c.tenant_id == tenant_id, message_keys.c.campaign.is_not(None)
        )
        if after is not None:
            query = query.where(message_keys.c.campaign > after)
        after = conn.execute(query.order_by(message_keys.c.campaign).limit(1)).scalar()
        if after is None:
            break
        names.append(after)
    return names


def campaign_list(conn: Connection, tenant_id: str, after: str | None, limit: int) -> list[dict[str, Any]]:
    """A page of campaigns by name, each with its totals."""
    names = campaign_names(conn, tenant_id, limit, after)
    totals = {row["campaign"]: row for row in campaign_totals(conn, tenant_id, names)}
    return [totals[name] for name in names]


class CampaignsRoom(Room):
    async def campaign_report(
        self, tenant_id: str, campaign: str, group_by: Sequence[str], sleeping: SleepingWindow = None
    ) -> list[dict[str, Any]]:
        return await self.db.read(campaign_report, tenant_id, campaign, group_by, sleeping)

    async def campaign_link_report(self, tenant_id: str, campaign: str) -> list[dict[str, Any]]:
        return await self.db.read(campaign_link_report, tenant_id, campaign)

    async def campaign_names(self, tenant_id: str, limit: int = 200) -> list[str]:
        return await self.db.read(campaign_names, tenant_id, limit)

    async def campaign_list(self, tenant_id: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        return await self.db.read(campaign_list, tenant_id, after, limit)

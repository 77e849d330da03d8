"""The console's campaign pages: the list, and one campaign's funnel, cost, experiment and rules."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.api.campaigns import build_report
from gateway.api.context import context
from gateway.domain.tracking import CAMPAIGN_DIMENSIONS, METADATA_DIMENSION
from gateway.ui import charts
from gateway.ui.charts import as_markup
from gateway.ui.console import PREFIX, ConsoleError, Redirect, page, signed_in
from gateway.ui.filters import read_choices

RULE = "metadata.rule"  # the rule or trigger that produced the job, as campaign systems name it
CAMPAIGN_GROUPINGS = ("variant", "channel", "variant,channel", RULE, "recipient_state")


async def campaigns(request: web.Request) -> web.Response:
    principal = await signed_in(request, "report")
    wanted = request.query.get("name", "").strip()
    if wanted:
        raise Redirect(f"{PREFIX}/campaigns/{quote(wanted, safe='')}")
    names = await context(request).store.campaign_names(principal.tenant_id)
    return page(request, "campaigns.html", tenant=principal.tenant_id, names=names)


def dimension_value(group: dict[str, Any], dim: str) -> Any:
    """A group's value of one grouping: its own field, or a metadata key's value."""
    if dim.startswith(METADATA_DIMENSION):
        return (group.get("metadata") or {}).get(dim[len(METADATA_DIMENSION) :])
    return group.get(dim)


def money(amounts: dict[str, float] | None, places: int = 2) -> str:
    """`{"CNY": 1.5}` as "CNY 1.50"; several currencies side by side; nothing priced: "-"."""
    if not amounts:
        return "-"
    return ", ".join(f"{currency} {amount:,.{places}f}" for currency, amount in sorted(amounts.items()))


async def campaign(request: web.Request) -> web.Response:
    principal = await signed_in(request, "report")
    name = request.match_info["campaign"]
    errors: dict[str, str] = {}
    choices = (*CAMPAIGN_DIMENSIONS, RULE)
    group_by = read_choices(request.query.get("group_by"), choices, ("variant",), "group_by", errors)
    ctx = context(request)
    report = await build_report(ctx, principal.tenant_id, name, group_by)
    if not report["groups"]:
        raise ConsoleError(404, "No such campaign", f"No message of this tenant names the campaign {name!r}.")
    by_rule = report if group_by == (RULE,) else await build_report(ctx, principal.tenant_id, name, (RULE,))
    rules = [g for g in by_rule["groups"] if dimension_value(g, RULE) is not None]
    for g in report["groups"]:
        g["labels"] = [dimension_value(g, dim) for dim in group_by]

    def stages(g: dict[str, Any]) -> list[tuple[str, int]]:
        return [
            ("sent", g["sent"]),  # not a status: the funnel's stages
            ("delivered", g["delivered"]),  # not a status
            ("clicked", g["unique_clicks"]),
            ("converted", g["conversions"]),
        ]

    funnels = [
        {
            "label": " / ".join(
                f"{dim} {v if v is not None else '-'}" for dim, v in zip(group_by, g["labels"], strict=True)
            ),
            "chart": as_markup(charts.funnel(stages(g), title="Funnel")),
        }
        for g in report["groups"]
    ]
    return page(
        request,
        "campaign.html",
        tenant=principal.tenant_id,
        errors=errors,
        name=name,
        group_by=group_by,
        groupings=CAMPAIGN_GROUPINGS,
        report=report,
        rules=rules,
        money=money,
        total_funnel=as_markup(charts.funnel(stages(report["totals"]), title=f"Funnel of {name}")),
        funnels=funnels,
    )

"""Campaign results: the campaign report and list (JSON or CSV), and experiments."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.api.bodies import read_json
from gateway.api.context import ApiContext, context
from gateway.api.problems import Problem, validation_problem
from gateway.api.recipients import sleeping_window
from gateway.api.render import iso
from gateway.api.report_csv import csv_answer, wants_csv
from gateway.api.reports import invalid_query
from gateway.campaign_results import ExperimentView, campaign_summary, totals_of
from gateway.contract.campaigns import CAMPAIGN_NAME_PATTERN, CampaignListQuery, CampaignQuery, judge_experiment
from gateway.contract.reports import listed
from gateway.domain.experiments import Experiment
from gateway.domain.tracking import RECIPIENT_STATE

SAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.-]+")
CAMPAIGN_NAME = re.compile(CAMPAIGN_NAME_PATTERN)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def campaign_report(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "report")
    campaign = request.match_info["campaign"]
    query, errors = CampaignQuery.judge(request.query)
    if query is None:
        raise invalid_query(errors)
    group_by = listed(query.group_by)
    report = await build_report(ctx, principal.tenant_id, campaign, group_by)
    if wants_csv(request, query.format):
        return csv_answer(report["groups"], f"campaign-{SAFE_FILENAME.sub('_', campaign)}", group_by)
    return _json(report)


async def build_report(ctx: ApiContext, tenant_id: str, campaign: str, group_by: tuple[str, ...]) -> dict[str, Any]:
    """The campaign report as the API and the console show it."""
    asks_state = RECIPIENT_STATE in group_by and ctx.sleeping is not None
    sleeping = sleeping_window(ctx.sleeping, time.time()) if asks_state else None
    groups = await ctx.store.campaign_report(tenant_id, campaign, group_by, sleeping)
    links = await ctx.store.campaign_link_report(tenant_id, campaign)
    declared = await ctx.store.get_experiment(tenant_id, campaign)
    view = None
    if declared is not None:
        by_variant = (
            groups if group_by == ("variant",) else await ctx.store.campaign_report(tenant_id, campaign, ("variant",))
        )
        view = ExperimentView(Experiment(declared["variants"], declared["holdout"]), [dict(g) for g in by_variant])
    return campaign_summary(campaign, group_by, groups, links, view)


async def campaign_list(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "report")
    query, errors = CampaignListQuery.judge(request.query)
    if query is None:
        raise invalid_query(errors)
    rows = await ctx.store.campaign_list(principal.tenant_id, query.cursor, query.limit + 1)
    page = rows[: query.limit]
    data = []
    for row in page:
        data.append({"campaign": row["campaign"], **totals_of([row])})
    if wants_csv(request, query.format):
        return csv_answer(data, "campaigns", ("campaign",))
    return _json({"data": data, "next_cursor": page[-1]["campaign"] if len(rows) > query.limit else None})


def _campaign(request: web.Request) -> str:
    campaign = request.match_info["campaign"]
    if not CAMPAIGN_NAME.match(campaign):
        raise Problem(404, "not-found", "Not Found", "not a campaign name (1-128 characters, no control characters)")
    return campaign


def _experiment(campaign: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "variants": row["variants"],
        "holdout": row["holdout"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def put_experiment(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    campaign = _campaign(request)
    experiment, errors = judge_experiment(await read_json(request, 16_384))
    if experiment is None:
        raise validation_problem(errors)
    created, row = await ctx.store.put_experiment(principal.tenant_id, campaign, experiment)
    return _json(_experiment(campaign, row), 201 if created else 200)


async def get_experiment(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "report")
    campaign = _campaign(request)
    row = await ctx.store.get_experiment(principal.tenant_id, campaign)
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"the campaign {campaign!r} declares no experiment")
    return _json(_experiment(campaign, row))

"""The closed loop: tracked short links, conversions, and the campaign report."""

from __future__ import annotations

import hashlib
import statistics
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.api.bodies import read_json
from gateway.api.context import context
from gateway.api.problems import Problem, validation_problem
from gateway.api.render import iso
from gateway.api.reports import invalid_query
from gateway.contract.base import judge
from gateway.contract.reports import listed
from gateway.contract.tracking import TOTALS, CampaignQuery, ConversionRequest
from gateway.domain.tracking import TOKEN_RE, looks_automated, with_attribution

NOT_FOUND = Problem(404, "not-found", "Not Found", "this link does not exist")


async def click(request: web.Request) -> web.StreamResponse:
    """Record the click, then 302 to the destination registered at send time (never elsewhere)."""
    ctx = context(request)
    token = request.match_info["token"]
    if not TOKEN_RE.match(token):
        raise NOT_FOUND  # a tampered token is not even looked up
    link = await ctx.store.find_link(token)
    if link is None:
        raise NOT_FOUND
    user_agent = request.headers.get("User-Agent", "")[:512]
    peer = request.headers.get("X-Forwarded-For", "").split(",")[0].strip() or (request.remote or "")
    secret = ctx.click_secret
    await ctx.store.record_click(
        {
            "token": token,
            "tenant_id": link["tenant_id"],
            "message_id": link["message_id"],
            "at": time.time(),
            "user_agent": user_agent or None,
            "ip_hash": hashlib.sha256(f"{secret}:{peer}".encode()).hexdigest() if peer else None,
            "automated": looks_automated(user_agent, request.method),
        }
    )
    url = link["url"]
    if ctx.settings.links.append_utm:
        url = with_attribution(url, link["campaign"], link["variant"])
    return web.Response(
        status=302, headers={"Location": url, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


async def conversion(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    asked, errors = judge(ConversionRequest, await read_json(request, 16_384))
    if asked is None:
        raise validation_problem(errors)
    token, message_id = asked.click_token, asked.message_id
    if token is not None:
        link = await ctx.store.find_link(token)
        if link is None or link["tenant_id"] != principal.tenant_id:
            raise Problem(404, "not-found", "Not Found", "no such click_token")
        message_id = link["message_id"]  # "" for a campaign link: the conversion counts for its variant
    elif message_id is None or await ctx.store.get_message(principal.tenant_id, message_id) is None:
        raise Problem(404, "not-found", "Not Found", "no such message_id")
    occurred = asked.occurred_at if asked.occurred_at is not None else time.time()
    # Without an event id the same event of the same message at the same moment is one conversion.
    row = {
        "tenant_id": principal.tenant_id,
        "message_id": message_id,
        "click_token": token,
        "event": asked.event,
        "event_id": asked.event_id or f"{message_id or token}:{asked.event}:{occurred:.3f}",
        "value": float(asked.value) if asked.value is not None else None,
        "occurred_at": occurred,
        "received_at": time.time(),
    }
    created, stored = await ctx.store.add_conversion(row)
    answer = {
        "event_id": stored["event_id"],
        "message_id": stored["message_id"] or None,
        "click_token": stored["click_token"],
        "event": stored["event"],
        "value": stored["value"],
        "occurred_at": iso(stored["occurred_at"]),
    }
    return web.Response(status=201 if created else 200, body=orjson.dumps(answer), content_type="application/json")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def campaign_report(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "report")
    campaign = request.match_info["campaign"]
    query, errors = CampaignQuery.judge(request.query)
    if query is None:
        raise invalid_query(errors)
    group_by = listed(query.group_by)
    groups = await ctx.store.campaign_report(principal.tenant_id, campaign, group_by)
    campaign_links = await ctx.store.campaign_link_report(principal.tenant_id, campaign)
    return web.Response(
        body=orjson.dumps(campaign_summary(campaign, group_by, groups, campaign_links)),
        content_type="application/json",
    )


def campaign_summary(
    campaign: str, group_by: tuple[str, ...], groups: list[dict[str, Any]], campaign_links: list[dict[str, Any]]
) -> dict[str, Any]:
    """The campaign report as the API and the console show it: groups in order with their rates,
    the totals, and the links shared by a whole variant (counted in the totals only)."""
    rendered: list[dict[str, Any]] = []
    for g in sorted(groups, key=lambda g: tuple(str(g[name]) for name in group_by)):
        waits = g.pop("seconds_to_first_click")
        g.update(
            delivery_rate=_rate(g["delivered"], g["sent"]),
            click_rate=_rate(g["unique_clicks"], g["delivered"]),
            conversion_rate=_rate(g["conversions"], g["unique_clicks"]),
            median_seconds_to_click=round(statistics.median(waits), 3) if waits else None,
        )
        rendered.append(g)
    totals = {k: sum(g[k] for g in rendered) for k in TOTALS}
    for shared in campaign_links:
        # Clicks on links shared by a whole variant count in the totals; which message led to them is unknowable.
        for name in ("clicks", "human_clicks", "conversions", "value"):
            totals[name] += shared[name]
    return {
        "campaign": campaign,
        "group_by": list(group_by),
        "totals": totals,
        "groups": rendered,
        "campaign_links": campaign_links,
    }

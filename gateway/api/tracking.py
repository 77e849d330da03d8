"""The closed loop: tracked short links, claim tokens and conversions."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.api.bodies import read_json
from gateway.api.context import context
from gateway.api.problems import Problem, validation_problem
from gateway.api.render import iso
from gateway.contract.base import judge
from gateway.contract.tracking import ClaimRequest, ConversionRequest
from gateway.domain.claims import ClaimResult
from gateway.domain.claims import judge as judge_claim
from gateway.domain.claims import read as read_claim
from gateway.domain.tracking import TOKEN_RE, looks_automated
from gateway.link_redirects import Redirects

NOT_FOUND = Problem(404, "not-found", "Not Found", "this link does not exist")


async def click(request: web.Request) -> web.StreamResponse:
    """Record the click, then 302 to the destination registered at send time (never elsewhere)."""
    redirects = context(request).redirects
    assert redirects is not None
    return await redirect(redirects, request, request.match_info["token"])


async def redirect(redirects: Redirects, request: web.BaseRequest, token: str) -> web.StreamResponse:
    """The click of `token`: by the router (click) or by the server's redirect lane (api/server.py)."""
    peer = redirects.client(request.remote or "", request.headers.get("X-Forwarded-For", ""))
    wait = redirects.rate.wait(peer)
    if wait > 0:
        retry_after = str(max(1, math.ceil(wait)))
        raise Problem(
            429,
            "too-many-requests",
            "Too Many Requests",
            "too many clicks from this address; retry later",
            headers={"Retry-After": retry_after},
        )
    if not TOKEN_RE.match(token):
        raise NOT_FOUND  # a tampered token is not even looked up
    found = redirects.known(token) or await redirects.link(token)
    if found is None:
        raise NOT_FOUND
    link, destination = found
    user_agent = request.headers.get("User-Agent", "")[:512]
    await redirects.store.record_click(
        {
            "token": token,
            "tenant_id": link["tenant_id"],
            "message_id": link["message_id"],
            "at": time.time(),
            "user_agent": user_agent or None,
            "ip_hash": redirects.ip_hash(peer),
            "automated": looks_automated(user_agent, request.method),
        },
        wait=redirects.settings.wait_for_click_commit,
    )
    return web.Response(
        status=302,
        headers={"Location": destination, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def verify_claim(request: web.Request) -> web.Response:
    """The landing page's back end asks whether a claim token is genuine, in time and unclaimed; the
    first such ask claims it."""
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    asked, errors = judge(ClaimRequest, await read_json(request, 4096))
    if asked is None:
        raise validation_problem(errors)
    redirects = ctx.redirects
    assert redirects is not None
    claim = read_claim(redirects.claim_secret, asked.token)
    now = time.time()
    result = judge_claim(claim, now)
    if result is None and claim is not None:
        result = await ctx.store.claim_once(principal.tenant_id, claim, now)
    answer: dict[str, Any] = {"result": result.value if result is not None else ClaimResult.FORGED.value}
    if claim is not None and result != ClaimResult.FORGED:
        answer.update(message_id=claim.message_id, campaign=claim.campaign)
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


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

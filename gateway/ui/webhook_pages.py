"""The console's status-callback page: each subscription's health (success rate, lag, paused), its
dead letters, and the replay and resume buttons (the acts of POST /v1/webhooks/{id}/replay|resume)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from aiohttp import web

from gateway.api.context import context
from gateway.api.render import iso
from gateway.api.webhooks import render
from gateway.domain.jobs import parse_timestamp
from gateway.domain.webhooks import DeliveryState, webhook_id
from gateway.ui.console import PREFIX, Redirect, form, page, signed_in

DEAD_LETTERS_SHOWN = 20
DAY = 86_400.0


async def webhooks(request: web.Request) -> web.Response:
    principal = await signed_in(request, "read")
    ctx = context(request)
    endpoints = await render(ctx, await ctx.store.list_webhooks(principal.tenant_id))
    dead = {}
    for endpoint in endpoints:
        rows = await ctx.store.webhook_deliveries(endpoint["id"], DeliveryState.DEAD, None, DEAD_LETTERS_SHOWN)
        dead[endpoint["id"]] = [
            {
                "webhook_id": webhook_id(r["event_id"]),
                "type": r["type"],
                "message_id": r["message_id"],
                "attempts": r["attempts"],
                "last_error": r["last_error"],
                "occurred_at": iso(r["event_at"]),
            }
            for r in rows
        ]
    return page(
        request,
        "webhooks.html",
        tenant=principal.tenant_id,
        endpoints=endpoints,
        dead=dead,
        can_change=principal.allows("admin"),
        since=iso(time.time() - DAY),
        notice=request.query.get("notice", ""),
    )


def _back(notice: str) -> Redirect:
    return Redirect(f"{PREFIX}/webhooks?" + urlencode({"notice": notice}))


async def replay(request: web.Request) -> web.Response:
    principal = await signed_in(request, "admin")
    store = context(request).store
    endpoint = await store.get_webhook(principal.tenant_id, request.match_info["id"])
    if endpoint is None:
        raise _back(f"No subscription {request.match_info['id']}.")
    raw = str(form(request).get("since", "")).strip()
    since = parse_timestamp(raw) if raw else time.time() - DAY
    if since is None:
        raise _back(f"{raw!r} is not a time with a zone offset (e.g. 2026-01-31T09:00:00Z); nothing was replayed.")
    count = await store.replay_webhook(endpoint["id"], since, False, time.time())
    raise _back(f"{count} deliveries to {endpoint['url']} are due again.")


async def resume(request: web.Request) -> web.Response:
    principal = await signed_in(request, "admin")
    row = await context(request).store.resume_webhook(principal.tenant_id, request.match_info["id"], time.time())
    if row is None:
        raise _back(f"No subscription {request.match_info['id']}.")
    raise _back(f"{row['url']} is delivering again.")

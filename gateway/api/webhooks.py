"""Status-callback subscriptions over the API: judged by gateway/contract/webhooks.py, stored by the
store's webhooks room, delivered by the worker process (gateway/callback_delivery.py)."""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.api.bodies import read_json
from gateway.api.context import ApiContext, context
from gateway.api.problems import Problem, validation_problem
from gateway.api.render import iso
from gateway.contract.base import judge
from gateway.contract.webhooks import DeliveryQuery, NewWebhook, Replay, Rotation
from gateway.domain.ids import ulid
from gateway.domain.jobs import FieldError
from gateway.domain.webhooks import TEST_EVENT_TYPE, DeliveryState, EndpointState, rfc3339, success_rate, webhook_id
from gateway.webhook_guard import url_refusal_now
from gateway.webhook_sender import CallbackSender

# The largest body the contract allows, every character an escaped astral one (12 bytes in JSON), fits.
MAX_BODY = 65_536
ID_ROUTE = "{id:whk_[0-9A-Z]{26}}"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def health_of(row: dict[str, Any], found: dict[str, Any], now: float) -> dict[str, Any]:
    counts = found.get("counts", {})
    oldest = found.get("oldest_pending_at")
    return {
        "delivered": row["delivered_count"],
        "failed": row["failed_count"],
        "success_rate": success_rate(row["delivered_count"], row["failed_count"]),
        "pending": counts.get(DeliveryState.PENDING, 0),
        "dead": counts.get(DeliveryState.DEAD, 0),
        "lag_seconds": round(max(0.0, now - oldest), 3) if oldest is not None else 0.0,
        "consecutive_failures": row["consecutive_failures"],
    }


async def render(ctx: ApiContext, rows: list[dict[str, Any]], with_secret: bool = False) -> list[dict[str, Any]]:
    health = await ctx.store.webhook_health([r["id"] for r in rows])
    now = time.time()
    rendered = []
    for row in rows:
        answer = {
            "id": row["id"],
            "url": row["url"],
            "events": row["events"],
            "description": row["description"],
            "state": row["state"],
            "paused_reason": row["paused_reason"],
            "secret_rotated_until": iso(row["previous_until"]) if (row["previous_until"] or 0) > now else None,
            "created_at": iso(row["created_at"]),
            "health": health_of(row, health.get(row["id"], {}), now),
        }
        if with_secret:
            answer["secret"] = row["secret"]
        rendered.append(answer)
    return rendered


async def _endpoint(ctx: ApiContext, tenant_id: str, request: web.Request) -> dict[str, Any]:
    row = await ctx.store.get_webhook(tenant_id, request.match_info["id"])
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"no subscription {request.match_info['id']!r}")
    return row


async def _object(request: web.Request, *, optional: bool = False) -> Any:
    if optional and not request.body_exists:
        return {}
    return await read_json(request, MAX_BODY)


async def create_webhook(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "admin")
    judged, errors = judge(NewWebhook, await _object(request))
    if judged is None:
        raise validation_problem(errors)
    s = ctx.settings.webhooks
    refusal = await url_refusal_now(judged.url, allow_http=s.allow_http, allow_private=s.allow_private_networks)
    if refusal is not None:
        raise validation_problem([FieldError("/url", refusal)])
    now = time.time()
    row = {
        "id": f"whk_{ulid(now)}",
        "tenant_id": principal.tenant_id,
        "url": judged.url,
        "events": list(dict.fromkeys(judged.events)),
        "description": judged.description,
        "secret": new_secret(),
        "state": EndpointState.ACTIVE,
        "created_at": now,
        "updated_at": now,
    }
    stored = await ctx.store.create_webhook(row, s.max_endpoints_per_tenant)
    if stored is None:
        raise Problem(
            409,
            "too-many-webhooks",
            "Too many subscriptions",
            f"this tenant holds {s.max_endpoints_per_tenant} subscriptions, the most allowed; delete one first",
        )
    [answer] = await render(ctx, [stored], with_secret=True)
    return _json(answer, 201, {"Location": f"/v1/webhooks/{stored['id']}"})


async def list_webhooks(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    return _json({"data": await render(ctx, await ctx.store.list_webhooks(principal.tenant_id))})


async def get_webhook(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    [answer] = await render(ctx, [await _endpoint(ctx, principal.tenant_id, request)])
    return _json(answer)


async def delete_webhook(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "admin")
    if not await ctx.store.delete_webhook(principal.tenant_id, request.match_info["id"]):
        raise Problem(404, "not-found", "Not Found", f"no subscription {request.match_info['id']!r}")
    return web.Response(status=204)


async def rotate_secret(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "admin")
    await _endpoint(ctx, principal.tenant_id, request)
    judged, errors = judge(Rotation, await _object(request, optional=True))
    if judged is None:
        raise validation_problem(errors)
    grace = ctx.settings.webhooks.rotation_grace_seconds if judged.grace_seconds is None else judged.grace_seconds
    now = time.time()
    row = await ctx.store.rotate_webhook_secret(
        principal.tenant_id, request.match_info["id"], new_secret(), now + grace, now
    )
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"no subscription {request.match_info['id']!r}")
    [answer] = await render(ctx, [row], with_secret=True)
    return _json(answer)


async def resume_webhook(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "admin")
    row = await ctx.store.resume_webhook(principal.tenant_id, request.match_info["id"], time.time())
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"no subscription {request.match_info['id']!r}")
    [answer] = await render(ctx, [row])
    return _json(answer)


async def test_webhook(request: web.Request) -> web.Response:
    """A webhook.test event, sent now through the guarded session; nothing is stored."""
    ctx = context(request)
    principal = await ctx.auth.principal(request, "admin")
    row = await _endpoint(ctx, principal.tenant_id, request)
    now = time.time()
    body = orjson.dumps(
        {"type": TEST_EVENT_TYPE, "timestamp": rfc3339(now), "data": {"webhook": row["id"], "test": True}}
    )
    signing = (row["secret"], row["previous_secret"]) if (row["previous_until"] or 0) > now else (row["secret"],)
    sender = CallbackSender(ctx.settings.webhooks)
    await sender.start()
    try:
        answer = await sender.post(row["url"], signing, f"test_{secrets.token_hex(12)}", body)
    finally:
        await sender.close()
    return _json({"delivered": answer.delivered, "status_code": answer.status_code, "error": answer.error})


async def list_deliveries(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    query, errors = DeliveryQuery.judge(request.query)
    if query is None:
        raise Problem(400, "invalid-query", "Invalid query", "some query parameters are not valid", errors=errors)
    row = await _endpoint(ctx, principal.tenant_id, request)
    rows = await ctx.store.webhook_deliveries(
        row["id"], query.state, int(query.cursor) if query.cursor else None, query.limit + 1
    )
    page = rows[: query.limit]
    return _json(
        {
            "data": [_delivery(d) for d in page],
            "next_cursor": str(page[-1]["id"]) if len(rows) > query.limit else None,
        }
    )


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "webhook_id": webhook_id(row["event_id"]),
        "type": row["type"],
        "message_id": row["message_id"],
        "state": row["state"],
        "attempts": row["attempts"],
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "next_attempt_at": iso(row["next_attempt_at"]) if row["state"] == DeliveryState.PENDING else None,
        "delivered_at": iso(row["delivered_at"]),
        "occurred_at": iso(row["event_at"]),
    }


async def replay_webhook(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "admin")
    row = await _endpoint(ctx, principal.tenant_id, request)
    judged, errors = judge(Replay, await _object(request))
    if judged is None:
        raise validation_problem(errors)
    count = await ctx.store.replay_webhook(row["id"], judged.since, judged.include_delivered, time.time())
    return _json({"replayed": count})


def mount_webhooks(app: web.Application) -> None:
    app.router.add_post("/v1/webhooks", create_webhook)
    app.router.add_get("/v1/webhooks", list_webhooks)
    app.router.add_get(f"/v1/webhooks/{ID_ROUTE}", get_webhook)
    app.router.add_delete(f"/v1/webhooks/{ID_ROUTE}", delete_webhook)
    app.router.add_get(f"/v1/webhooks/{ID_ROUTE}/deliveries", list_deliveries)
    app.router.add_post(f"/v1/webhooks/{ID_ROUTE}/rotate-secret", rotate_secret)
    app.router.add_post(f"/v1/webhooks/{ID_ROUTE}/test", test_webhook)
    app.router.add_post(f"/v1/webhooks/{ID_ROUTE}/resume", resume_webhook)
    app.router.add_post(f"/v1/webhooks/{ID_ROUTE}/replay", replay_webhook)

"""Liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.context import context
from gateway.contract.document import openapi_document


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    ctx = context(request)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(ctx.store.ping(), 2.0)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure of the check is the answer "not ready"
        checks["database"] = f"failing: {type(exc).__name__}"
    if ctx.settings.redis_url:
        try:
            checks["redis"] = "ok" if await asyncio.wait_for(ctx.state.ping(), 2.0) else "failing: no answer"
        except Exception as exc:  # noqa: BLE001 - any failure of the check is the answer "not ready"
            checks["redis"] = f"failing: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
    if not ready:
        body.update(
            {
                "type": "/problems/not-ready",
                "title": "Not ready",
                "status": 503,
                "detail": "a dependency is failing: " + ", ".join(k for k, v in checks.items() if v != "ok"),
            }
        )
        return web.Response(status=503, body=orjson.dumps(body), content_type="application/problem+json")
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    ctx = context(request)
    response = web.Response(body=generate_latest(ctx.metrics.registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def openapi(_request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(openapi_document()), content_type="application/json")

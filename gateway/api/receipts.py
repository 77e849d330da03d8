"""Delivery receipts from providers, in each provider's own wire format, signature-checked."""

from __future__ import annotations

import structlog
from aiohttp import web

from gateway.api.bodies import read_body
from gateway.api.context import context
from gateway.api.problems import Problem
from providers.base import CallbackAnswer, CallbackFormatError, InboundRequest, SignatureError

log = structlog.get_logger("gateway.api.receipts")
MAX_RECEIPT_BODY = 4 * 1024 * 1024


async def post_receipts(request: web.Request) -> web.Response:
    ctx = context(request)
    name = request.match_info["provider"]
    provider = ctx.providers.get(name)
    if provider is None or (not provider.capabilities.receipts and name != "sandbox"):
        raise Problem(404, "not-found", "Not Found", f"no provider {name!r} takes receipts here")
    body = await read_body(request, MAX_RECEIPT_BODY)
    inbound = InboundRequest(
        method=request.method, url=ctx.settings.base_url + request.path_qs, headers=dict(request.headers), body=body
    )
    try:
        parsed = provider.parse_receipts(inbound)
    except SignatureError as exc:
        ctx.metrics.receipts.labels(name, "bad_signature").inc()
        log.warning("receipt refused: bad signature", provider=name, reason=str(exc))
        raise Problem(401, "invalid-signature", "Invalid signature", str(exc)) from None
    except CallbackFormatError as exc:
        ctx.metrics.receipts.labels(name, "malformed").inc()
        raise Problem(400, "malformed-receipt", "Malformed receipt", str(exc)) from None
    assert ctx.intake is not None
    summary = await ctx.intake.receipts(name, parsed)
    return callback_response(provider.acknowledge("receipts", summary))


def callback_response(answer: CallbackAnswer) -> web.Response:
    """A provider's callback answered in the form that provider documents (see Provider.acknowledge)."""
    if answer.content_type is None:
        return web.Response(status=answer.status, body=answer.body or None)
    return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type, charset="utf-8")

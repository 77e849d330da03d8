"""Delivery receipts from providers, in each provider's own wire format, signature-checked."""

from __future__ import annotations

import structlog
from aiohttp import web

from gateway.api.bodies import read_body
from gateway.api.context import context
from gateway.api.problems import Problem
from gateway.domain.numbers import receipt_signals
from gateway.store.records import ReceiptRecord
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
    records = [
        ReceiptRecord(
            provider=name,
            provider_message_id=r.provider_message_id,
            status=r.status,
            reference=r.reference,
            error_code=r.error_code,
            occurred_at=r.occurred_at,
            raw=r.raw,
            error_kind=r.error_kind.value if r.error_kind is not None else None,
            part=r.part,
            parts=r.parts,
        )
        for r in parsed
    ]
    observed: list[tuple[str, ReceiptRecord]] | None = None
    if ctx.numbers is not None and await ctx.numbers.has_numbers():
        observed = []
    summary = await ctx.store.apply_receipts(records, observed)
    for result, count in summary.items():
        if count:
            ctx.metrics.receipts.labels(name, result).inc(count)
    if ctx.numbers is not None and observed:
        try:
            await ctx.numbers.observe_senders(
                [
                    (sender, name, None, signal)
                    for sender, receipt in observed
                    for signal in receipt_signals(receipt.status, receipt.error_kind)
                ]
            )
        except Exception:
            # The receipts are recorded; losing their evidence must not make the provider resend them.
            log.exception("number health not updated from receipts", provider=name)
    return callback_response(provider.acknowledge("receipts", summary))


def callback_response(answer: CallbackAnswer) -> web.Response:
    """A provider's callback answered in the form that provider documents (see Provider.acknowledge)."""
    if answer.content_type is None:
        return web.Response(status=answer.status, body=answer.body or None)
    return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type, charset="utf-8")

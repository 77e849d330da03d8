"""Opt-outs: the suppression list over the API, and recipients' replies from providers."""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog
from aiohttp import web

from gateway.api.bodies import read_body, read_json
from gateway.api.context import context
from gateway.api.problems import Problem, validation_problem
from gateway.api.receipts import callback_response
from gateway.api.render import iso
from gateway.callback_intake import normalise_address
from gateway.contract.suppressions import LiftQuery, SuppressionQuery, judge_suppression
from gateway.domain.jobs import FieldError
from gateway.domain.optout import SuppressionScope
from gateway.domain.recipients import ERASED_ADDRESS
from providers.base import CallbackFormatError, InboundRequest, SignatureError

MAX_INBOUND_BODY = 1024 * 1024
log = structlog.get_logger("gateway.api.suppressions")
KINDS = ("address", "user_id")


def _recipient(query: SuppressionQuery | LiftQuery, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """The recipients a query names (of `kinds`), in their stored form."""
    named = []
    for kind in kinds:
        value = getattr(query, kind)
        if value is not None and value.strip():
            named.append((kind, normalise_address(value.strip()) if kind == "address" else value.strip()))
    return named


def _invalid_query(errors: list[FieldError], detail: str = "some query parameters are not valid") -> Problem:
    return Problem(400, "invalid-query", "Invalid query", detail, errors=errors)


def _render(row: dict[str, Any]) -> dict[str, Any]:
    # An erased person's address is kept only as its digest (docs/recipients.md, Erasure).
    erased = row["kind"] == ERASED_ADDRESS
    return {
        "address" if erased else row["kind"]: f"erased:{row['value'][:16]}" if erased else row["value"],
        "reason": row["reason"],
        "source": row["source"],
        "scope": row["scope"],
        "pool": row["pool"],
        "created_at": iso(row["created_at"]),
    }


async def add_suppression(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    body = await read_json(request, 16_384)
    judged, errors = judge_suppression(body, ctx.limits)
    if judged is None:
        raise validation_problem(errors)
    now = time.time()
    rows = [
        {
            "tenant_id": principal.tenant_id,
            "kind": kind,
            "value": value,
            "reason": judged.reason,
            "source": "api",
            "created_at": now,
        }
        for kind, value in judged.recipients(ctx.limits)
    ]
    added = await ctx.store.add_suppressions(rows)
    answer = {**{row["kind"]: row["value"] for row in rows}, "reason": judged.reason, "source": "api"}
    answer.update(scope=SuppressionScope.ALL.value, pool=None)
    answer["created_at"] = iso(now)
    return web.Response(status=201 if added else 200, body=orjson.dumps(answer), content_type="application/json")


async def list_suppressions(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    query, errors = SuppressionQuery.judge(request.query)
    if query is None:
        raise _invalid_query(errors)
    # One recipient at a time: the address when both are given.
    recipient = next(iter(_recipient(query, KINDS)), None)
    rows = await ctx.store.list_suppressions(
        principal.tenant_id,
        recipient[0] if recipient else None,
        recipient[1] if recipient else None,
        int(query.cursor) if query.cursor else None,
        query.limit + 1,
    )
    page = rows[: query.limit]
    next_cursor = str(page[-1]["id"]) if len(rows) > query.limit else None
    return web.Response(
        body=orjson.dumps({"data": [_render(r) for r in page], "next_cursor": next_cursor}),
        content_type="application/json",
    )


async def delete_suppression(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    query, errors = LiftQuery.judge(request.query)
    if query is None:
        raise _invalid_query(errors)
    named = _recipient(query, KINDS)
    if not named:
        raise _invalid_query(
            [FieldError("address", "give an address or a user_id")],
            "name the recipient with ?address= or ?user_id= (or both)",
        )
    removed = [await ctx.store.remove_suppression(principal.tenant_id, kind, value, "api") for kind, value in named]
    if not any(removed):
        listed = " or ".join(repr(value) for _, value in named)
        raise Problem(404, "not-found", "Not Found", f"{listed} is not on the suppression list")
    return web.Response(status=204)


async def post_inbound(request: web.Request) -> web.Response:
    """Replies from recipients: an opt-out keyword suppresses the sender at once."""
    ctx = context(request)
    name = request.match_info["provider"]
    provider = ctx.providers.get(name)
    if provider is None:
        raise Problem(404, "not-found", "Not Found", f"no provider {name!r} here")
    body = await read_body(request, MAX_INBOUND_BODY)
    inbound = InboundRequest(
        method=request.method, url=ctx.settings.base_url + request.path_qs, headers=dict(request.headers), body=body
    )
    try:
        replies = provider.parse_inbound(inbound)
    except SignatureError as exc:
        raise Problem(401, "invalid-signature", "Invalid signature", str(exc)) from None
    except CallbackFormatError as exc:
        raise Problem(400, "malformed-callback", "Malformed callback", str(exc)) from None
    assert ctx.intake is not None
    counts = await ctx.intake.inbound(name, replies)
    return callback_response(provider.acknowledge("inbound", counts))

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
from gateway.domain.jobs import FieldError, JobLimits, label_problem, suppression_address
from gateway.domain.models import Channel, is_member
from providers.base import CallbackFormatError, InboundRequest, SignatureError

MAX_INBOUND_BODY = 1024 * 1024
log = structlog.get_logger("gateway.api.suppressions")
KINDS = ("address", "user_id")
BODY_FIELDS = frozenset({*KINDS, "channel", "reason"})
MAX_ADDRESS_CHARS = 2048  # the suppressions table's column


def _recipient(body: dict[str, Any]) -> tuple[str, str] | None:
    """The recipient a query names (the first of address, user_id), in its stored form."""
    for kind in KINDS:
        value = body.get(kind)
        if isinstance(value, str) and value.strip():
            return kind, normalise_address(value.strip()) if kind == "address" else value.strip()
    return None


def _recipients_to_add(body: dict[str, Any], limits: JobLimits, errors: list[FieldError]) -> list[tuple[str, str]]:
    """Each recipient the body names (address, user_id or both), judged as a job's `to` and `user_id` are."""
    channel = body.get("channel")
    if channel is not None and not is_member(channel, Channel):
        errors.append(FieldError("/channel", f"must be one of {', '.join(c.value for c in Channel)}"))
        channel = None
    found: list[tuple[str, str]] = []
    for kind in KINDS:
        raw = body.get(kind)
        if raw is None:
            continue
        if kind == "address":
            value, problem = _address_to_add(raw, Channel(channel) if channel else None, limits)
        else:
            value, problem = _user_id_to_add(raw, limits)
        if value is None:
            errors.append(FieldError(f"/{kind}", problem or "is not valid"))
        else:
            found.append((kind, value))
    if all(body.get(kind) is None for kind in KINDS):
        errors.append(FieldError("/address", "give an address or a user_id (or both)"))
    return found


def _address_to_add(raw: Any, channel: Channel | None, limits: JobLimits) -> tuple[str | None, str | None]:
    if not isinstance(raw, str):
        return None, "must be a string"
    value, problem = suppression_address(raw.strip(), channel, limits)
    if value is not None and len(value) > MAX_ADDRESS_CHARS:
        return None, f"must be at most {MAX_ADDRESS_CHARS} characters"
    return value, problem


def _user_id_to_add(raw: Any, limits: JobLimits) -> tuple[str | None, str | None]:
    value = raw.strip() if isinstance(raw, str) else raw
    problem = label_problem(value, limits)
    return (None, problem) if problem is not None else (value, None)


def _render(row: dict[str, Any]) -> dict[str, Any]:
    return {
        row["kind"]: row["value"],
        "reason": row["reason"],
        "source": row["source"],
        "created_at": iso(row["created_at"]),
    }


async def add_suppression(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    body = await read_json(request, 16_384)
    if not isinstance(body, dict):
        raise validation_problem([FieldError("/", "must be a JSON object")])
    errors = [FieldError(f"/{name}", "is not a known field") for name in sorted(set(body) - BODY_FIELDS)]
    recipients = _recipients_to_add(body, ctx.limits, errors)
    reason = body.get("reason", "opt_out")
    if not isinstance(reason, str) or not 1 <= len(reason) <= 128:
        errors.append(FieldError("/reason", "must be a string of 1-128 characters"))
    if errors:
        raise validation_problem(errors)
    now = time.time()
    rows = [
        {
            "tenant_id": principal.tenant_id,
            "kind": kind,
            "value": value,
            "reason": reason,
            "source": "api",
            "created_at": now,
        }
        for kind, value in recipients
    ]
    added = await ctx.store.add_suppressions(rows)
    answer = {**{row["kind"]: row["value"] for row in rows}, "reason": reason, "source": "api", "created_at": iso(now)}
    return web.Response(status=201 if added else 200, body=orjson.dumps(answer), content_type="application/json")


async def list_suppressions(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    query = request.query
    errors = [FieldError(n, "is not a known query parameter") for n in sorted(set(query) - {*KINDS, "limit", "cursor"})]
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else 100
    if "limit" in query and not (query["limit"].isdigit() and 1 <= limit <= 1000):
        errors.append(FieldError("limit", "must be an integer from 1 to 1000"))
    cursor = query.get("cursor")
    if cursor is not None and not cursor.isdigit():
        errors.append(FieldError("cursor", "is not a cursor this API gave out"))
    if errors:
        raise Problem(400, "invalid-query", "Invalid query", "some query parameters are not valid", errors=errors)
    recipient = _recipient(dict(query))
    rows = await ctx.store.list_suppressions(
        principal.tenant_id,
        recipient[0] if recipient else None,
        recipient[1] if recipient else None,
        int(cursor) if cursor else None,
        limit + 1,
    )
    page = rows[:limit]
    next_cursor = str(page[-1]["id"]) if len(rows) > limit else None
    return web.Response(
        body=orjson.dumps({"data": [_render(r) for r in page], "next_cursor": next_cursor}),
        content_type="application/json",
    )


async def delete_suppression(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    query = request.query
    named = [recipient for kind in KINDS if (recipient := _recipient({kind: query.get(kind)})) is not None]
    if not named:
        raise Problem(
            400,
            "invalid-query",
            "Invalid query",
            "name the recipient with ?address= or ?user_id= (or both)",
            errors=[FieldError("address", "give an address or a user_id")],
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

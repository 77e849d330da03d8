"""On-call: the failure report, and putting failed messages back in the queue."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from gateway.api.bodies import read_json
from gateway.api.context import context
from gateway.api.messages import MESSAGE_ID
from gateway.api.problems import Problem, validation_problem
from gateway.api.render import iso
from gateway.domain.failures import FAILURE_STATUSES, REPORT_DIMENSIONS, REQUEUEABLE, advice_for
from gateway.domain.jobs import FieldError, parse_timestamp
from gateway.store.records import PURGED_CONTENT

DEFAULT_GROUP_BY = ("reason", "provider", "error_code")
REQUEUE_FILTERS = frozenset(
    {"status", "reason", "provider", "error_code", "campaign", "channel", "sender", "since", "until"}
)
MAX_REQUEUE = 10_000


def time_window(query: Mapping[str, str], errors: list[FieldError], until_slack: float = 0.0) -> tuple[float, float]:
    """`since`/`until` from the query (RFC 3339), by default the last 24 hours (to now + `until_slack`);
    a bad value is added to `errors` under its parameter's name."""
    now = time.time()
    bounds = {"since": now - 86400, "until": now + until_slack}
    for name in bounds:
        if name in query:
            parsed = parse_timestamp(query[name])
            if parsed is None:
                errors.append(FieldError(name, "must be an RFC 3339 date-time with an offset"))
            else:
                bounds[name] = parsed
    return bounds["since"], bounds["until"]


def render_report(
    groups: list[dict[str, Any]], group_by: tuple[str, ...], since: float, until: float
) -> dict[str, Any]:
    rendered = []
    for group in groups:
        item: dict[str, Any] = {name: group[name] for name in group_by}
        item.update(
            count=group["count"],
            first_seen=iso(group["first_seen"]),
            last_seen=iso(group["last_seen"]),
            sample_ids=group["sample_ids"],
        )
        if "reason" in group_by:
            advice = advice_for(group["reason"])
            item.update(retry_helps=advice.retry_helps, action=advice.action)
        rendered.append(item)
    return {
        "since": iso(since),
        "until": iso(until),
        "group_by": list(group_by),
        "total": sum(g["count"] for g in groups),
        "groups": rendered,
    }


async def failures(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "report")
    query = dict(request.query)
    errors = [
        FieldError(n, "is not a known query parameter")
        for n in sorted(set(query) - {"since", "until", "group_by", "status"})
    ]
    since, until = time_window(query, errors)
    group_by = tuple(g for g in query.get("group_by", ",".join(DEFAULT_GROUP_BY)).split(",") if g)
    unknown = [g for g in group_by if g not in REPORT_DIMENSIONS]
    if unknown or not group_by:
        errors.append(FieldError("group_by", f"must be a comma-separated list of {', '.join(REPORT_DIMENSIONS)}"))
    statuses = tuple(s for s in query.get("status", ",".join(FAILURE_STATUSES)).split(",") if s)
    if not statuses or any(s not in FAILURE_STATUSES for s in statuses):
        errors.append(FieldError("status", f"must be one or more of {', '.join(FAILURE_STATUSES)}"))
    if errors:
        raise Problem(400, "invalid-query", "Invalid query", "some query parameters are not valid", errors=errors)
    groups = await ctx.store.failure_report(principal.tenant_id, since, until, group_by, statuses)
    return web.Response(
        body=orjson.dumps(render_report(groups, group_by, since, until)), content_type="application/json"
    )


async def retry_message(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    message_id = request.match_info["id"]
    row = await ctx.store.get_message(principal.tenant_id, message_id) if MESSAGE_ID.match(message_id) else None
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"no message {message_id!r}")
    if row["status"] not in REQUEUEABLE:
        raise Problem(
            409,
            "not-requeueable",
            "Cannot requeue",
            f"a {row['status']} message is not requeued (only {', '.join(sorted(REQUEUEABLE))})",
        )
    if row["content"] == PURGED_CONTENT:
        raise Problem(
            409,
            "content-purged",
            "Cannot requeue",
            "the retention policy purged this message's content; send a new job instead",
        )
    if row["expires_at"] is not None and row["expires_at"] <= time.time():
        raise Problem(
            409,
            "expired",
            "Cannot requeue",
            "expires_at has passed; send a new job instead",
            errors=[FieldError("/expires_at", "has passed")],
        )
    done = await ctx.store.requeue(principal.tenant_id, [message_id], principal.key_id)
    if not done:
        raise Problem(409, "not-requeueable", "Cannot requeue", "the message changed status meanwhile; look again")
    ctx.store.work_available.set()
    return web.Response(
        status=202,
        body=orjson.dumps({"id": message_id, "status": "queued", "reason": "requeued"}),
        content_type="application/json",
        headers={"Location": f"/v1/messages/{message_id}"},
    )


async def requeue_by_filter(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    body = await read_json(request, 16_384)
    if not isinstance(body, dict):
        raise validation_problem([FieldError("/", "must be a JSON object")])
    errors = [FieldError(f"/{n}", "is not a known field") for n in sorted(set(body) - {"filter", "dry_run", "limit"})]
    raw_filter = body.get("filter", {})
    filters: dict[str, Any] = {}
    if not isinstance(raw_filter, dict) or not raw_filter:
        errors.append(
            FieldError("/filter", "must be an object with at least one of " + ", ".join(sorted(REQUEUE_FILTERS)))
        )
    else:
        for name, value in raw_filter.items():
            if name not in REQUEUE_FILTERS:
                errors.append(FieldError(f"/filter/{name}", "is not a known filter"))
            elif name in ("since", "until"):
                filters[name] = parse_timestamp(value)
                if filters[name] is None:
                    errors.append(FieldError(f"/filter/{name}", "must be an RFC 3339 date-time with an offset"))
            elif not isinstance(value, str) or not value:
                errors.append(FieldError(f"/filter/{name}", "must be a non-empty string"))
            else:
                filters[name] = value
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        errors.append(FieldError("/dry_run", "must be true or false"))
    limit = body.get("limit", 1000)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_REQUEUE:
        errors.append(FieldError("/limit", f"must be an integer from 1 to {MAX_REQUEUE}"))
    if errors:
        raise validation_problem(errors)
    result = await ctx.store.requeue_by_filter(principal.tenant_id, filters, limit, dry_run, principal.key_id)
    return web.Response(body=orjson.dumps(result), content_type="application/json")

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
from gateway.api.report_csv import csv_answer, wants_csv
from gateway.contract.base import judge
from gateway.contract.reports import FailureQuery, RequeueRequest, listed
from gateway.domain.failures import REQUEUEABLE, advice_for
from gateway.domain.jobs import FieldError
from gateway.domain.models import Status
from gateway.store.records import PURGED_CONTENT

DAY = 86400.0
REQUEUED = "requeued"  # the reason a requeued message carries


def time_window(since: float | None, until: float | None, until_slack: float = 0.0) -> tuple[float, float]:
    """The window a report covers: by default the last 24 hours (to now + `until_slack`)."""
    now = time.time()
    return (now - DAY if since is None else since, now + until_slack if until is None else until)


def invalid_query(errors: list[FieldError]) -> Problem:
    return Problem(400, "invalid-query", "Invalid query", "some query parameters are not valid", errors=errors)


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
    query, errors = FailureQuery.judge(request.query)
    if query is None:
        raise invalid_query(errors)
    since, until = time_window(query.since, query.until)
    group_by = listed(query.group_by)
    groups = await ctx.store.failure_report(principal.tenant_id, since, until, group_by, listed(query.status))
    report = render_report(groups, group_by, since, until)
    if wants_csv(request, query.format):
        return csv_answer(report["groups"], "failures", group_by)
    return web.Response(body=orjson.dumps(report), content_type="application/json")


async def retry_message(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    message_id = request.match_info["id"]
    row = await ctx.store.get_message(principal.tenant_id, message_id) if MESSAGE_ID.match(message_id) else None
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"no message {message_id!r}")
    _check_requeueable(row)
    done = await ctx.store.requeue(principal.tenant_id, [message_id], principal.key_id)
    if not done:
        raise Problem(409, "not-requeueable", "Cannot requeue", "the message changed status meanwhile; look again")
    ctx.store.work_available.set()
    return web.Response(
        status=202,
        body=orjson.dumps({"id": message_id, "status": Status.QUEUED, "reason": REQUEUED}),
        content_type="application/json",
        headers={"Location": f"/v1/messages/{message_id}"},
    )


def _check_requeueable(row: Mapping[str, Any]) -> None:
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
            "expired",  # not a status: the problem type
            "Cannot requeue",
            "expires_at has passed; send a new job instead",
            errors=[FieldError("/expires_at", "has passed")],
        )


async def requeue_by_filter(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    asked, errors = judge(RequeueRequest, await read_json(request, 16_384))
    if asked is None:
        raise validation_problem(errors)
    result = await ctx.store.requeue_by_filter(
        principal.tenant_id, asked.filter.as_filters(), asked.limit, asked.dry_run, principal.key_id
    )
    return web.Response(body=orjson.dumps(result), content_type="application/json")

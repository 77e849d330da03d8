"""Handlers for send jobs: accept one, accept a batch, read one, list the delivery log."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
import time
from typing import Any

import orjson
import structlog
from aiohttp import web

from gateway.api import render
from gateway.api.bodies import read_json
from gateway.api.content import accept_route, content_problem
from gateway.api.context import ApiContext, context
from gateway.api.problems import Problem, validation_problem
from gateway.api.recipient_jobs import addressed_job
from gateway.api.templated_jobs import rendered_job
from gateway.contract.jobs import judge_job
from gateway.contract.messages import MessageQuery
from gateway.domain.ids import message_id
from gateway.domain.jobs import FieldError, normalise_phone, timing_problems, valid_idempotency_key
from gateway.domain.models import Channel, SendJob
from gateway.domain.routing import candidate_providers, cheapest_first
from gateway.experiment_assignment import accepted_status
from gateway.store.records import CHANNEL_CHOICE, AcceptOutcome, MessageFilter
from providers.templates import sendable_by

log = structlog.get_logger("gateway.api")
JSON = "application/json"
MESSAGE_ID = re.compile(r"^msg_[0-9A-Z]{26}$")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON, headers=headers)


def request_hash(body: Any) -> str:
    """Same JSON value, same hash: key order and white space do not make a body different."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def job_row(
    ctx: ApiContext,
    tenant_id: str,
    job: SendJob,
    key: str | None,
    body_hash: str,
    now: float,
    choice: dict[str, Any] | None = None,
) -> dict[str, Any]:
    retention = ctx.settings.api.idempotency_retention_hours * 3600
    status, reason = accepted_status(job)
    row: dict[str, Any] = {
        "id": message_id(now),
        "tenant_id": tenant_id,
        "idempotency_key": key,
        "request_hash": body_hash if key else None,
        "idempotency_expires_at": now + retention if key else None,
        "channel": job.channel.value,
        "to_addr": job.to,
        "content": orjson.dumps(job.content).decode(),
        "category": job.category.value,
        "user_id": job.user_id,
        "campaign": job.campaign,
        "variant": job.variant,
        "send_at": job.send_at,
        "expires_at": job.expires_at,
        "fallback": ",".join(c.value for c in job.fallback) or None,
        "metadata": orjson.dumps(job.metadata).decode() if job.metadata else None,
        "tz": job.tz,
        "status": status.value,
        "reason": reason,
        "provider": None,
        "provider_message_id": None,
        "sender": None,
        "attempt_count": 0,
        "next_attempt_at": job.send_at if job.send_at else now,
        "lease_owner": None,
        "lease_until": None,
        "error_code": None,
        "error_message": None,
        "created_at": now,
        "updated_at": now,
    }
    if choice is not None:  # written as the message's channel.chosen event, not a column
        row[CHANNEL_CHOICE] = choice
    return row


def in_channel_order(ctx: ApiContext, job: SendJob) -> SendJob:
    """The job as it will be tried: with `channel_order: cost`, the cheapest adequate channel first
    (decided at accept, so the answer, the content check and the record all show it)."""
    if job.channel_order != "cost" or "addresses" in job.content:  # a recipient's job is ordered already
        return job
    channel, fallback = cheapest_first(job.channel.value, [c.value for c in job.fallback], ctx.routing.costs)
    return dataclasses.replace(job, channel=Channel(channel), fallback=tuple(Channel(c) for c in fallback))


def content_refusal(ctx: ApiContext, tenant_id: str, job: SendJob, prefix: str = "") -> Problem | None:
    """A job whose words the policy blocks is refused now, before it is stored, with what to fix; by the
    rules of the route it may go by (a China marketing route's signature and unsubscribe suffix). A
    templated job's text is named by the template, and the bodies of its fallback channels are checked
    too (each is sent as it is if the job falls back)."""
    if ctx.content is None or not ctx.settings.content.enforce_at_accept:
        return None
    base = f"{prefix}/template" if job.template is not None else f"{prefix}/content"
    bodies = [(job.channel.value, job.content, base)]
    alternates = job.content.get("fallback_content") if job.template is not None else None
    if isinstance(alternates, dict):
        bodies += [(channel, body, f"{prefix}/template/{channel}") for channel, body in alternates.items()]
    for channel, content, where in bodies:
        if channel == "webhook":
            continue
        report = ctx.content.check_message(
            channel=channel,
            content=content,
            tenant_id=tenant_id,
            to=job.to,
            category=job.category.value,
            provider=accept_route(ctx, channel),
        )
        if report is not None and not report.ok:
            return content_problem(report, where)
    return None


def unsendable_refusal(ctx: ApiContext, job: SendJob, prefix: str = "") -> Problem | None:
    """A job whose route sends only registered templates (Alibaba Cloud without a free-text template,
    Tencent Cloud) and which names none of that provider's templates would fail at dispatch: refused
    now, naming the body that cannot go and the providers that would refuse it."""
    bodies = [(job.channel.value, job.content)]
    if job.template is None:  # a plain job's fallback channels send the same content
        bodies += [(channel.value, job.content) for channel in job.fallback]
    elif isinstance(alternates := job.content.get("fallback_content"), dict):
        bodies += list(alternates.items())
    for channel, content in bodies:
        route = candidate_providers(channel, ctx.providers.by_channel, ctx.routing)
        capable = [(name, provider.capabilities) for name in route if (provider := ctx.providers.get(name))]
        if capable and not any(sendable_by(caps, content, name) for name, caps in capable):
            where = f"{prefix}/template" if job.template is not None else f"{prefix}/content"
            names = ", ".join(name for name, _ in capable)
            message = (
                f"the {channel} route ({names}) sends only templates registered with the provider: give a template"
                " whose published version carries that provider's template id"
            )
            return validation_problem([FieldError(where, message)])
    return None


def refusal_now(ctx: ApiContext, tenant_id: str, job: SendJob, now: float, prefix: str = "") -> Problem | None:
    timing = timing_problems(job.send_at, job.expires_at, now)
    if timing:
        return validation_problem([FieldError(prefix + f, m) for f, m in timing])
    return unsendable_refusal(ctx, job, prefix) or content_refusal(ctx, tenant_id, job, prefix)


async def _earlier_answer(ctx: ApiContext, tenant_id: str, key: str, body_hash: str) -> web.Response | None:
    """The answer the gateway gave a request with this key, if it took one."""
    row = await ctx.store.find_by_idempotency_key(tenant_id, key)
    if row is None:
        return None
    if row["request_hash"] != body_hash:
        raise key_reused_problem(AcceptOutcome("mismatch", row))
    ctx.metrics.replayed.inc()
    headers = {"Location": f"/v1/messages/{row['id']}", "Idempotent-Replayed": "true"}
    return json_response(render.accepted_message(row), 202, headers)


def key_reused_problem(outcome: AcceptOutcome) -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "Idempotency key reused",
        "this Idempotency-Key was already used with a different request body",
        errors=[FieldError("Idempotency-Key", "already used with a different body")],
        extra={"message_id": outcome.row["id"]},
    )


def key_in_flight_problem() -> Problem:
    return Problem(
        409,
        "idempotency-key-in-flight",
        "Request in progress",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        headers={"Retry-After": "1"},
    )


async def create_message(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not valid_idempotency_key(key):
        raise Problem(
            400,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "Idempotency-Key must be 1-255 printable ASCII characters",
            errors=[FieldError("Idempotency-Key", "must be 1-255 printable ASCII characters")],
        )
    if key is None and ctx.settings.api.require_idempotency_key:
        raise Problem(
            400,
            "missing-idempotency-key",
            "Idempotency-Key required",
            "this gateway requires an Idempotency-Key header on every send",
            errors=[FieldError("Idempotency-Key", "is required")],
        )
    body = await read_json(request, ctx.settings.api.max_body_bytes)
    now = time.time()
    judged, errors = judge_job(body, ctx.limits)
    if judged is None:
        raise validation_problem(errors)
    job, choice, refusal = await addressed_job(ctx, principal.tenant_id, judged.to_send_job(), judged.listed)
    if refusal is None:
        job, wrong = await ctx.experiments.assign(ctx.store, principal.tenant_id, in_channel_order(ctx, job))
        if wrong is not None:
            raise validation_problem([wrong])
        job, refusal = await rendered_job(ctx, principal.tenant_id, job)
    body_hash = request_hash(body)
    # Refusals that depend on the moment (an expiry now past, a word list changed since, a template
    # archived since) come after the key: a retry of a request the gateway already took gets the first
    # answer, not a new verdict.
    refusal = refusal or refusal_now(ctx, principal.tenant_id, job, now)
    if refusal is not None:
        earlier = await _earlier_answer(ctx, principal.tenant_id, key, body_hash) if key else None
        if earlier is not None:
            return earlier
        raise refusal
    row = job_row(ctx, principal.tenant_id, job, key, body_hash, now, choice)
    flight = (principal.tenant_id, key) if key else None
    if flight is not None:
        if flight in ctx.inflight_keys:
            raise key_in_flight_problem()
        ctx.inflight_keys.add(flight)
    try:
        outcome = await ctx.store.accept_one(row)
    finally:
        if flight is not None:
            ctx.inflight_keys.discard(flight)
    if outcome.kind == "mismatch":
        raise key_reused_problem(outcome)
    headers = {"Location": f"/v1/messages/{outcome.row['id']}"}
    if outcome.kind == "replay":
        ctx.metrics.replayed.inc()
        headers["Idempotent-Replayed"] = "true"
    else:
        ctx.metrics.accepted.labels(job.channel.value).inc()
        log.debug("message accepted", message_id=row["id"], tenant=principal.tenant_id, campaign=job.campaign)
    return json_response(render.accepted_message(outcome.row), 202, headers)


async def get_message(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    message_id = request.match_info["id"]
    row = await ctx.store.get_message(principal.tenant_id, message_id) if MESSAGE_ID.match(message_id) else None
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"no message {message_id!r}")
    row["clicks"] = [
        {"at": render.iso(c["at"]), "url": c["url"], "automated": bool(c["automated"])}
        for c in await ctx.store.message_clicks(row["id"])
    ]
    body = render.message_detail(row)
    base = (ctx.settings.links.base_url or ctx.settings.base_url).rstrip("/")
    body["links"] = [
        {"url": link["url"], "short_url": f"{base}/c/{link['token']}"}
        for link in await ctx.store.message_links(row["id"])
    ]
    return json_response(body)


def _cursor_decode(cursor: str) -> str | None:
    """The message a page ends at. A cursor is that message's id; one base64-encoded (as cursors were
    once given out) is still read."""
    if MESSAGE_ID.match(cursor):
        return cursor
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded if MESSAGE_ID.match(decoded) else None


async def list_messages(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    query, errors = MessageQuery.judge(request.query)
    before = _cursor_decode(query.cursor) if query is not None and query.cursor is not None else None
    if query is not None and query.cursor is not None and before is None:
        errors.append(FieldError("cursor", "is not a cursor this API gave out"))
    if query is None or errors:
        raise Problem(400, "invalid-query", "Invalid query", "some query parameters are not valid", errors=errors)
    to = query.to
    if to is not None and to.startswith("+"):
        to = normalise_phone(to) or to
    limit = query.limit
    rows = await ctx.store.list_messages(
        MessageFilter(
            tenant_id=principal.tenant_id,
            campaign=query.campaign,
            status=query.statuses,
            to=to,
            user_id=query.user_id,
            since=query.since,
            until=query.until,
            before_id=before,
            limit=limit + 1,
        )
    )
    page = rows[:limit]
    next_cursor = page[-1]["id"] if len(rows) > limit else None
    return json_response({"data": [render.message(r) for r in page], "next_cursor": next_cursor})

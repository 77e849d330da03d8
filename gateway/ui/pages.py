"""The console's pages: thin handlers that read through the store facade and render a template."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from aiohttp import web
from markupsafe import Markup

from gateway.api import render
from gateway.api.auth import hash_key
from gateway.api.context import context
from gateway.api.messages import MESSAGE_ID
from gateway.api.numbers import render_numbers
from gateway.api.reports import DEFAULT_GROUP_BY, MAX_REQUEUE, REQUEUE_FILTERS
from gateway.api.tracking import campaign_summary
from gateway.domain.failures import FAILURE_STATUSES, REPORT_DIMENSIONS, REQUEUEABLE, advice_for
from gateway.domain.models import IN_QUEUE, Status
from gateway.domain.numbers import NumberState
from gateway.domain.tracking import CAMPAIGN_DIMENSIONS
from gateway.number_pool import NumberPool
from gateway.store.records import MessageFilter
from gateway.ui import charts
from gateway.ui.console import (
    NEW_SESSION,
    PREFIX,
    SESSION,
    ConsoleError,
    Redirect,
    form,
    page,
    safe_next,
    signed_in,
)
from gateway.ui.filters import (
    STATUSES,
    WINDOWS,
    LogFilter,
    Window,
    failure_statuses,
    read_choices,
    read_log_filter,
    read_sort,
    read_window,
    sort_rows,
)
from gateway.ui.session import Session

TIMELINE_BUCKETS = 24
TIMELINE_SERIES = 7  # reasons drawn on their own; the rest are added up as "other"
LOG_PAGE = 50
EXPORT_PAGE = 1000
LIVE_MINUTES = 15
CAMPAIGN_GROUPINGS = ("variant", "channel", "variant,channel")
NUMBER_STATES = tuple(s.value for s in NumberState)
NUMBER_ACTIONS = {"flag": "flagged", "restore": "restored"}


# --- signing in ---------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    if request[SESSION].key_hash is not None and request.get(NEW_SESSION) is None:
        principal = await context(request).auth.lookup(request[SESSION].key_hash or "")
        if principal is not None:
            raise Redirect(safe_next(request.query.get("next")))
    notice = ""
    if "ended" in request.query:
        notice = "Your session ended: the key was revoked or has expired. Sign in again."
    return page(request, "login.html", next=safe_next(request.query.get("next")), error="", notice=notice)


async def login(request: web.Request) -> web.Response:
    submitted = form(request)
    key = str(submitted.get("key", "")).strip()
    target = safe_next(str(submitted.get("next", "")))
    principal = await context(request).auth.lookup(hash_key(key)) if key else None
    if principal is None:
        return page(
            request,
            "login.html",
            status=401,
            next=target,
            error="That key is unknown, revoked or expired.",
            notice="",
        )
    if not (principal.allows("read") or principal.allows("report")):
        return page(
            request,
            "login.html",
            status=403,
            next=target,
            error="That key has neither the 'read' nor the 'report' scope; the console needs one of them.",
            notice="",
        )
    request[NEW_SESSION] = Session.signed_in(hash_key(key))
    raise Redirect(target)


async def logout(request: web.Request) -> web.Response:
    request[NEW_SESSION] = Session.anonymous()
    raise Redirect(f"{PREFIX}/login")


async def home(request: web.Request) -> web.Response:
    raise Redirect(f"{PREFIX}/failures")


# --- failures -------------------------------------------------------------------------------------


def _time_label(ts: float, span: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%H:%M" if span <= 2 * 86400 else "%m-%d %H:%M")


def _timeline_chart(points: list[tuple[int, str | None, int]], window: Window) -> str:
    per_reason: dict[str, list[int]] = {}
    totals: Counter[str] = Counter()
    for _, reason, count in points:
        totals[reason or "(none)"] += count
    top = [reason for reason, _ in totals.most_common(TIMELINE_SERIES)]
    for bucket, reason, count in points:
        name = reason or "(none)"
        name = name if name in top else "other"
        per_reason.setdefault(name, [0] * TIMELINE_BUCKETS)[bucket] += count
    series = [(name, per_reason[name]) for name in [*top, "other"] if name in per_reason]
    span = window.until - window.since
    width = span / TIMELINE_BUCKETS
    labels = [_time_label(window.since + i * width, span) for i in range(TIMELINE_BUCKETS)]
    axis = (_time_label(window.since, span), _time_label(window.until, span))
    return charts.stacked_bars(labels, series, title="Failures over time by reason", axis=axis)


def _group_query(window: Window, statuses: tuple[str, ...], group: dict[str, Any]) -> str:
    """The query naming one group (an empty value stands for "none"), for its drill-down and requeue."""
    params = dict(window.query())
    if statuses != FAILURE_STATUSES:
        params["status"] = ",".join(statuses)
    params.update({name: "" if value is None else str(value) for name, value in group.items()})
    return urlencode(params)


async def failures(request: web.Request) -> web.Response:
    principal = await signed_in(request, "report")
    query = request.query
    errors: dict[str, str] = {}
    window = read_window(query, time.time(), errors)
    group_by = read_choices(query.get("group_by"), tuple(REPORT_DIMENSIONS), DEFAULT_GROUP_BY, "group_by", errors)
    statuses = failure_statuses(query, errors)
    sort = read_sort(query, (*group_by, "count", "first_seen", "last_seen"), "count", errors)
    store = context(request).store
    # The table links each group to its messages, so it needs no sample ids (a query per group).
    # Table and chart read the same window side by side, on two of the store's reader connections.
    groups, points = await asyncio.gather(
        store.failure_report(principal.tenant_id, window.since, window.until, group_by, statuses, samples=0),
        store.failure_timeline(principal.tenant_id, window.since, window.until, statuses, TIMELINE_BUCKETS),
    )
    rows = []
    for group in groups:
        dims = {name: group[name] for name in group_by}
        rows.append(
            {
                **group,
                "advice": advice_for(group["reason"]) if "reason" in group_by else None,
                "group_query": _group_query(window, statuses, dims),
            }
        )
    base = {**window.query(), "group_by": ",".join(group_by)}
    if statuses != FAILURE_STATUSES:
        base["status"] = ",".join(statuses)
    return page(
        request,
        "failures.html",
        tenant=principal.tenant_id,
        errors=errors,
        window=window,
        windows=list(WINDOWS),
        group_by=group_by,
        dimensions=list(REPORT_DIMENSIONS),
        statuses=statuses,
        all_statuses=FAILURE_STATUSES,
        sort=sort,
        base=base,
        rows=sort_rows(rows, sort),
        total=sum(g["count"] for g in groups),
        chart=charts_markup(_timeline_chart(points, window)),
    )


def charts_markup(svg: str) -> Markup:
    # Built by gateway.ui.charts, which escapes every label it draws.
    return Markup(svg)


def _group_from(query: Any) -> dict[str, str | None]:
    return {name: (query.get(name) or None) for name in REPORT_DIMENSIONS if name in query}


async def failure_group(request: web.Request) -> web.Response:
    principal = await signed_in(request, "report")
    query = request.query
    errors: dict[str, str] = {}
    window = read_window(query, time.time(), errors)
    statuses = failure_statuses(query, errors)
    group = _group_from(query)
    if not group:
        raise ConsoleError(400, "Which group?", "Name the group to open, e.g. ?reason=provider.permanent")
    samples = await context(request).store.failure_samples(
        principal.tenant_id, window.since, window.until, statuses, group
    )
    return page(
        request,
        "failure_group.html",
        tenant=principal.tenant_id,
        errors=errors,
        window=window,
        group=group,
        advice=advice_for(group["reason"]) if "reason" in group else None,
        samples=samples,
        group_query=_group_query(window, statuses, group),
        back=urlencode({**window.query(), "group_by": ",".join(group)}),
    )


def _requeue_filter(fields: Any, errors: dict[str, str]) -> tuple[dict[str, Any], Window, list[str]]:
    """The requeue filter for a failure group: its window, and each dimension that has a value.
    A dimension that is empty in the group cannot be filtered on; it is named so the page says so."""
    window = read_window(fields, time.time(), errors)
    filters: dict[str, Any] = {"since": window.since, "until": window.until}
    unfiltered = []
    for name in REPORT_DIMENSIONS:
        if name not in fields:
            continue
        value = str(fields.get(name) or "")
        if value and name in REQUEUE_FILTERS:
            filters[name] = value
        else:
            unfiltered.append(name)
    # The group's failed messages only (as the failures page counts them), not the whole filter's.
    filters["statuses"] = failure_statuses(fields, errors)
    return filters, window, unfiltered


def _shown(filters: dict[str, Any]) -> dict[str, str]:
    shown = {k: str(v) for k, v in filters.items() if k not in ("since", "until", "statuses")}
    shown["status"] = ", ".join(filters["statuses"])
    return shown


async def requeue_preview(request: web.Request) -> web.Response:
    principal = await signed_in(request, "report")
    errors: dict[str, str] = {}
    filters, window, unfiltered = _requeue_filter(request.query, errors)
    if len(filters) <= 3:
        raise ConsoleError(400, "Which messages?", "Open the preview from a failure group so it has a filter.")
    plan = await context(request).store.requeue_by_filter(
        principal.tenant_id, filters, MAX_REQUEUE, dry_run=True, actor=principal.key_id
    )
    hidden = {k: v for k, v in request.query.items() if k in REPORT_DIMENSIONS or k in ("status",)}
    # The window is fixed as previewed: "last 24 h" must not slide between the preview and the act.
    hidden.update({"since": render.iso(window.since) or "", "until": render.iso(window.until) or ""})
    return page(
        request,
        "requeue.html",
        tenant=principal.tenant_id,
        plan=plan,
        filters=_shown(filters),
        window=window,
        unfiltered=unfiltered,
        hidden=hidden,
        can_send=principal.allows("send"),
        requeueable_statuses=sorted(REQUEUEABLE),
        advice=advice_for(filters["reason"]) if "reason" in filters else None,
        done=False,
    )


async def requeue(request: web.Request) -> web.Response:
    principal = await signed_in(request, "send")
    errors: dict[str, str] = {}
    filters, window, unfiltered = _requeue_filter(form(request), errors)
    if len(filters) <= 3 or errors:
        raise ConsoleError(400, "Which messages?", "The requeue form lost its filter; open it again from a group.")
    result = await context(request).store.requeue_by_filter(
        principal.tenant_id, filters, MAX_REQUEUE, dry_run=False, actor=principal.key_id
    )
    return page(
        request,
        "requeue.html",
        tenant=principal.tenant_id,
        plan=result,
        filters=_shown(filters),
        window=window,
        unfiltered=unfiltered,
        hidden={},
        can_send=True,
        requeueable_statuses=sorted(REQUEUEABLE),
        advice=None,
        done=True,
    )


# --- campaigns ------------------------------------------------------------------------------------


async def campaigns(request: web.Request) -> web.Response:
    principal = await signed_in(request, "report")
    wanted = request.query.get("name", "").strip()
    if wanted:
        raise Redirect(f"{PREFIX}/campaigns/{quote(wanted, safe='')}")
    names = await context(request).store.campaign_names(principal.tenant_id)
    return page(request, "campaigns.html", tenant=principal.tenant_id, names=names)


async def campaign(request: web.Request) -> web.Response:
    principal = await signed_in(request, "report")
    name = request.match_info["campaign"]
    errors: dict[str, str] = {}
    group_by = read_choices(request.query.get("group_by"), tuple(CAMPAIGN_DIMENSIONS), ("variant",), "group_by", errors)
    store = context(request).store
    groups = await store.campaign_report(principal.tenant_id, name, group_by)
    if not groups:
        raise ConsoleError(404, "No such campaign", f"No message of this tenant names the campaign {name!r}.")
    report = campaign_summary(name, group_by, groups, await store.campaign_link_report(principal.tenant_id, name))

    def stages(g: dict[str, Any]) -> list[tuple[str, int]]:
        return [
            ("sent", g["sent"]),  # not a status: the funnel's stages
            ("delivered", g["delivered"]),  # not a status
            ("clicked", g["unique_clicks"]),
            ("converted", g["conversions"]),
        ]

    funnels = [
        {
            "label": " / ".join(f"{dim} {g[dim] if g[dim] is not None else '-'}" for dim in group_by),
            "chart": charts_markup(charts.funnel(stages(g), title="Funnel")),
        }
        for g in report["groups"]
    ]
    return page(
        request,
        "campaign.html",
        tenant=principal.tenant_id,
        errors=errors,
        name=name,
        group_by=group_by,
        groupings=CAMPAIGN_GROUPINGS,
        report=report,
        total_funnel=charts_markup(charts.funnel(stages(report["totals"]), title=f"Funnel of {name}")),
        funnels=funnels,
    )


# --- delivery log ---------------------------------------------------------------------------------


def _message_filter(tenant_id: str, log_filter: LogFilter, before: str | None, limit: int) -> MessageFilter:
    return MessageFilter(
        tenant_id=tenant_id,
        campaign=log_filter.campaign,
        status=log_filter.status,
        to=log_filter.to,
        user_id=log_filter.user_id,
        since=log_filter.since,
        until=log_filter.until,
        before_id=before,
        limit=limit,
    )


async def delivery_log(request: web.Request) -> web.Response:
    principal = await signed_in(request, "read")
    errors: dict[str, str] = {}
    log_filter = read_log_filter(request.query, errors)
    store = context(request).store
    notice = ""
    if log_filter.message_id:
        found = MESSAGE_ID.match(log_filter.message_id) and await store.get_message(
            principal.tenant_id, log_filter.message_id
        )
        if found:
            raise Redirect(f"{PREFIX}/messages/{log_filter.message_id}")
        notice = f"No message {log_filter.message_id!r} in this tenant's log."
    before = request.query.get("before")
    if before is not None and not MESSAGE_ID.match(before):
        errors["before"] = "is not a message id"
        before = None
    rows: list[dict[str, Any]] = []
    if not errors:
        rows = await store.list_messages(_message_filter(principal.tenant_id, log_filter, before, LOG_PAGE + 1))
    older = rows[LOG_PAGE - 1]["id"] if len(rows) > LOG_PAGE else None
    return page(
        request,
        "messages.html",
        tenant=principal.tenant_id,
        errors=errors,
        notice=notice,
        form_values=log_filter.raw,
        statuses=STATUSES,
        rows=rows[:LOG_PAGE],
        older=urlencode({**log_filter.query(), "before": older}) if older else None,
        export_query=urlencode(log_filter.query()),
    )


CSV_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "status",
    "reason",
    "channel",
    "to",
    "category",
    "campaign",
    "variant",
    "user_id",
    "provider",
    "sender",
    "attempt_count",
    "error_code",
    "error_message",
)


def _csv_line(record: dict[str, Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(["" if record[c] is None else record[c] for c in CSV_COLUMNS])
    return buffer.getvalue().encode()


async def export(request: web.Request) -> web.StreamResponse:
    """Every message the current filter matches, newest first, streamed page by page."""
    principal = await signed_in(request, "read")
    errors: dict[str, str] = {}
    log_filter = read_log_filter(request.query, errors)
    fmt = request.query.get("format", "csv")
    if fmt not in ("csv", "ndjson"):
        errors["format"] = "must be csv or ndjson"
    if errors:
        raise ConsoleError(400, "Cannot export", "; ".join(f"{k} {v}" for k, v in errors.items()))
    store = context(request).store
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson",
            "Content-Disposition": f"attachment; filename=delivery-log.{fmt}",
            "Cache-Control": "no-store",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    if fmt == "csv":
        await response.write(",".join(CSV_COLUMNS).encode() + b"\r\n")
    before: str | None = None
    while True:
        rows = await store.list_messages(_message_filter(principal.tenant_id, log_filter, before, EXPORT_PAGE))
        chunk = b"".join(
            _csv_line(render.message(row)) if fmt == "csv" else orjson.dumps(render.message(row)) + b"\n"
            for row in rows
        )
        if chunk:
            await response.write(chunk)
        if len(rows) < EXPORT_PAGE:
            break
        before = rows[-1]["id"]
    await response.write_eof()
    return response


async def message(request: web.Request) -> web.Response:
    principal = await signed_in(request, "read")
    message_id = request.match_info["id"]
    store = context(request).store
    row = await store.get_message(principal.tenant_id, message_id) if MESSAGE_ID.match(message_id) else None
    if row is None:
        raise ConsoleError(404, "No such message", f"No message {message_id!r} in this tenant's log.")
    clicks = await store.message_clicks(row["id"])
    links = await store.message_links(row["id"])
    base = (context(request).settings.links.base_url or context(request).settings.base_url).rstrip("/")
    started = row["events"][0]["at"] if row["events"] else row["created_at"]
    return page(
        request,
        "message.html",
        tenant=principal.tenant_id,
        m=row,
        content=orjson.loads(row["content"]) if row["content"] else {},
        advice=advice_for(row["reason"]) if row["status"] in FAILURE_STATUSES else None,
        started=started,
        clicks=clicks,
        links=[{"url": link["url"], "short_url": f"{base}/c/{link['token']}"} for link in links],
    )


# --- live -----------------------------------------------------------------------------------------


# The live page: statuses charted per minute, those charted even when flat, and the rates shown.
LIVE_STATUSES = (Status.QUEUED, Status.SENT, Status.DELIVERED, Status.FAILED, Status.UNDELIVERED, Status.SUPPRESSED)
ALWAYS_CHARTED = (Status.QUEUED, Status.SENT)
RATE_STATUSES = (Status.QUEUED, Status.SENT, Status.DELIVERED)


async def live(request: web.Request) -> web.Response:
    principal = await signed_in(request, "read")
    store = context(request).store
    now = time.time()
    depth = await store.status_counts(IN_QUEUE, principal.tenant_id)
    since = (now // 60 + 1) * 60 - LIVE_MINUTES * 60  # whole minutes, the current one last
    points = await store.activity(principal.tenant_id, since, now + 1, 60.0)
    shown = LIVE_STATUSES
    per_status: dict[str, list[int]] = {status: [0] * LIVE_MINUTES for status in shown}
    for bucket, status, count in points:
        if status in per_status and 0 <= bucket < LIVE_MINUTES:
            per_status[status][bucket] += count
    labels = [_time_label(since + i * 60, 3600) for i in range(LIVE_MINUTES)]
    chart = charts.lines(
        labels,
        [(status, values) for status, values in per_status.items() if any(values) or status in ALWAYS_CHARTED],
        title="Messages per minute by status reached",
    )
    minutes = [
        {"label": labels[i], **{status: per_status[status][i] for status in shown}}
        for i in reversed(range(LIVE_MINUTES))
    ]
    last_minute: Counter[str] = Counter()
    for _, status, count in await store.activity(principal.tenant_id, now - 60, now + 1, 61.0):
        last_minute[status or ""] += count
    return page(
        request,
        "live.html",
        tenant=principal.tenant_id,
        depth=depth,
        rates={status: last_minute[status] / 60 for status in RATE_STATUSES},
        chart=charts_markup(chart),
        minutes=minutes,
        shown=shown,
        now=now,
    )


# --- sender numbers -------------------------------------------------------------------------------


def _number_pool(request: web.Request) -> NumberPool:
    pool = context(request).numbers
    if pool is None:
        raise ConsoleError(404, "No number pools", "Sender number pools are not enabled on this gateway.")
    return pool


async def numbers(request: web.Request) -> web.Response:
    """Every sender number with its state, the reason it is in it, and its health in the window.
    Numbers belong to the provider accounts, not to a tenant: every tenant sees the same list."""
    principal = await signed_in(request, "read")
    pool = _number_pool(request)
    errors: dict[str, str] = {}
    pool_name = request.query.get("pool") or None
    state = request.query.get("state") or None
    if state is not None and state not in NUMBER_STATES:
        errors["state"] = f"must be one of {', '.join(NUMBER_STATES)}"
        state = None
    rows = await context(request).store.number_rows(pool_name, state)
    listed = await render_numbers(pool, rows)
    by_pool: dict[str, Counter[str]] = {}
    for number in listed:
        by_pool.setdefault(number["pool"], Counter())[number["state"]] += 1
    return page(
        request,
        "numbers.html",
        tenant=principal.tenant_id,
        errors=errors,
        numbers=listed,
        pools=sorted(by_pool.items()),
        states=NUMBER_STATES,
        chosen={"pool": pool_name or "", "state": state or ""},
        window_minutes=round(pool.policy.window_seconds / 60),
    )


async def number(request: web.Request) -> web.Response:
    principal = await signed_in(request, "read")
    pool = _number_pool(request)
    store = context(request).store
    row = await store.number_row(request.match_info["id"])
    if row is None:
        raise ConsoleError(404, "No such number", f"No sender number {request.match_info['id']!r}.")
    [shown] = await render_numbers(pool, [row])
    events = await store.number_events(row["id"], 50)
    return page(
        request,
        "number.html",
        tenant=principal.tenant_id,
        n=shown,
        events=events,
        can_change=principal.allows("admin"),
        error=request.query.get("error", ""),
    )


async def number_action(request: web.Request) -> web.Response:
    """Flag (with a reason) or restore a number: the same act as POST /v1/numbers/{id}/flag|restore,
    with the admin scope it needs there, recorded with this key as the actor."""
    principal = await signed_in(request, "admin")
    pool = _number_pool(request)
    action = request.match_info["action"]
    number_id = request.match_info["id"]
    reason = str(form(request).get("reason", "")).strip()
    if action == "flag" and not 1 <= len(reason) <= 200:
        raise _back_to_number(number_id, "Say why the number is flagged (1-200 characters); nothing was changed.")
    if not reason:
        reason = f"{NUMBER_ACTIONS[action]} by an operator"
    row, _ = await pool.operate(number_id, action, reason[:200], f"operator:{principal.key_id}")
    if row is None:
        raise ConsoleError(404, "No such number", f"No sender number {number_id!r}.")
    if action == "flag" and row["state"] == "retired":
        raise _back_to_number(number_id, "A retired number cannot be flagged; restore it first.")
    raise Redirect(f"{PREFIX}/numbers/{quote(number_id, safe='')}")


def _back_to_number(number_id: str, error: str) -> Redirect:
    return Redirect(f"{PREFIX}/numbers/{quote(number_id, safe='')}?" + urlencode({"error": error}))

"""The console's failure pages: the report by reason, one group of failures, and requeueing them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.api import render
from gateway.api.context import context
from gateway.contract.reports import DEFAULT_GROUP_BY, MAX_REQUEUE, REQUEUE_FILTERS
from gateway.domain.failures import FAILURE_STATUSES, REPORT_DIMENSIONS, REQUEUEABLE, advice_for
from gateway.ui import charts
from gateway.ui.charts import as_markup, time_label
from gateway.ui.console import ConsoleError, form, page, signed_in
from gateway.ui.filters import WINDOWS, Window, failure_statuses, read_choices, read_sort, read_window, sort_rows

TIMELINE_BUCKETS = 24
TIMELINE_SERIES = 7  # reasons drawn on their own; the rest are added up as "other"


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
    labels = [time_label(window.since + i * width, span) for i in range(TIMELINE_BUCKETS)]
    axis = (time_label(window.since, span), time_label(window.until, span))
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
        chart=as_markup(_timeline_chart(points, window)),
    )


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

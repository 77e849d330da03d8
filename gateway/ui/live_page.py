"""The console's live page: the last minutes of traffic by status."""

from __future__ import annotations

import time
from collections import Counter

from aiohttp import web

from gateway.api.context import context
from gateway.domain.models import IN_QUEUE, Status
from gateway.ui import charts
from gateway.ui.charts import as_markup, time_label
from gateway.ui.console import page, signed_in

LIVE_MINUTES = 15


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
    labels = [time_label(since + i * 60, 3600) for i in range(LIVE_MINUTES)]
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
        chart=as_markup(chart),
        minutes=minutes,
        shown=shown,
        now=now,
    )

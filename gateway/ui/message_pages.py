"""The console's delivery log: the filtered list, its CSV export, and one message's history."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from gateway.api import render
from gateway.api.context import context
from gateway.api.messages import MESSAGE_ID
from gateway.domain.failures import FAILURE_STATUSES, advice_for
from gateway.store.records import MessageFilter
from gateway.ui.console import PREFIX, ConsoleError, Redirect, page, signed_in
from gateway.ui.filters import STATUSES, LogFilter, read_log_filter

LOG_PAGE = 50
EXPORT_PAGE = 1000


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

"""The audit log for ops: every status change and administrative act, streamed as NDJSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from gateway.api.context import context
from gateway.api.render import iso
from gateway.api.reports import invalid_query, time_window
from gateway.contract.events import CSV, CSV_COLUMNS, NDJSON, EventQuery
from gateway.store.port import ReportStore

PAGE = 2000


def event_record(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": iso(row["at"]),
        "type": row["type"],
        "message_id": row["message_id"],
        "status": row["status"],
        "reason": row["reason"],
        "detail": orjson.loads(row["detail"]) if row["detail"] else {},
    }


async def iterate_events(
    store: ReportStore, tenant_id: str, since: float, until: float, types: tuple[str, ...], message_id: str | None
) -> AsyncIterator[dict[str, Any]]:
    after = 0
    while True:
        rows = await store.events_page(tenant_id, since, until, after, PAGE, types, message_id)
        for row in rows:
            yield event_record(row)
        if len(rows) < PAGE:
            return
        after = rows[-1]["id"]


def csv_line(record: dict[str, Any]) -> str:
    buffer = io.StringIO()
    values = [record[c] if c != "detail" else orjson.dumps(record["detail"]).decode() for c in CSV_COLUMNS]
    csv.writer(buffer).writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


async def export_events(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    query, errors = EventQuery.judge(request.query)
    if query is None:
        raise invalid_query(errors)
    # The default window reaches a second past now, so an event written this instant is exported.
    since, until = time_window(query.since, query.until, until_slack=1.0)
    as_csv = CSV in request.headers.get("Accept", "")
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{CSV}; charset=utf-8" if as_csv else NDJSON,
            "Content-Disposition": f"attachment; filename=events.{'csv' if as_csv else 'ndjson'}",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    if as_csv:
        await response.write(",".join(CSV_COLUMNS).encode() + b"\r\n")
    records = iterate_events(ctx.store, principal.tenant_id, since, until, query.types, query.message_id)
    async for record in records:
        await response.write(csv_line(record).encode() if as_csv else orjson.dumps(record) + b"\n")
    await response.write_eof()
    return response

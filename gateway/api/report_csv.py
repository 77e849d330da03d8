"""Reports as CSV (Accept: text/csv or ?format=csv): one line per group, nested values flattened."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from gateway.contract.events import CSV


def wants_csv(request: web.Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "csv"
    return CSV in request.headers.get("Accept", "")


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"cost": {"CNY": 1.5}}` -> `{"cost.CNY": 1.5}`; a list becomes its JSON text."""
    flat: dict[str, Any] = {}
    for name, value in row.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, key + "."))
        elif isinstance(value, list):
            flat[key] = orjson.dumps(value).decode()
        else:
            flat[key] = value
    return flat


def csv_text(rows: Sequence[Mapping[str, Any]], leading: Sequence[str] = ()) -> str:
    """The rows under one header: `leading` columns first, then every other column in first-seen order."""
    flat = [flatten(row) for row in rows]
    columns = list(dict.fromkeys([*leading, *(name for row in flat for name in row)]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in flat:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buffer.getvalue()


def csv_answer(rows: Sequence[Mapping[str, Any]], filename: str, leading: Sequence[str] = ()) -> web.Response:
    return web.Response(
        body=csv_text(rows, leading).encode(),
        headers={
            "Content-Type": f"{CSV}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}.csv"',
        },
    )

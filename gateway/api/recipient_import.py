"""POST /v1/recipients: many profiles, NDJSON or CSV, read and answered line by line.

Each line is judged on its own; valid lines are written in batches (one transaction each), so a line is
either wholly stored or, when invalid, not at all; the answer streams each line's result once its batch
is committed. A CSV's header is judged first: an unknown column is line 1's error and nothing more is read.
"""

from __future__ import annotations

import csv
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from gateway.api.bodies import check_parsed
from gateway.api.context import ApiContext, context
from gateway.api.problems import Problem
from gateway.api.recipients import platform_problems, to_profile
from gateway.contract.base import judge
from gateway.contract.recipients import CSV, NDJSON, ImportLine
from gateway.domain.jobs import FieldError
from gateway.domain.recipients import RecipientProfile

BATCH = 200
MAX_LINE_BYTES = 65_536
# CSV columns and the pointer of the field each fills (attr.<name> fills /attributes/<name>).
COLUMNS = {
    "user_id": "/user_id",
    "phone": "/phone",
    "email": "/email",
    "push_token": "/push_tokens/0/token",
    "push_platform": "/push_tokens/0/platform",
    "webhook_url": "/webhook_url",
    "tz": "/tz",
    "locale": "/locale",
}
ATTRIBUTE_COLUMN = re.compile(r"^attr\.[A-Za-z0-9_.-]{1,64}$")
_COLUMN_OF = {pointer: column for column, pointer in COLUMNS.items()}


@dataclass
class Pending:
    line: int
    user_id: str | None
    profile: RecipientProfile | None = None
    errors: list[FieldError] = field(default_factory=list)


async def lines(request: web.Request) -> AsyncIterator[tuple[int, bytes]]:
    """The body's lines, numbered from 1, read as they arrive (aiohttp's readline refuses long lines)."""
    number, buffer = 0, b""
    async for chunk in request.content.iter_any():
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            number += 1
            yield number, raw.rstrip(b"\r")
        if len(buffer) > MAX_LINE_BYTES:
            number += 1
            yield number, buffer  # judged too long; the rest of the line is not waited for
            return
    if buffer:
        yield number + 1, buffer


def judge_line(ctx: ApiContext, number: int, value: Any, column_names: bool) -> Pending:
    user_id = value.get("user_id") if isinstance(value, dict) and isinstance(value.get("user_id"), str) else None
    judged, errors = judge(ImportLine, value)
    if judged is not None:
        errors = platform_problems(ctx, judged.push_tokens)
    if column_names:
        errors = [FieldError(_column(e.field), e.message) for e in errors]
    if errors or judged is None:
        return Pending(number, user_id, errors=errors)
    return Pending(number, user_id, to_profile(judged.user_id, judged))


def _column(pointer: str) -> str:
    if pointer.startswith("/attributes/"):
        return "attr." + pointer.removeprefix("/attributes/")
    return _COLUMN_OF.get(pointer, pointer.lstrip("/"))


def parse_ndjson(raw: bytes) -> Any:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return FieldError("/", "not valid JSON")
    try:
        check_parsed(raw, parsed)
    except Problem as problem:
        return problem.errors[0] if problem.errors else FieldError("/", problem.detail)
    return parsed


def csv_header(raw: bytes) -> list[str] | FieldError:
    """The columns line 1 names, or what is wrong with them."""
    try:
        names = next(csv.reader([raw.decode("utf-8-sig")]), [])
    except (UnicodeDecodeError, csv.Error):
        return FieldError("/", "not a CSV line in UTF-8")
    unknown = [n for n in names if n not in COLUMNS and not ATTRIBUTE_COLUMN.match(n)]
    if unknown:
        return FieldError(unknown[0], f"is not a column (known: {', '.join(COLUMNS)}, attr.<name>)")
    if names.count("user_id") != 1 or len(set(names)) != len(names):
        return FieldError("user_id", "the header must name user_id, and every column once")
    return names


def csv_record(names: list[str], raw: bytes) -> Any:
    try:
        cells = next(csv.reader([raw.decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error):
        return FieldError("/", "not a CSV line in UTF-8")
    if len(cells) != len(names):
        return FieldError("/", f"has {len(cells)} cells, the header {len(names)}")
    value: dict[str, Any] = {}
    for name, cell in zip(names, cells, strict=True):
        if cell == "":
            continue
        if name.startswith("attr."):
            value.setdefault("attributes", {})[name.removeprefix("attr.")] = cell
        elif name in ("push_token", "push_platform"):
            token = value.setdefault("push_tokens", [{}])[0]
            token["token" if name == "push_token" else "platform"] = cell
        else:
            value[name] = cell
    return value


def judge_raw(ctx: ApiContext, number: int, raw: bytes, names: list[str] | None) -> Pending:
    if not raw.strip():
        return Pending(0, None)  # a blank line: no result
    if len(raw) > MAX_LINE_BYTES:
        return Pending(number, None, errors=[FieldError("/", f"is longer than {MAX_LINE_BYTES} bytes")])
    value = csv_record(names, raw) if names is not None else parse_ndjson(raw)
    if isinstance(value, FieldError):
        return Pending(number, None, errors=[value])
    return judge_line(ctx, number, value, names is not None)


def _result(p: Pending, created: bool | None) -> bytes:
    if p.errors:
        body = {
            "line": p.line,
            "user_id": p.user_id,
            "result": "invalid",
            "errors": [{"field": e.field, "message": e.message} for e in p.errors],
        }
    else:
        body = {"line": p.line, "user_id": p.user_id, "result": "created" if created else "updated"}
    return orjson.dumps(body) + b"\n"


async def flush(ctx: ApiContext, tenant_id: str, pending: list[Pending], response: web.StreamResponse) -> None:
    valid = [p.profile for p in pending if p.profile is not None]
    created = iter(await ctx.store.put_recipients(tenant_id, valid) if valid else [])
    shown = [p for p in pending if p.line]  # blank lines have no result
    await response.write(b"".join(_result(p, next(created) if p.profile is not None else None) for p in shown))
    pending.clear()


async def import_recipients(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    media = request.content_type
    if media not in (NDJSON, CSV):
        raise Problem(415, "unsupported-media-type", "Unsupported Media Type", f"send {NDJSON} or {CSV}")
    source = lines(request)
    first = await anext(source, None)
    if first is None:
        raise Problem(400, "empty-body", "Empty body", "the body holds no lines", errors=[FieldError("/", "is empty")])
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    await response.prepare(request)
    pending: list[Pending] = []
    names: list[str] | None = None
    if media == CSV:
        header = csv_header(first[1])
        if isinstance(header, FieldError):
            await response.write(_result(Pending(1, None, errors=[header]), None))
            await response.write_eof()
            return response
        names = header
    else:
        pending.append(judge_raw(ctx, first[0], first[1], None))
    async for number, raw in source:
        pending.append(judge_raw(ctx, number, raw, names))
        if len(pending) >= BATCH:
            await flush(ctx, principal.tenant_id, pending, response)
    await flush(ctx, principal.tenant_id, pending, response)
    await response.write_eof()
    return response

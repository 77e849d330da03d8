"""Content preflight (`POST /v1/content/check`) and each tenant's blocked-word lists."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from gateway.api.bodies import read_json
from gateway.api.context import ApiContext, context
from gateway.api.problems import Problem, validation_problem
from gateway.api.render import iso
from gateway.domain.content import ContentReport, validate_word_list
from gateway.domain.jobs import FieldError, normalise_phone
from gateway.domain.models import Category, Channel, is_member

LIST_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_LIST_WORDS = 50_000


def report_body(report: ContentReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "encoding": report.encoding,
        "segments": report.segments,
        "violations": [
            {
                "rule": v.rule,
                "severity": v.severity,
                "start": v.start,
                "end": v.end,
                "match": v.match,
                "message": v.message,
            }
            for v in report.violations
        ],
        "fixed_text": report.fixed_text,
    }


def content_problem(report: ContentReport, field: str) -> Problem:
    """A job refused at accept: the violations say what to change, and where."""
    blocking = [v for v in report.violations if v.severity == "block"]
    return Problem(
        422,
        "content-policy",
        "Content refused by policy",
        "; ".join(v.message for v in blocking[:3]),
        errors=[FieldError(field, f"{v.rule}: {v.message}") for v in blocking],
        extra={"violations": report_body(report)["violations"], "fixed_text": report.fixed_text},
    )


async def check(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    body = await read_json(request, 65_536)
    if not isinstance(body, dict):
        raise validation_problem([FieldError("/", "must be a JSON object")])
    errors = [
        FieldError(f"/{n}", "is not a known field")
        for n in sorted(set(body) - {"channel", "to", "text", "category", "provider"})
    ]
    channel = body.get("channel")
    if not is_member(channel, Channel):
        errors.append(FieldError("/channel", f"must be one of {', '.join(c.value for c in Channel)}"))
    text = body.get("text")
    hard_max = ctx.settings.content.hard_max_chars
    if not isinstance(text, str) or not text.strip():
        errors.append(FieldError("/text", "must be a non-empty string"))
    elif len(text) > hard_max:
        errors.append(FieldError("/text", f"must be at most {hard_max} characters (got {len(text)})"))
    to = body.get("to")
    if to is not None and (not isinstance(to, str) or (to.startswith("+") and normalise_phone(to) is None)):
        errors.append(FieldError("/to", "must be a valid phone number in E.164 form, or an address"))
    category = body.get("category", "marketing")
    if not is_member(category, Category):
        errors.append(FieldError("/category", "must be marketing or transactional"))
    provider = body.get("provider")
    if provider is not None and (not isinstance(provider, str) or ctx.providers.get(provider) is None):
        errors.append(FieldError("/provider", "is not a configured provider"))
    if errors:
        raise validation_problem(errors)
    assert ctx.content is not None and isinstance(text, str)
    report = ctx.content.check(
        channel=str(channel),
        text=text,
        tenant_id=principal.tenant_id,
        to=normalise_phone(to) if isinstance(to, str) and to.startswith("+") else to,
        category=str(category),
        provider=provider,
    )
    return web.Response(body=orjson.dumps(report_body(report)), content_type="application/json")


def _list_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not LIST_NAME.match(name):
        raise Problem(
            404,
            "not-found",
            "Not Found",
            f"no list {name!r}: names are 1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit",
        )
    return name


def _render(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "severity": row["severity"],
        "words": row["words"],
        "updated_at": iso(row["updated_at"]),
    }


async def _find(ctx: ApiContext, tenant_id: str, name: str) -> dict[str, Any]:
    rows = [r for r in await ctx.store.blocklists(tenant_id) if r["name"] == name]
    if not rows:
        raise Problem(404, "not-found", "Not Found", f"this tenant has no list {name!r}")
    return rows[0]


async def list_blocklists(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    rows = await ctx.store.blocklists(principal.tenant_id)
    return web.Response(body=orjson.dumps({"data": [_render(r) for r in rows]}), content_type="application/json")


async def get_blocklist(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    row = await _find(ctx, principal.tenant_id, _list_name(request))
    return web.Response(body=orjson.dumps(_render(row)), content_type="application/json")


async def put_blocklist(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "admin")
    name = _list_name(request)
    body = await read_json(request, 4 * 1024 * 1024)
    if not isinstance(body, dict):
        raise validation_problem([FieldError("/", "must be a JSON object")])
    errors = [FieldError(f"/{n}", "is not a known field") for n in sorted(set(body) - {"words", "severity"})]
    words = body.get("words")
    severity = body.get("severity", "block")
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        errors.append(FieldError("/words", "must be a list of strings"))
    elif len(words) > MAX_LIST_WORDS:
        errors.append(FieldError("/words", f"must hold at most {MAX_LIST_WORDS} words"))
    else:
        problems = validate_word_list(words, severity if isinstance(severity, str) else "")
        errors.extend(
            FieldError("/severity" if index is None else f"/words/{index}", message) for index, message in problems
        )
    if severity not in ("block", "warn") and not any(e.field == "/severity" for e in errors):
        errors.append(FieldError("/severity", "must be block or warn"))
    if errors:
        raise validation_problem(errors)
    assert isinstance(words, list)
    created = await ctx.store.put_blocklist(principal.tenant_id, name, [w.strip() for w in words], severity)
    assert ctx.content is not None
    await ctx.content.reload(force=True)  # this process applies it at once; others within reload_seconds
    row = await _find(ctx, principal.tenant_id, name)
    return web.Response(
        status=201 if created else 200, body=orjson.dumps(_render(row)), content_type="application/json"
    )


async def delete_blocklist(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "admin")
    name = _list_name(request)
    if not await ctx.store.delete_blocklist(principal.tenant_id, name):
        raise Problem(404, "not-found", "Not Found", f"this tenant has no list {name!r}")
    assert ctx.content is not None
    await ctx.content.reload(force=True)
    return web.Response(status=204)

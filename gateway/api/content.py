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
from gateway.domain.content import TEXT_FIELDS, ContentReport, validate_word_list
from gateway.domain.jobs import FieldError, normalise_phone
from gateway.domain.models import Category, Channel, is_member

LIST_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_LIST_WORDS = 50_000


def report_body(report: ContentReport, base: str = "") -> dict[str, Any]:
    """The report as the API shows it. Each violation names its field as a JSON pointer under
    `base` ("/content/subject"; "/text" for a single text); `fixed` holds each checked field fixed."""
    return {
        "ok": report.ok,
        "encoding": report.encoding,
        "segments": report.segments,
        "violations": [
            {
                "rule": v.rule,
                "severity": v.severity,
                "field": f"{base}/{v.field or 'text'}",
                "start": v.start,
                "end": v.end,
                "match": v.match,
                "message": v.message,
            }
            for v in report.violations
        ],
        "fixed_text": report.fixed_text,
        "fixed": dict(report.fixed) or {"text": report.fixed_text},
    }


def content_problem(report: ContentReport, base: str) -> Problem:
    """A job refused at accept: the violations say what to change, and in which field under `base`."""
    body = report_body(report, base)
    blocking = [v for v in body["violations"] if v["severity"] == "block"]
    return Problem(
        422,
        "content-policy",
        "Content refused by policy",
        "; ".join(v["message"] for v in blocking[:3]),
        errors=[FieldError(v["field"], f"{v['rule']}: {v['message']}") for v in blocking],
        extra={"violations": body["violations"], "fixed_text": body["fixed_text"], "fixed": body["fixed"]},
    )


async def check(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    body = await read_json(request, 65_536)
    if not isinstance(body, dict):
        raise validation_problem([FieldError("/", "must be a JSON object")])
    errors = [
        FieldError(f"/{n}", "is not a known field")
        for n in sorted(set(body) - {"channel", "to", "text", "content", "category", "provider"})
    ]
    channel = body.get("channel")
    if not is_member(channel, Channel):
        errors.append(FieldError("/channel", f"must be one of {', '.join(c.value for c in Channel)}"))
    text, content = body.get("text"), body.get("content")
    hard_max = ctx.settings.content.hard_max_chars
    if content is not None:
        errors.extend(_content_errors(content, channel, hard_max, given_text=text is not None))
    elif not isinstance(text, str) or not text.strip():
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
    assert ctx.content is not None
    tenant_id, category = principal.tenant_id, str(category)
    to = normalise_phone(to) if isinstance(to, str) and to.startswith("+") else to
    if isinstance(content, dict):
        report = ctx.content.check_message(
            channel=str(channel), content=content, tenant_id=tenant_id, to=to, category=category, provider=provider
        )
        assert report is not None  # _content_errors refuses a channel without text fields
        return web.Response(body=orjson.dumps(report_body(report, "/content")), content_type="application/json")
    assert isinstance(text, str)
    report = ctx.content.check(
        channel=str(channel), text=text, tenant_id=tenant_id, to=to, category=category, provider=provider
    )
    return web.Response(body=orjson.dumps(report_body(report)), content_type="application/json")


def _content_errors(content: object, channel: object, hard_max: int, *, given_text: bool) -> list[FieldError]:
    """`content` as a job carries it ({"subject", "text"} for email, {"title", "body"} for push)."""
    if given_text:
        return [FieldError("/content", "give text or content, not both")]
    if not isinstance(content, dict):
        return [FieldError("/content", "must be an object")]
    fields = TEXT_FIELDS.get(str(channel), ()) if is_member(channel, Channel) else None
    if fields == ():
        return [FieldError("/content", f"{channel} messages carry no text to check")]
    errors = []
    for name, value in content.items():
        if fields is not None and name not in fields:
            errors.append(FieldError(f"/content/{name}", f"is not a text field of {channel} ({', '.join(fields)})"))
        elif not isinstance(value, str):
            errors.append(FieldError(f"/content/{name}", "must be a string"))
        elif len(value) > hard_max:
            errors.append(FieldError(f"/content/{name}", f"must be at most {hard_max} characters (got {len(value)})"))
    if not errors and not any(isinstance(v, str) and v.strip() for v in content.values()):
        errors.append(FieldError("/content", "must hold a non-empty text field"))
    return errors


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

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
from gateway.contract.content import LIST_NAME_PATTERN, ContentCheck, TextCheck, judge_blocklist, judge_content_check
from gateway.domain.content import ContentReport
from gateway.domain.jobs import FieldError
from gateway.domain.routing import candidate_providers

LIST_NAME = re.compile(LIST_NAME_PATTERN)


def accept_route(ctx: ApiContext, channel: str) -> str | None:
    """The route whose own rules (China marketing) a job on `channel` must meet: the first such among
    the providers the routing config may send it by; None: the default rules."""
    if ctx.content is None:
        return None
    return ctx.content.route_with_rules(candidate_providers(channel, ctx.providers.by_channel, ctx.routing))


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


def _operator_limits(ctx: ApiContext, judged: ContentCheck) -> list[FieldError]:
    """The operator's hard limit on a text, when set below the one the contract states, and which
    providers exist: this gateway's configuration, not the contract's."""
    errors = []
    if judged.provider is not None and ctx.providers.get(judged.provider) is None:
        errors.append(FieldError("/provider", "is not a configured provider"))
    hard_max = ctx.settings.content.hard_max_chars
    errors += [
        FieldError(field, f"must be at most {hard_max} characters (got {len(value)})")
        for field, value in judged.texts().items()
        if len(value) > hard_max
    ]
    return errors


async def check(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    body = await read_json(request, 65_536)
    judged, errors = judge_content_check(body)
    if judged is None:
        raise validation_problem(errors)
    errors = _operator_limits(ctx, judged)
    if errors:
        raise validation_problem(errors)
    assert ctx.content is not None
    # Without a provider, the rules of the route a job on the channel may go by: those checked at accept.
    route = judged.provider if judged.provider is not None else accept_route(ctx, judged.channel)
    given = {"tenant_id": principal.tenant_id, "to": judged.to, "category": judged.category, "provider": route}
    if isinstance(judged, TextCheck):
        report = ctx.content.check(channel=judged.channel, text=judged.text, **given)
        answer = {**report_body(report), **_route_answer(ctx, route)}
        return web.Response(body=orjson.dumps(answer), content_type="application/json")
    content = {name.removeprefix("/content/"): value for name, value in judged.texts().items()}
    found = ctx.content.check_message(channel=judged.channel, content=content, **given)
    assert found is not None  # every content model's channel has text fields
    answer = {**report_body(found, "/content"), **_route_answer(ctx, route)}
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


def _route_answer(ctx: ApiContext, route: str | None) -> dict[str, Any]:
    """Which route's rules the check applied: its provider, and whether they are China marketing rules."""
    assert ctx.content is not None
    own = route is not None and ctx.content.rules_for(route) is not ctx.content.default_rules
    return {"route": route if own else None, "china_marketing": own}


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
    judged, errors = judge_blocklist(body)
    if judged is None:
        raise validation_problem(errors)
    words = [w.strip() for w in judged.words]
    created = await ctx.store.put_blocklist(principal.tenant_id, name, words, judged.severity)
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

"""The console's template pages: the tenant's templates, one template's versions with a diff between
two of them, and a preview with each channel's content check (docs/templates.md)."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from gateway.api.content import accept_route, report_body
from gateway.api.context import ApiContext, context
from gateway.contract.templates import NAME_PATTERN
from gateway.domain.template_diff import diff_contents
from gateway.domain.template_lint import example_params
from gateway.domain.templates import TemplateContent, content_from_json, judge_params, render
from gateway.template_files import draft_digest
from gateway.ui.console import ConsoleError, page, signed_in, when

MAX_LISTED = 500
DRAFT = "draft"


async def templates(request: web.Request) -> web.Response:
    principal = await signed_in(request, "read")
    archived = request.query.get("archived") == "1"
    store = context(request).store
    rows = await store.list_templates(principal.tenant_id, None, MAX_LISTED, archived)
    listed = [await _summary(context(request), principal.tenant_id, row) for row in rows]
    return page(request, "templates.html", tenant=principal.tenant_id, templates=listed, archived=archived)


async def _summary(ctx: ApiContext, tenant_id: str, row: dict[str, Any]) -> dict[str, Any]:
    draft = orjson.loads(row["draft"])
    state = "unpublished"
    if row["latest_version"]:
        _, latest = await ctx.store.template_version(tenant_id, row["name"], None)
        same = latest is not None and draft_digest(orjson.loads(latest["content"])) == draft_digest(draft)
        state = "published" if same else "draft changed"
    return {
        "name": row["name"],
        "description": draft.get("description", ""),
        "channels": sorted(draft.get("channels", {})),
        "locales": sorted(draft.get("locales", {})),
        "latest_version": row["latest_version"] or None,
        "state": state,
        "archived": bool(row["archived"]),
        "updated_at": when(row["updated_at"]),
    }


async def _row(request: web.Request, tenant_id: str) -> dict[str, Any]:
    name = request.match_info["name"]
    row = await context(request).store.get_template(tenant_id, name) if _valid(name) else None
    if row is None:
        raise ConsoleError(404, "No such template", f"This tenant has no template {name!r}.")
    return row


def _valid(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None


async def template(request: web.Request) -> web.Response:
    """Its versions, newest first, its change history, and the diff of two versions (or the draft):
    by default the latest version against the one before, or the draft against the latest."""
    principal = await signed_in(request, "read")
    row = await _row(request, principal.tenant_id)
    store = context(request).store
    versions = await store.template_versions(row["id"])
    contents = {str(v["version"]): orjson.loads(v["content"]) for v in versions}
    contents[DRAFT] = orjson.loads(row["draft"])
    choices = [DRAFT, *(str(v["version"]) for v in versions)]
    errors: dict[str, str] = {}
    old, new = _pair(request, choices, errors)
    diff = diff_contents(contents[old], contents[new]) if old and new else []
    return page(
        request,
        "template.html",
        tenant=principal.tenant_id,
        t=await _summary(context(request), principal.tenant_id, row),
        versions=[
            {**v, "created_at": when(v["created_at"]), "findings": orjson.loads(v["findings"])} for v in versions
        ],
        changes=[{**c, "at": when(c["at"])} for c in await store.template_changes(row["id"])],
        choices=choices,
        old=old,
        new=new,
        diff=diff,
        errors=errors,
    )


def _pair(request: web.Request, choices: list[str], errors: dict[str, str]) -> tuple[str | None, str | None]:
    """The two contents to compare: ?from=&to= (a version number or `draft`), else the default."""
    published = choices[1:]
    default_new = published[0] if len(published) >= 2 else DRAFT
    default_old = published[1] if len(published) >= 2 else (published[0] if published else None)
    chosen = []
    for key, default in (("from", default_old), ("to", default_new)):
        value = request.query.get(key) or default
        if value is not None and value not in choices:
            errors[key] = f"must be {DRAFT} or a version of this template ({', '.join(published) or 'none yet'})"
            value = default
        chosen.append(value)
    return chosen[0], chosen[1]


async def preview(request: web.Request) -> web.Response:
    """The draft or a version rendered with the params given (a required one left out reads its
    example), each channel checked as a job's content would be at accept."""
    principal = await signed_in(request, "read")
    row = await _row(request, principal.tenant_id)
    ctx = context(request)
    versions = [str(v["version"]) for v in await ctx.store.template_versions(row["id"])]
    chosen = request.query.get("version") or DRAFT
    errors: dict[str, str] = {}
    source = row["draft"]
    if chosen != DRAFT:
        _, version = await ctx.store.template_version(principal.tenant_id, row["name"], _number(chosen))
        if version is None:
            errors["version"] = f"must be {DRAFT} or a version of this template"
            chosen = DRAFT
        else:
            source = version["content"]
    content = content_from_json(orjson.loads(source))
    params_text = request.query.get("params") or orjson.dumps(example_params(content.variables)).decode()
    params = _params(params_text, errors)
    judged, problems = judge_params(content.variables, params)
    errors.update({f"/params/{field}": message for field, message in problems})
    filled = {
        name: example
        for name, example in example_params(content.variables).items()
        if content.variables[name].required and name not in judged
    }
    asked = request.query.get("locale") or ""
    locale = asked if asked in content.locales else None
    channels = [
        _channel(ctx, principal.tenant_id, content, channel, body, locale)
        for channel, body in render(content, {**judged, **filled}, locale).items()
    ]
    return page(
        request,
        "template_preview.html",
        tenant=principal.tenant_id,
        name=row["name"],
        versions=[DRAFT, *versions],
        chosen=chosen,
        params=params_text,
        locale=asked,
        locales=sorted(content.locales),
        locale_used=locale,
        errors=errors,
        filled=sorted(filled),
        channels=channels,
    )


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 10 else None


def _params(text: str, errors: dict[str, str]) -> dict[str, Any]:
    try:
        params = orjson.loads(text)
    except orjson.JSONDecodeError:
        errors["params"] = 'must be a JSON object, e.g. {"name": "张三"}'
        return {}
    if not isinstance(params, dict):
        errors["params"] = 'must be a JSON object, e.g. {"name": "张三"}'
        return {}
    return params


def _channel(
    ctx: ApiContext, tenant_id: str, content: TemplateContent, channel: str, body: dict[str, Any], locale: str | None
) -> dict[str, Any]:
    base = f"/locales/{locale}/{channel}" if locale else f"/channels/{channel}"
    fields = [
        (name, value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())
        for name, value in body.items()
    ]
    shown = {"channel": channel, "fields": fields, "ok": True, "encoding": None, "segments": None, "violations": []}
    if ctx.content is None:
        return shown
    report = ctx.content.check_message(
        channel=channel,
        content=body,
        tenant_id=tenant_id,
        category=content.category,
        provider=accept_route(ctx, channel),
    )
    if report is None:
        return shown
    checked = report_body(report, base)
    shown.update(ok=checked["ok"], encoding=checked["encoding"], segments=checked["segments"])
    shown["violations"] = checked["violations"]
    return shown

"""Message templates over the API: drafts, publish, archive, versions and preview (docs/templates.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from gateway.api.bodies import read_json
from gateway.api.content import accept_route, report_body
from gateway.api.context import ApiContext, context
from gateway.api.problems import Problem, validation_problem
from gateway.api.render import iso
from gateway.api.templated_jobs import forget_template
from gateway.contract.base import judge
from gateway.contract.jobs import LIMITS
from gateway.contract.templates import (
    NAME_PATTERN,
    NewTemplate,
    PreviewRequest,
    TemplateChanges,
    TemplateQuery,
    judge_template,
)
from gateway.domain.content import MAIN_FIELD
from gateway.domain.jobs import FieldError
from gateway.domain.template_lint import Finding, blocking, example_params, lint
from gateway.domain.templates import TemplateContent, content_from_json, judge_params, render, template_problems

MAX_BODY = 1024 * 1024
# The most characters a job's content field takes (gateway/contract/jobs.py): a body rendering over
# them at the variables' max lengths would be refused at every accept.
FIELD_LIMITS = {
    ("sms", "text"): LIMITS.max_text_chars,
    ("voice", "text"): LIMITS.max_text_chars,
    ("push", "title"): LIMITS.max_push_title_chars,
    ("push", "body"): LIMITS.max_push_body_chars,
    ("email", "subject"): LIMITS.max_subject_chars,
    ("email", "text"): LIMITS.max_email_body_chars,
    ("email", "html"): LIMITS.max_email_body_chars,
}
JSON = "application/json"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON, headers=headers)


def _not_found(name: str) -> Problem:
    return Problem(404, "not-found", "Not Found", f"no template {name!r}")


def _archived(name: str) -> Problem:
    return Problem(409, "template-archived", "Template archived", f"the template {name!r} is archived")


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not re.match(NAME_PATTERN, name):
        raise _not_found(name)
    return name


def lint_template(ctx: ApiContext, tenant_id: str, content: TemplateContent) -> list[Finding]:
    """The lint with the content policy in force: each channel checked by the rules of the route it
    may go by (a China marketing route's signature and unsubscribe suffix included)."""
    if ctx.content is None:
        return []
    policy = ctx.content

    def check(channel: str, body: Mapping[str, Any]) -> list[tuple[str | None, Any]]:
        route = accept_route(ctx, channel)
        report = policy.check_message(
            channel=channel, content=body, tenant_id=tenant_id, category=content.category, provider=route
        )
        return [] if report is None else [(route, report)]

    return lint(content, check, FIELD_LIMITS)


def _checked(draft: dict[str, Any]) -> TemplateContent:
    """The draft as the domain holds it, refused with every body's problem named."""
    content = content_from_json(draft)
    problems = template_problems(content)
    if problems:
        raise validation_problem([FieldError(field, message) for field, message in problems])
    return content


def _render(row: Mapping[str, Any], findings: list[Finding]) -> dict[str, Any]:
    draft = orjson.loads(row["draft"])
    return {
        "name": row["name"],
        "description": draft.get("description", ""),
        "category": draft.get("category", "marketing"),
        "variables": draft.get("variables", {}),
        "channels": draft.get("channels", {}),
        "locales": draft.get("locales", {}),
        "providers": draft.get("providers", {}),
        "archived": bool(row["archived"]),
        "latest_version": row["latest_version"] or None,
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "findings": [f.as_json() for f in findings],
    }


async def _template(ctx: ApiContext, tenant_id: str, name: str) -> dict[str, Any]:
    row = await ctx.store.get_template(tenant_id, name)
    if row is None:
        raise _not_found(name)
    return row


async def create_template(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    judged, errors = judge_template(NewTemplate, await read_json(request, MAX_BODY))
    if judged is None:
        raise validation_problem(errors)
    assert isinstance(judged, NewTemplate)
    draft = judged.draft_json()
    content = _checked(draft)
    row = await ctx.store.create_template(
        principal.tenant_id, judged.name, orjson.dumps(draft).decode(), principal.key_id
    )
    if row is None:
        raise Problem(
            409,
            "template-exists",
            "Template exists",
            f"this tenant has a template named {judged.name!r} already (archived ones keep their name)",
            errors=[FieldError("/name", "is taken")],
        )
    answer = _render(row, lint_template(ctx, principal.tenant_id, content))
    return _json(answer, 201, {"Location": f"/v1/templates/{judged.name}"})


async def update_template(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    name = _name(request)
    judged, errors = judge_template(TemplateChanges, await read_json(request, MAX_BODY))
    if judged is None:
        raise validation_problem(errors)
    row = await _template(ctx, principal.tenant_id, name)
    if row["archived"]:
        raise _archived(name)
    draft = judged.draft_json(orjson.loads(row["draft"]))
    content = _checked(draft)
    fields = sorted(k for k, v in judged.__dict__.items() if v is not None)
    updated = await ctx.store.update_template_draft(
        principal.tenant_id, name, orjson.dumps(draft).decode(), fields, principal.key_id
    )
    if updated is None:
        raise _not_found(name)
    return _json(_render(updated, lint_template(ctx, principal.tenant_id, content)))


async def get_template(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    row = await _template(ctx, principal.tenant_id, _name(request))
    content = content_from_json(orjson.loads(row["draft"]))
    return _json(_render(row, lint_template(ctx, principal.tenant_id, content)))


async def list_templates(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    query, errors = TemplateQuery.judge(request.query)
    if query is None:
        raise Problem(400, "invalid-query", "Invalid query", "some query parameters are not valid", errors=errors)
    after = int(query.cursor) if query.cursor else None
    rows = await ctx.store.list_templates(principal.tenant_id, after, query.limit + 1, query.archived)
    page = rows[: query.limit]
    next_cursor = str(page[-1]["id"]) if len(rows) > query.limit else None
    return _json({"data": [_render(r, []) for r in page], "next_cursor": next_cursor})


async def publish_template(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    name = _name(request)
    row = await _template(ctx, principal.tenant_id, name)
    if row["archived"]:
        raise _archived(name)
    content = content_from_json(orjson.loads(row["draft"]))
    findings = lint_template(ctx, principal.tenant_id, content)
    refused = blocking(findings)
    if refused:
        raise Problem(
            422,
            "template-lint",
            "Template refused by its lint",
            "; ".join(f"{f.field}: {f.message}" for f in refused[:3]),
            errors=[FieldError(f.field, f"{f.rule}: {f.message}") for f in refused],
            extra={"findings": [f.as_json() for f in findings]},
        )
    warnings = orjson.dumps([f.as_json() for f in findings]).decode()
    version = await ctx.store.publish_template(principal.tenant_id, name, row["draft"], warnings, principal.key_id)
    forget_template(ctx, principal.tenant_id, name)
    if version is None:
        raise _archived(name)
    location = f"/v1/templates/{name}/versions/{version}"
    return _json({"version": version, "findings": [f.as_json() for f in findings]}, 201, {"Location": location})


async def archive_template(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    name = _name(request)
    row = await ctx.store.archive_template(principal.tenant_id, name, principal.key_id)
    forget_template(ctx, principal.tenant_id, name)
    if row is None:
        raise _not_found(name)
    return _json(_render(row, []))


def _version(name: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "version": row["version"],
        "created_at": iso(row["created_at"]),
        "created_by": row["created_by"],
        "findings": orjson.loads(row["findings"]),
        "content": orjson.loads(row["content"]),
    }


async def list_versions(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    name = _name(request)
    row = await _template(ctx, principal.tenant_id, name)
    return _json({"data": [_version(name, v) for v in await ctx.store.template_versions(row["id"])]})


async def get_version(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    name = _name(request)
    number = request.match_info["version"]
    wanted = int(number) if number.isdigit() and len(number) <= 10 else 0
    template, version = await ctx.store.template_version(principal.tenant_id, name, wanted) if wanted else (None, None)
    if template is None or version is None:
        raise Problem(404, "not-found", "Not Found", f"no version {number!r} of a template {name!r}")
    return _json(_version(name, version))


async def preview_template(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    name = _name(request)
    body = await read_json(request, MAX_BODY) if request.body_exists else {}
    judged, errors = judge(PreviewRequest, body)
    if judged is None:
        raise validation_problem(errors)
    row = await _template(ctx, principal.tenant_id, name)
    source = row["draft"]
    if judged.version is not None:
        _, version = await ctx.store.template_version(principal.tenant_id, name, judged.version)
        if version is None:
            raise Problem(404, "not-found", "Not Found", f"the template {name!r} has no version {judged.version}")
        source = version["content"]
    content = content_from_json(orjson.loads(source))
    params, problems = judge_params(content.variables, judged.params)
    # A preview shows the copy whatever is missing: a required param missing or wrong reads its example,
    # and what a job would be refused for is listed.
    filled = {
        name: example
        for name, example in example_params(content.variables).items()
        if content.variables[name].required and name not in params
    }
    locale = judged.locale if judged.locale in content.locales else None
    channels = {
        channel: _channel_preview(ctx, principal.tenant_id, content, channel, rendered, locale)
        for channel, rendered in render(content, {**params, **filled}, locale).items()
    }
    return _json(
        {
            "version": judged.version,
            "locale": locale,
            "params": [{"field": f"/params/{field}", "message": message} for field, message in problems],
            "filled": sorted(filled),
            "channels": channels,
        }
    )


def _channel_preview(
    ctx: ApiContext,
    tenant_id: str,
    content: TemplateContent,
    channel: str,
    rendered: dict[str, Any],
    locale: str | None,
) -> dict[str, Any]:
    main = MAIN_FIELD.get(channel)
    base = f"/locales/{locale}/{channel}" if locale else f"/channels/{channel}"
    report = None
    if ctx.content is not None:
        report = ctx.content.check_message(
            channel=channel,
            content=rendered,
            tenant_id=tenant_id,
            category=content.category,
            provider=accept_route(ctx, channel),
        )
    text = rendered.get(main, "") if main else orjson.dumps(rendered.get("payload")).decode()
    if report is None:
        return {"text": text, "content": rendered, "ok": True, "encoding": "UTF-8", "segments": 1, "violations": []}
    checked = report_body(report, base)
    return {
        "text": text,
        "content": rendered,
        "ok": checked["ok"],
        "encoding": checked["encoding"],
        "segments": checked["segments"],
        "violations": checked["violations"],
    }

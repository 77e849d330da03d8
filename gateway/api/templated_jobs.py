"""A send job given as a template: rendered at accept from the version it names (or the latest),
into the content it is stored with (gateway/domain/template_jobs.py). Every refusal names its field
(`/template`, `/version`, `/params/<name>`, under `/messages/<i>` in a batch) and stores nothing."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson

from gateway.api.context import ApiContext
from gateway.api.problems import Problem, validation_problem
from gateway.contract.base import judge
from gateway.contract.jobs import EmailContent, PushContent, SmsContent, VoiceContent, WebhookContent
from gateway.domain.jobs import FieldError
from gateway.domain.models import SendJob, TemplateRef
from gateway.domain.routing import candidate_providers
from gateway.domain.template_jobs import TemplatePin, job_content
from gateway.domain.templates import TemplateContent, content_from_json, judge_params

# What a rendered body must be to be a job's content: the same models as given content.
CONTENT_MODELS: dict[str, Any] = {
    "sms": SmsContent,
    "voice": VoiceContent,
    "push": PushContent,
    "email": EmailContent,
    "webhook": WebhookContent,
}
_MAX_CACHED = 2048
# How long a process reuses a template's row for jobs: an archive (or a publish, for jobs naming no
# version) made elsewhere takes effect within this; a job naming a version newer than the row
# knows reads the row again. Read for every job, the row cost more than half of templated accept.
TEMPLATE_ROW_SECONDS = 1.0


def _refused(field: str, message: str) -> Problem:
    return validation_problem([FieldError(field, message)])


async def _version(
    ctx: ApiContext, tenant_id: str, ref: TemplateRef, prefix: str, rows: dict[str, Any] | None
) -> tuple[int, TemplateContent]:
    """The version a job names (or the latest) with its content; raises the refusal. `rows`: the
    template rows a batch read already (a thousand items naming one template read it once)."""
    row = rows.get(ref.name) if rows is not None else None
    if row is None:
        row = await _row(ctx, tenant_id, ref)
        if rows is not None and row is not None:
            rows[ref.name] = row
    if row is None:
        raise _refused(f"{prefix}/template", f"no template {ref.name!r}")
    if row["archived"]:
        raise _refused(f"{prefix}/template", f"the template {ref.name!r} is archived")
    latest = int(row["latest_version"])
    number = ref.version if ref.version is not None else latest
    if number < 1:
        raise _refused(f"{prefix}/template", f"the template {ref.name!r} has no published version")
    if number > latest:
        raise _refused(f"{prefix}/version", f"the template {ref.name!r} has no version {number} (latest: {latest})")
    cache = ctx.template_versions
    content = cache.get((row["id"], number))
    if content is None:
        _, version = await ctx.store.template_version(tenant_id, ref.name, number)
        if version is None:  # published meanwhile by another process, not yet visible: as if absent
            raise _refused(f"{prefix}/version", f"the template {ref.name!r} has no version {number}")
        content = content_from_json(orjson.loads(version["content"]))
        if len(cache) >= _MAX_CACHED:
            cache.clear()
        cache[(row["id"], number)] = content
    return number, content


async def _row(ctx: ApiContext, tenant_id: str, ref: TemplateRef) -> dict[str, Any] | None:
    """The template's row, reused for TEMPLATE_ROW_SECONDS unless the job names a version it lacks.
    An absent template is not remembered: one created a moment later is found at once."""
    key, now = (tenant_id, ref.name), time.monotonic()
    cached = ctx.template_rows.get(key)
    if cached is not None and now - cached[0] < TEMPLATE_ROW_SECONDS:
        known = cached[1]
        if ref.version is None or ref.version <= int(known["latest_version"]):
            return known
    row = await ctx.store.get_template(tenant_id, ref.name)
    if row is None:
        ctx.template_rows.pop(key, None)
        return None
    if len(ctx.template_rows) >= _MAX_CACHED:
        ctx.template_rows.clear()
    ctx.template_rows[key] = (now, row)
    return row


def forget_template(ctx: ApiContext, tenant_id: str, name: str) -> None:
    """Published or archived in this process: its next job reads the row again, so this process's
    own changes take effect at once (other processes' within TEMPLATE_ROW_SECONDS)."""
    ctx.template_rows.pop((tenant_id, name), None)


async def rendered_job(
    ctx: ApiContext, tenant_id: str, job: SendJob, prefix: str = "", rows: dict[str, Any] | None = None
) -> tuple[SendJob, Problem | None]:
    """The job with its template rendered into its content; the refusal when it cannot be."""
    ref = job.template
    if ref is None:
        return job, None
    try:
        number, template = await _version(ctx, tenant_id, ref, prefix, rows)
    except Problem as refusal:
        return job, refusal
    judged, problems = judge_params(template.variables, ref.params)
    if problems:
        return job, validation_problem([FieldError(f"{prefix}/params/{name}", message) for name, message in problems])
    locale = ref.locale if ref.locale in template.locales else None
    channels = [job.channel.value, *(c.value for c in job.fallback)]
    routes = {c: candidate_providers(c, ctx.providers.by_channel, ctx.routing) for c in channels}
    stored = job_content(template, TemplatePin(ref.name, number, locale, judged), channels, routes)
    if stored is None:
        return job, _refused(f"{prefix}/template", f"{ref.name} version {number} has no {channels[0]} body")
    errors = _content_errors(channels[0], stored, prefix)
    if errors:
        return job, validation_problem(errors)
    return dataclasses.replace(job, content={**job.content, **stored}), None


def _content_errors(channel: str, content: dict[str, Any], prefix: str) -> list[FieldError]:
    """A rendering a job's content could not be (a push title over its limit, an empty text)."""
    model = CONTENT_MODELS[channel]
    _, errors = judge(model, {name: content[name] for name in model.model_fields if name in content}, "/content")
    return [FieldError(f"{prefix}/template", f"renders {e.field} that {e.message}") for e in errors]

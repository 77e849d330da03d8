"""`gateway templates push|pull|list|preview`: templates kept as files in a repository
(gateway/template_files.py), written to the store as the other operator commands do, with the
content policy and routing of the gateway's own settings (the lint a `POST /v1/templates` runs)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.content_service import ContentService
from gateway.domain.content import MAIN_FIELD
from gateway.domain.routing import RoutingConfig, candidate_providers
from gateway.domain.template_lint import Finding, blocking, lint
from gateway.domain.templates import TemplateContent, content_from_json, judge_params, render
from gateway.settings import Settings
from gateway.store.port import Store
from gateway.template_files import (
    TemplateDirError,
    TemplateFile,
    draft_digest,
    read_template_dir,
    template_toml,
    write_template_files,
)

ACTOR = "operator:cli"


@dataclass
class Desk:
    """What a template command needs: the store, and the content policy with each channel's route."""

    store: Store
    content: ContentService
    by_channel: Mapping[str, tuple[str, ...]]
    routing: RoutingConfig
    tenant: str
    out: list[str] = field(default_factory=list)

    def route(self, channel: str) -> str | None:
        return self.content.route_with_rules(candidate_providers(channel, self.by_channel, self.routing))

    def check(self, channel: str, body: Mapping[str, Any], category: str) -> Any:
        return self.content.check_message(
            channel=channel, content=body, tenant_id=self.tenant, category=category, provider=self.route(channel)
        )

    def lint(self, content: TemplateContent) -> list[Finding]:
        from gateway.api.templates import FIELD_LIMITS

        def check(channel: str, body: Mapping[str, Any]) -> list[tuple[str | None, Any]]:
            report = self.check(channel, body, content.category)
            return [] if report is None else [(self.route(channel), report)]

        return lint(content, check, FIELD_LIMITS)


class Refused(Exception):
    """The command stops, having written nothing: each line names a file or template and a field."""


async def push(desk: Desk, directory: Path, publish: bool) -> list[str]:
    try:
        files = read_template_dir(directory)
    except TemplateDirError as exc:
        raise Refused(*(str(e) for e in exc.errors)) from None
    plans = [await _plan(desk, f, publish) for f in files]
    refusals = [line for plan in plans for line in plan.refusals]
    if refusals:
        raise Refused(*refusals)
    return [await _apply(desk, plan) for plan in plans]


@dataclass
class _Plan:
    file: TemplateFile
    row: dict[str, Any] | None
    update: bool
    publish: bool
    refusals: list[str]


async def _plan(desk: Desk, file: TemplateFile, publish: bool) -> _Plan:
    """What pushing `file` would do, and why it may not, judged before anything is written."""
    row = await desk.store.get_template(desk.tenant, file.name)
    if row is not None and row["archived"]:
        return _Plan(file, row, False, False, [f"{file.path}: the template {file.name!r} is archived"])
    update = row is not None and draft_digest(orjson.loads(row["draft"])) != file.digest
    published_digest = None
    if row is not None and row["latest_version"]:
        _, version = await desk.store.template_version(desk.tenant, file.name, None)
        published_digest = draft_digest(orjson.loads(version["content"])) if version else None
    wants_publish = publish and published_digest != file.digest
    refusals = []
    if wants_publish:
        refused = blocking(desk.lint(content_from_json(file.draft)))
        refusals = [f"{file.path}: {f.field}: {f.rule}: {f.message} (blocks publishing)" for f in refused]
    return _Plan(file, row, update, wants_publish, refusals)


async def _apply(desk: Desk, plan: _Plan) -> str:
    name, draft = plan.file.name, orjson.dumps(plan.file.draft).decode()
    done = []
    if plan.row is None:
        await desk.store.create_template(desk.tenant, name, draft, ACTOR)
        done.append("created the draft")
    elif plan.update:
        fields = sorted(k for k in set(plan.file.draft) | set(orjson.loads(plan.row["draft"])))
        await desk.store.update_template_draft(desk.tenant, name, draft, fields, ACTOR)
        done.append("updated the draft")
    if plan.publish:
        findings = orjson.dumps([f.as_json() for f in desk.lint(content_from_json(plan.file.draft))]).decode()
        version = await desk.store.publish_template(desk.tenant, name, draft, findings, ACTOR)
        done.append(f"published version {version}")
    return f"{name}: {', '.join(done) if done else 'unchanged'}"


async def pull(desk: Desk, directory: Path) -> list[str]:
    rows = await _all_templates(desk)
    texts, refusals = {}, []
    for row in rows:
        try:
            texts[row["name"]] = template_toml(orjson.loads(row["draft"]))
        except ValueError as exc:
            refusals.append(f"{row['name']}: {exc}")
    if refusals:
        raise Refused(*refusals)
    return write_template_files(directory, texts)


async def _all_templates(desk: Desk) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = await desk.store.list_templates(desk.tenant, after, 200, False)
        rows += page
        if len(page) < 200:
            return rows
        after = page[-1]["id"]


async def listing(desk: Desk) -> list[str]:
    rows = await _all_templates(desk)
    lines = [f"{'NAME':<32} {'VERSION':<8} {'DRAFT':<12} {'CHANNELS':<28} UPDATED"]
    for row in rows:
        draft = orjson.loads(row["draft"])
        version = str(row["latest_version"] or "-")
        published = await desk.store.template_version(desk.tenant, row["name"], None)
        state = "published"
        if not row["latest_version"]:
            state = "unpublished"
        elif published[1] is None or draft_digest(orjson.loads(published[1]["content"])) != draft_digest(draft):
            state = "changed"
        channels = ",".join(sorted(draft.get("channels", {})))
        lines.append(f"{row['name']:<32} {version:<8} {state:<12} {channels:<28} {_when(row['updated_at'])}")
    return lines


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


async def preview(desk: Desk, name: str, params: dict[str, Any], locale: str | None) -> list[str]:
    row = await desk.store.get_template(desk.tenant, name)
    if row is None:
        raise Refused(f"{name}: no such template")
    content = content_from_json(orjson.loads(row["draft"]))
    judged, problems = judge_params(content.variables, params)
    if problems:
        raise Refused(*(f"--params: /params/{field}: {message}" for field, message in problems))
    locale = locale if locale in content.locales else None
    lines = []
    for channel, body in render(content, judged, locale).items():
        report = desk.check(channel, body, content.category)
        main = MAIN_FIELD.get(channel)
        text = body.get(main, "") if main else orjson.dumps(body.get("payload")).decode()
        summary = "ok" if report is None or report.ok else "blocked"
        if report is not None:
            summary += f", {report.encoding}, {report.segments} segment(s)"
        lines.append(f"[{channel}] {summary}")
        lines += [f"  {key}: {value}" for key, value in body.items() if isinstance(value, str)]
        if not any(isinstance(v, str) for v in body.values()):
            lines.append(f"  {text}")
        for v in report.violations if report is not None else ():
            lines.append(f"  {v.severity} {v.rule} ({v.field or 'text'}): {v.message}")
    return lines


async def open_desk(settings: Settings, tenant: str) -> Desk:
    from gateway.domain.routing import parse_routing
    from gateway.provider_registry import build_providers
    from gateway.store.store import SqlStore

    store = SqlStore.open(
        settings.database_url,
        synchronous=settings.sqlite_synchronous,
        transaction_pooling=settings.db_transaction_pooling,
    )
    await store.migrate()
    content = ContentService(settings.content, store)
    await content.start()
    providers = build_providers(settings, secrets={"sandbox": ""}, dispatching=False)
    return Desk(store, content, providers.by_channel, parse_routing(settings.routing), tenant)


async def close_desk(desk: Desk) -> None:
    await desk.content.close()
    await desk.store.close()


def _quiet_logs() -> None:
    """What the command did is its output; the gateway's own log lines go to stderr, warnings only."""
    import logging

    import structlog

    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    _quiet_logs()
    desk = await open_desk(settings, args.tenant)
    try:
        if args.templates_command == "push":
            lines = await push(desk, Path(args.directory), args.publish)
        elif args.templates_command == "pull":
            lines = await pull(desk, Path(args.directory))
        elif args.templates_command == "list":
            lines = await listing(desk)
        else:
            lines = await preview(desk, args.name, _params(args.params), args.locale)
    except Refused as exc:
        for line in exc.args:
            print(f"gateway templates {args.templates_command}: {line}", file=sys.stderr)
        if args.templates_command in ("push", "pull"):
            print("nothing was written", file=sys.stderr)
        return 2
    finally:
        await close_desk(desk)
    print("\n".join(lines))
    return 0


def _params(text: str) -> dict[str, Any]:
    try:
        params = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Refused(f"--params: is not JSON: {exc}") from None
    if not isinstance(params, dict):
        raise Refused("--params: must be a JSON object")
    return params

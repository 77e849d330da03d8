"""The `gateway` command: serve, migrate, keys, numbers, templates, purge, check, report, export, config-example."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import unicodedata
from collections.abc import Sequence
from typing import Any

from gateway.settings import Settings, SettingsError, load_settings


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(coro: object) -> object:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.domain.content import BlocklistError
    from gateway.logging import configure_logging
    from gateway.process_layout import parse_count, plan_layout
    from gateway.store.migrations import SchemaError

    settings = _settings_or_exit()
    configure_logging(settings.log_level)
    try:
        processes, workers = parse_count(args.processes or "auto"), parse_count(args.workers or "auto")
    except ValueError as exc:
        print(f"gateway serve: --processes/--workers: {exc}", file=sys.stderr)
        return 2
    if args.role is not None and (args.processes or args.workers):
        print("gateway serve: --role runs one process; --processes and --workers size it without", file=sys.stderr)
        return 2
    layout = plan_layout(_cores(), processes, workers)
    try:
        if args.role is not None or layout.single:
            _run(_serve_one(settings, args))
        else:
            from gateway.supervisor import Supervisor

            code = _run(Supervisor(settings, layout).run())
            return code if isinstance(code, int) else 1
    except (SchemaError, BlocklistError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    return 0


def _cores() -> int:
    """The cores this process may run on (a container's CPU set), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


async def _serve_one(settings: Settings, args: argparse.Namespace) -> None:
    from gateway.app import serve
    from gateway.state.shared import SharedState

    state = SharedState(args.state_socket) if args.state_socket else None
    await serve(settings, args.role or "all", state=state, reuse_port=args.reuse_port, parent=args.supervisor_pid)


def cmd_migrate(_args: argparse.Namespace) -> int:
    from gateway.store.migrations import SchemaError
    from gateway.store.store import SqlStore

    settings = _settings_or_exit()

    async def migrate() -> int:
        store = SqlStore.open(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            transaction_pooling=settings.db_transaction_pooling,
        )
        try:
            return await store.migrate()
        finally:
            await store.close()

    try:
        print(f"schema version {_run(migrate())}")
    except SchemaError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from gateway.store.store import SqlStore

    settings = _settings_or_exit()
    days = settings.retention.content_days if args.older_than is None else args.older_than / 86400
    if args.older_than is None and days <= 0:
        print(
            "gateway: retention.content_days is 0 (keep for ever); pass --older-than to purge anyway", file=sys.stderr
        )
        return 2

    async def purge() -> int:
        store = SqlStore.open(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            transaction_pooling=settings.db_transaction_pooling,
        )
        try:
            await store.migrate()
            return await store.purge_content(days)
        finally:
            await store.close()

    purged = _run(purge())
    print(f"purged the content of {purged} message(s) finished and created more than {days:g} day(s) ago")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from gateway.api.auth import SCOPES, key_row, new_key
    from gateway.store.store import SqlStore

    settings = _settings_or_exit()
    scopes = tuple(s for s in args.scopes.split(",") if s) if getattr(args, "scopes", None) else SCOPES
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        print(f"gateway: unknown scope(s) {', '.join(bad)}; known: {', '.join(SCOPES)}", file=sys.stderr)
        return 2

    async def run() -> int:
        store = SqlStore.open(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            transaction_pooling=settings.db_transaction_pooling,
        )
        try:
            await store.migrate()
            if args.keys_command == "create":
                key, key_id = new_key()
                expires = time.time() + args.expires_days * 86400 if args.expires_days else None
                await store.add_api_key(key_row(key, key_id, args.tenant, args.name, scopes, expires))
                print(key)
                print(f"key id {key_id}, tenant {args.tenant}, scopes {','.join(scopes)} (shown once)", file=sys.stderr)
            elif args.keys_command == "list":
                rows = await store.list_api_keys(args.tenant)
                print(f"{'ID':<14} {'TENANT':<16} {'NAME':<20} {'SCOPES':<26} STATE")
                for r in rows:
                    expired = r["expires_at"] and r["expires_at"] < time.time()
                    state = "revoked" if r["revoked_at"] else "expired" if expired else "active"  # not a status
                    print(f"{r['id']:<14} {r['tenant_id']:<16} {r['name'][:20]:<20} {r['scopes']:<26} {state}")
            elif args.keys_command == "revoke":
                if not await store.revoke_api_key(args.key_id):
                    print(f"gateway: no active key {args.key_id}", file=sys.stderr)
                    return 1
                print(f"revoked {args.key_id}")
            return 0
        finally:
            await store.close()

    result = _run(run())
    return int(result) if isinstance(result, int) else 1


def cmd_check(args: argparse.Namespace) -> int:
    """Preflight texts against the files' word lists and the route rules, as the gateway would."""
    import orjson

    from gateway.content_service import ContentService
    from gateway.domain.content import WordLists, load_blocklist_dir

    settings = _settings_or_exit()
    try:
        texts = _texts_to_check(args)
        directory = args.lists or settings.content.blocklist_path
        lists = load_blocklist_dir(directory) if directory else {}
    except OSError as exc:
        print(f"gateway check: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a BlocklistError, or no text given
        print(f"gateway check: {exc}", file=sys.stderr)
        return 2
    service = ContentService(settings.content, store=None)
    service.words = WordLists.build(lists)
    blocked = 0
    reports = []
    for number, text in enumerate(texts, 1):
        report = service.check(
            channel=args.channel, text=text, tenant_id="", to=args.to, category=args.category, provider=args.provider
        )
        blocked += not report.ok
        reports.append((number, text, report))
    if args.json:
        from gateway.api.content import report_body

        for number, _, report in reports:
            print(orjson.dumps({"line": number, **report_body(report)}).decode())
    else:
        print(f"{'LINE':>4}  {'RULE':<20} {'SEVERITY':<8} {'SPAN':<9} {'MATCH':<24} MESSAGE")
        for number, _, report in reports:
            if not report.violations:
                print(
                    f"{number:>4}  {'ok':<20} {'':<8} {'':<9} {'':<24} {report.encoding}, {report.segments} segment(s)"
                )
            for v in report.violations:
                span = f"{v.start}-{v.end}"
                print(f"{number:>4}  {v.rule:<20} {v.severity:<8} {span:<9} {_cell(v.match, 24)} {v.message}")
        print(f"{len(texts)} text(s), {blocked} blocked")
    return 1 if blocked else 0


def _display_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _cell(text: str, width: int) -> str:
    """text cut and padded to `width` terminal columns: CJK characters take two. Control and
    format characters (new lines, bidi controls) are shown escaped so they cannot break the table."""
    shown = "".join(
        ascii(char)[1:-1] if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") else char for char in text
    )
    cell, used = "", 0
    for char in shown:
        if used + _display_width(char) > width:
            break
        cell += char
        used += _display_width(char)
    return cell + " " * (width - used)


def _texts_to_check(args: argparse.Namespace) -> list[str]:
    if args.file:
        with open(args.file, encoding="utf-8") as lines:
            return [line.rstrip("\n") for line in lines if line.strip()]
    if args.text:
        return [args.text]
    raise ValueError("give a TEXT or --file FILE")


def _duration(text: str) -> float:
    """'90s', '15m', '1h', '2d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].replace(".", "", 1).isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 1h or 2d")
    return float(text[:-1]) * units[text[-1]]


def cmd_report(args: argparse.Namespace) -> int:
    import orjson

    from gateway.api.reports import render_report
    from gateway.domain.failures import FAILURE_STATUSES, REPORT_DIMENSIONS
    from gateway.store.store import SqlStore

    settings = _settings_or_exit()
    group_by = tuple(g for g in args.group_by.split(",") if g)
    unknown = [g for g in group_by if g not in REPORT_DIMENSIONS]
    if unknown:
        print(
            f"gateway: --group-by {','.join(unknown)}: choose from {', '.join(REPORT_DIMENSIONS)}",
            file=sys.stderr,
        )
        return 2
    until = time.time()
    since = until - args.since

    async def run() -> list[dict[str, object]]:
        store = SqlStore.open(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            transaction_pooling=settings.db_transaction_pooling,
        )
        try:
            return await store.failure_report(args.tenant, since, until, group_by, FAILURE_STATUSES)
        finally:
            await store.close()

    groups = _run(run())
    assert isinstance(groups, list)
    report = render_report(groups, group_by, since, until)
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"failures for tenant {args.tenant} from {report['since']} to {report['until']}: {report['total']}")
    if not report["groups"]:
        return 0
    headers = [*group_by, "count", "last_seen", "retry?", "sample"]
    table = [
        [str(g.get(name) or "-") for name in group_by]
        + [str(g["count"]), g["last_seen"][11:19], "yes" if g.get("retry_helps") else "no", g["sample_ids"][0]]
        for g in report["groups"]
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if "reason" in group_by:
        print()
        for g in report["groups"]:
            print(f"{g['reason']}: {g['action']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from gateway.api.audit import csv_line, iterate_events
    from gateway.contract.events import CSV_COLUMNS
    from gateway.store.store import SqlStore

    settings = _settings_or_exit()
    until = time.time() + 1
    since = until - 1 - args.since

    async def run() -> int:
        store = SqlStore.open(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            transaction_pooling=settings.db_transaction_pooling,
        )
        count = 0
        try:
            if args.format == "csv":
                sys.stdout.write(",".join(CSV_COLUMNS) + "\r\n")
            async for record in iterate_events(store, args.tenant, since, until, (), None):
                if args.format == "csv":
                    sys.stdout.write(csv_line(record))
                else:
                    sys.stdout.write(orjson.dumps(record).decode() + "\n")
                count += 1
        finally:
            await store.close()
        print(f"{count} event(s)", file=sys.stderr)
        return 0

    import orjson

    result = _run(run())
    return int(result) if isinstance(result, int) else 1


def cmd_config_example(_args: argparse.Namespace) -> int:
    from gateway.config_example import render

    sys.stdout.write(render())
    return 0


def cmd_numbers(args: argparse.Namespace) -> int:
    import logging

    import orjson
    import structlog

    from gateway.api.numbers import render_numbers
    from gateway.number_pool import NumberPool
    from gateway.state.base import open_state
    from gateway.store.store import SqlStore

    settings = _settings_or_exit()
    action = getattr(args, "action", None)
    # The table (or the action's one line) is the output; the state change is logged as JSON, on stderr.
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )

    async def run() -> list[dict[str, object]] | str:
        store = SqlStore.open(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            transaction_pooling=settings.db_transaction_pooling,
        )
        state = open_state(settings.redis_url)
        try:
            await store.migrate()
            pool = NumberPool(store, state, settings.numbers)
            if action is not None:
                reason = args.reason or f"{action} on the command line"
                row, changed = await pool.operate(args.number_id, action, reason, "operator:cli")
                if row is None:
                    return f"gateway: no number {args.number_id!r}"
                return f"{row['id']} {row['sender']}: {row['state']}" + ("" if changed else " (unchanged)")
            rows = await store.number_rows(args.pool, args.state)
            return await render_numbers(pool, rows)
        finally:
            await store.close()
            await state.close()

    numbers = _run(run())
    if isinstance(numbers, str):
        failed = numbers.startswith("gateway:")
        print(numbers, file=sys.stderr if failed else sys.stdout)
        return 1 if failed else 0
    assert isinstance(numbers, list)
    if args.json:
        print(orjson.dumps(numbers, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not numbers:
        print("no sender numbers (declare pools under [numbers.pools.<name>] or POST /v1/numbers)")
        return 0
    # The health counts are named by their signal, not by a message status.
    headers = ["id", "pool", "sender", "state", "since"]
    headers += ["sent", "deliv", "failed", "filtered", "stop", "fail%", "cap"]  # not a status
    table = []
    for n in numbers:
        health = n["health"]
        cap = n["daily_cap_now"]
        table.append(
            [
                n["id"],
                n["pool"],
                n["sender"],
                n["state"],
                n["state_since"][:19].replace("T", " "),
                str(health["sent"]),
                str(health["delivered"]),
                str(health["failed"]),
                str(health["filtered"]),
                str(health["opt_out"]),
                f"{100 * health['failure_rate']:.1f}",
                "-" if cap is None else str(cap),
                n["reason"] or "-",
            ]
        )
    headers.append("reason")
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if settings.redis_url is None:
        print("(health counts are per process without redis_url; the table shows this process's, i.e. none)")
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from gateway.template_commands import run

    settings = _settings_or_exit()
    result = _run(run(settings, args))
    return int(result) if isinstance(result, int) else 1


def _add_templates(sub: Any) -> None:
    templates = sub.add_parser("templates", help="message templates kept as files: push, pull, list, preview")
    templates.add_argument("--tenant", default="default")
    templates.set_defaults(func=cmd_templates)
    steps = templates.add_subparsers(dest="templates_command", required=True)
    push_step = steps.add_parser("push", help="create or update each DIR/<name>.toml's draft (unchanged: untouched)")
    push_step.add_argument("directory")
    push_step.add_argument(
        "--publish", action="store_true", help="also publish each file that differs from its latest version"
    )
    pull_step = steps.add_parser("pull", help="write each template's draft to DIR/<name>.toml")
    pull_step.add_argument("directory")
    steps.add_parser("list", help="templates, their latest version and whether the draft differs from it")
    preview_step = steps.add_parser("preview", help="render a draft with params, each channel checked")
    preview_step.add_argument("name")
    preview_step.add_argument("--params", default="{}", help="a JSON object")
    preview_step.add_argument("--locale", default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="delivery-gateway: deliver campaign send jobs.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway: API and worker processes on every core by default")
    serve.add_argument(
        "--role",
        choices=["api", "worker", "all"],
        default=None,
        help="run this one process only (for deployments that place processes themselves)",
    )
    serve.add_argument(
        "--processes", default=None, help="API processes sharing the port: auto (one per core) or N (default auto)"
    )
    serve.add_argument(
        "--workers", default=None, help="worker processes: auto (one per 4 cores, at least 1) or N (default auto)"
    )
    # Set by the supervisor on the processes it starts.
    serve.add_argument("--supervisor-pid", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--state-socket", default=None, help=argparse.SUPPRESS)
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)
    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(func=cmd_migrate)
    purge = sub.add_parser(
        "purge", help="drop the content of finished messages past retention.content_days (metadata stays)"
    )
    purge.add_argument("--older-than", type=_duration, default=None, help="override the retention period: 30d, 12h")
    purge.set_defaults(func=cmd_purge)
    check = sub.add_parser("check", help="preflight SMS text(s) against the content policy; exit 1 if any is blocked")
    check.add_argument("text", nargs="?", help="the text to check")
    check.add_argument("--file", help="a file of texts, one per line")
    check.add_argument("--channel", default="sms", choices=["sms", "voice", "push", "email", "webhook"])
    check.add_argument("--to", help="recipient number in E.164 (selects the carrier's word list)")
    check.add_argument("--category", default="marketing", choices=["marketing", "transactional"])
    check.add_argument("--provider", help="apply this provider's route rules (e.g. China marketing)")
    check.add_argument("--lists", help="blocklist directory (default: content.blocklist_dir, else the shipped lists)")
    check.add_argument("--json", action="store_true", help="one JSON report per line")
    check.set_defaults(func=cmd_check)
    report = sub.add_parser("report", help="reports for on-call")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    failures = report_sub.add_parser("failures", help="failed sends grouped, with what to do")
    failures.add_argument("--since", type=_duration, default=3600.0, help="how far back: 30m, 1h, 2d (default 1h)")
    failures.add_argument("--group-by", default="reason,provider,error_code")
    failures.add_argument("--tenant", default="default")
    failures.add_argument("--json", action="store_true")
    failures.set_defaults(func=cmd_report)
    export = sub.add_parser("export", help="export records for ops")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    export_events = export_sub.add_parser("events", help="the audit log as NDJSON (default) or CSV")
    export_events.add_argument("--since", type=_duration, default=86400.0, help="how far back (default 1d)")
    export_events.add_argument("--tenant", default="default")
    export_events.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
    export_events.set_defaults(func=cmd_export)
    numbers = sub.add_parser("numbers", help="sender numbers: state, health counts and last reason")
    numbers.add_argument("--pool", default=None)
    numbers.add_argument("--state", choices=["active", "suspect", "quarantined", "probation", "retired"])
    numbers.add_argument("--json", action="store_true", help="the same objects as GET /v1/numbers")
    numbers.set_defaults(func=cmd_numbers)
    numbers_sub = numbers.add_subparsers(dest="action", required=False)
    for action, text in (
        ("flag", "quarantine a number at once"),
        ("restore", "bring a number back to active"),
        ("retire", "take a number out of rotation for good"),
    ):
        step = numbers_sub.add_parser(action, help=text)
        step.add_argument("number_id")
        step.add_argument("--reason", required=action == "flag", help="recorded with the state change")
    example = sub.add_parser("config-example", help="print every setting with its default and what it does (TOML)")
    example.set_defaults(func=cmd_config_example)
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a new key (printed once)")
    create.add_argument("--tenant", default="default")
    create.add_argument("--name", default="cli")
    create.add_argument("--scopes", default=",".join(("send", "read", "report", "admin")))
    create.add_argument("--expires-days", type=float, default=None)
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", default=None)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)
    _add_templates(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())

"""The console's pages at 1,000,000 messages: render time of each page against a bare aiohttp handler.

1. A fresh SQLite file gets the gateway's schema, then --messages messages inserted with sqlite3
   `executemany` (spread over the last 30 days, ids time-ordered as the gateway makes them): 95%
   for tenant `default`, 5% for another; 40 campaigns with variants A/B over SMS and e-mail; a mix
   of statuses and failure reasons like a real month (80% delivered, ~15% failed, undelivered,
   suppressed, rejected, expired or unknown); two audit events per message (accepted, and where it
   ended); human clicks on 8% and conversions on 2% of delivered campaign messages. No ANALYZE:
   the gateway never runs it, so the planner works without statistics, as in production.
2. Baseline: a bare aiohttp handler answering a fixed 12 KB HTML page (no session, no query).
3. `gateway serve --role api` on that file (pinned to CPU 0 when taskset exists); the bench signs
   in through the login form like a browser (cookie and CSRF token), then requests each page
   sequentially: one warm-up, then --runs timed requests; the table shows the median and the worst.

Results go to docs/benchmarks/ui.md (text after the "notes" marker there is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import os
import random
import re
import sqlite3
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    PYTHON,
    ServerProcess,
    fmt,
    free_port,
    have_taskset,
    load_average,
    machine_info,
    markdown_table,
    median,
    serve_bare,
    source_revision,
    temporary_directory,
    uses_uvloop,
    write_doc,
)

from gateway.store.migrations import KEYS_OF_MESSAGES

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks" / "ui.md"
API_KEY = "bench-key-0123456789abcdef"
SERVER_CPU = "0"
DAY = 86400.0
TARGET_MS = 300.0

# status, reason, provider, error_code, weight (per 1000)
OUTCOMES = [
    ("delivered", "receipt", "sandbox", None, 800),
    ("sent", "provider.accepted", "sandbox", None, 30),
    ("undelivered", "provider.undelivered.SBX-30003", "sandbox", "SBX-30003", 20),
    ("undelivered", "provider.undelivered.SBX-30005", "sandbox", "SBX-30005", 10),
    ("failed", "provider.transient.exhausted", "sandbox", "SBX-503", 30),
    ("failed", "provider.permanent.recipient_invalid", "sandbox", "SBX-21211", 20),
    ("failed", "provider.permanent.SBX-30007", "sandbox", "SBX-30007", 10),
    ("suppressed", "suppressed.opt_out", None, None, 25),
    ("suppressed", "limit.cap", None, None, 15),
    ("rejected", "content.blocked_word", None, None, 10),
    ("expired", "expired", None, None, 10),
    ("unknown", "unknown.handoff", "sandbox", None, 5),
    ("queued", "accepted", None, None, 10),
    ("deferred", "limit.quiet_hours", None, None, 5),
]
CAMPAIGNS = [f"c{n:02d}" for n in range(40)]


# --- the data ---------------------------------------------------------------------------------


def create_schema(path: Path) -> None:
    import sqlalchemy as sa

    from gateway.store import migrations

    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        migrations.migrate(conn)
    engine.dispose()


def seed(path: Path, count: int, now: float, rng: random.Random) -> dict[str, int]:
    """Insert `count` messages, their events, clicks and conversions; returns how many of each."""
    from gateway.api.auth import SCOPES, key_row, provisioned_key_id
    from gateway.domain.ids import message_id

    outcomes = [o for o in OUTCOMES for _ in range(o[4])]
    start = now - 30 * DAY
    step = 30 * DAY / count
    totals = {"messages": 0, "events": 0, "clicks": 0, "conversions": 0}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        key = key_row(API_KEY, provisioned_key_id(API_KEY), "default", "bench", SCOPES)
        conn.execute("INSERT INTO tenants (id, name, created_at) VALUES ('default', 'default', ?)", (now,))
        conn.execute(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key["id"], key["tenant_id"], key["name"], key["key_hash"], key["scopes"], key["created_at"]),
        )
        chunk = 50_000
        for first in range(0, count, chunk):
            messages, events, clicks, conversions = [], [], [], []
            for i in range(first, min(first + chunk, count)):
                created = start + (i + rng.random()) * step
                mid = message_id(created)
                tenant = "default" if rng.random() < 0.95 else "acme"
                status, reason, provider, code, _ = rng.choice(outcomes)
                channel = "sms" if rng.random() < 0.8 else "email"
                to = f"+86138{rng.randrange(200_000):08d}" if channel == "sms" else f"u{rng.randrange(200_000)}@ex.com"
                campaign = rng.choice(CAMPAIGNS) if rng.random() < 0.8 else None
                variant = ("A", "B")[i % 2] if campaign else None
                updated = created + rng.random() * 600 if status not in ("queued", "deferred") else created
                due = created if status == "queued" else created + 3600
                content = '{"text":"Spring sale https://shop.example.com/s"}'
                user = f"u{i % 300_000}"
                row = (mid, tenant, channel, to, content, "marketing", user, campaign, variant, status, reason)
                messages.append((*row, provider, code, due, created, updated, 1))
                events.append((tenant, mid, created, "status", "queued", "accepted"))
                if status != "queued":
                    events.append((tenant, mid, updated, "status", status, reason))
                if status == "delivered" and campaign:
                    draw = rng.random()
                    if draw < 0.08:
                        clicks.append(("tok" + mid[-10:], tenant, mid, updated + 60, "Mozilla/5.0 (Android 14)", 0))
                    if draw < 0.02:
                        conversions.append((tenant, f"ev-{mid}", mid, "purchase", 10.0, updated + 120, updated + 120))
            with conn:
                conn.executemany(
                    "INSERT INTO messages (id, tenant_id, channel, to_addr, content, category, user_id, campaign,"
                    " variant, status, reason, provider, error_code, next_attempt_at, created_at, updated_at,"
                    " attempt_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    messages,
                )
                conn.executemany(
                    "INSERT INTO events (tenant_id, message_id, at, type, status, reason) VALUES (?, ?, ?, ?, ?, ?)",
                    events,
                )
                conn.executemany(
                    "INSERT INTO clicks (token, tenant_id, message_id, at, user_agent, automated)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    clicks,
                )
                conn.executemany(
                    "INSERT INTO conversions (tenant_id, event_id, message_id, event, value, occurred_at, received_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    conversions,
                )
            totals["messages"] += len(messages)
            totals["events"] += len(events)
            totals["clicks"] += len(clicks)
            totals["conversions"] += len(conversions)
            print(f"  seeded {totals['messages']:,} messages", flush=True)
        with conn:
            conn.execute(KEYS_OF_MESSAGES)  # what each message is found by, as accept writes it
    return totals


def sample_ids(path: Path) -> dict[str, str]:
    """Real values for the pages that open one thing: a failed message, a recipient."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        failed = conn.execute(
            "SELECT id, to_addr FROM messages WHERE tenant_id = 'default' AND status = 'failed'"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return {"message": failed[0], "to": failed[1]}


# --- pages ------------------------------------------------------------------------------------


def pages(samples: dict[str, str], now: float) -> list[tuple[str, str]]:
    def since(days: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - days * DAY))

    group = "reason=provider.permanent.recipient_invalid&provider=sandbox&error_code=SBX-21211"
    q = urllib.parse.quote
    return [
        ("failures, last 24 h (default)", "/ui/failures"),
        ("failures, last 7 days", "/ui/failures?window=7d"),
        ("failures, last 30 days (every row)", "/ui/failures?window=30d"),
        ("failures by campaign and channel, 24 h", "/ui/failures?group_by=campaign,channel"),
        ("failure group drill-down, 24 h", f"/ui/failures/group?window=24h&{group}"),
        ("requeue preview (dry run), 24 h", f"/ui/failures/requeue?window=24h&{group}"),
        ("campaigns list", "/ui/campaigns"),
        ("campaign funnel by variant (~19k messages)", "/ui/campaigns/c07"),
        ("campaign funnel by variant and channel", "/ui/campaigns/c07?group_by=variant,channel"),
        ("delivery log, newest", "/ui/messages"),
        ("delivery log, campaign + status", "/ui/messages?campaign=c07&status=failed"),
        ("delivery log, recipient", f"/ui/messages?to={q(samples['to'])}"),
        ("delivery log, one hour 10 days ago", f"/ui/messages?since={since(10)}&until={since(10 - 1 / 24)}"),
        ("message detail with timeline", f"/ui/messages/{samples['message']}"),
        ("live: queue depth and throughput", "/ui/live"),
    ]


@dataclass
class Timing:
    page: str
    path: str
    status: int = 0
    bytes: int = 0
    runs_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return median(self.runs_ms) or 0.0


class Browser:
    """Just enough of a browser: a cookie jar, the login form's CSRF token, timed GETs."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with self.opener.open(self.base + path, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def sign_in(self, key: str) -> None:
        _, page = self.get("/ui/login")
        found = re.search(rb'name="csrf" value="([^"]+)"', page)
        assert found, page[:500]
        body = urllib.parse.urlencode({"csrf": found.group(1).decode(), "key": key, "next": "/ui/failures"}).encode()
        with self.opener.open(self.base + "/ui/login", data=body, timeout=60) as response:
            assert response.url.endswith("/ui/failures"), response.url

    def time(self, timing: Timing, runs: int) -> None:
        timing.status, body = self.get(timing.path)  # warm-up
        timing.bytes = len(body)
        for _ in range(runs):
            started = time.perf_counter()
            status, _ = self.get(timing.path)
            timing.runs_ms.append((time.perf_counter() - started) * 1000)
            timing.status = status


BARE_PAGE = "<!doctype html><title>bare</title>\n" + ("<p>" + "x" * 120 + "</p>\n") * 95


def serve_baseline(port: int) -> None:
    from aiohttp import web

    body = BARE_PAGE.encode()

    async def html(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html")

    serve_bare(port, "GET", "/page", html)


def gateway_argv() -> list[str]:
    script = Path(PYTHON).with_name("gateway")
    if script.exists():
        return [str(script), "serve", "--role", "api"]
    return [PYTHON, "-m", "gateway", "serve", "--role", "api"]


# --- report -----------------------------------------------------------------------------------


def report(args: argparse.Namespace, baseline: Timing, timings: list[Timing], seeded: dict[str, int], cmd: str) -> str:
    info = machine_info()
    rows = [
        [
            t.page,
            f"`{t.path if len(t.path) < 70 else t.path[:67] + '...'}`",
            str(t.status),
            fmt(t.bytes / 1024, 1),
            fmt(t.median_ms, 1),
            fmt(max(t.runs_ms), 1),
            f"{t.median_ms / baseline.median_ms:.0f}x" if baseline.median_ms else "-",
            "yes" if t.median_ms < TARGET_MS else "**no**",
        ]
        for t in timings
    ]
    table = markdown_table(
        ["page", "path", "status", "KB", "median ms", "worst ms", "vs bare", f"< {TARGET_MS:.0f} ms"], rows
    )
    return "\n".join(
        [
            "# Console pages at scale",
            "",
            "Written by `bench/ui.py`; each figure is the median of the timed requests of one launch.",
            "",
            "```",
            cmd,
            "```",
            "",
            f"- machine: {info['nproc']} CPUs, {info['cpu']}, {info['os']}, Python {info['python']}",
            f"- store: a fresh SQLite file (WAL) with {seeded['messages']:,} messages over 30 days,"
            f" {seeded['events']:,} events, {seeded['clicks']:,} clicks, {seeded['conversions']:,} conversions"
            f" (seeded in {args.seed_seconds:.0f} s with sqlite3 executemany; not analysed, as the gateway leaves it)",
            f"- server: `gateway serve --role api`{' pinned to CPU ' + SERVER_CPU if have_taskset() else ''};"
            f" client: urllib in the bench process, one request at a time, 1 warm-up + {args.runs} timed per page",
            f"- baseline: bare aiohttp{' + uvloop' if uses_uvloop() else ''} answering a fixed"
            f" {len(BARE_PAGE) / 1024:.0f} KB HTML page: median {baseline.median_ms:.2f} ms",
            f"- gateway source: {source_revision(ROOT)}; load average before / after: {args.load_before} /"
            f" {load_average()}",
            "",
            table,
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="seed into this file (reused when it exists) instead of a temp one")
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOC.relative_to(ROOT)}")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0
    command = (".venv/bin/python bench/ui.py " + " ".join(sys.argv[1:])).strip()
    args.load_before = load_average()

    port = free_port()
    baseline = Timing("bare aiohttp handler", "/page")
    argv = [PYTHON, str(Path(__file__).resolve()), "--serve-baseline", str(port)]
    with ServerProcess(argv, ready_url=f"http://127.0.0.1:{port}/healthz", cpus=SERVER_CPU):
        Browser(f"http://127.0.0.1:{port}").time(baseline, args.runs * 3)

    with temporary_directory("bench-ui-") as tmp:
        db_path = args.keep or tmp / "gateway.db"
        now = time.time()
        started = time.monotonic()
        if args.keep and db_path.exists():
            with contextlib.closing(sqlite3.connect(db_path)) as conn:
                seeded = {
                    name: int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
                    for name in ("messages", "events", "clicks", "conversions")
                }
                now = float(conn.execute("SELECT max(created_at) FROM messages").fetchone()[0])
        else:
            create_schema(db_path)
            seeded = seed(db_path, args.messages, now, random.Random(11))
        args.seed_seconds = time.monotonic() - started
        samples = sample_ids(db_path)
        port = free_port()
        env = {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_DATABASE_URL": f"sqlite:///{db_path}",
            "GATEWAY_API_KEY": API_KEY,
            "GATEWAY_LOG_LEVEL": "warning",
            "GATEWAY_SANDBOX__ENABLED": "false",
        }
        for name in ("GATEWAY_CONFIG", "GATEWAY_REDIS_URL"):
            os.environ.pop(name, None)
        timings = [Timing(name, path) for name, path in pages(samples, now)]
        with ServerProcess(
            gateway_argv(), ready_url=f"http://127.0.0.1:{port}/healthz", env=env, cwd=tmp, cpus=SERVER_CPU
        ):
            browser = Browser(f"http://127.0.0.1:{port}")
            browser.sign_in(API_KEY)
            for timing in timings:
                browser.time(timing, args.runs)
                print(f"  {timing.page}: {timing.median_ms:.1f} ms (status {timing.status})", flush=True)
    text = report(args, baseline, timings, seeded, command)
    print()
    print(text)
    if not args.no_write:
        write_doc(DOC, text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0 if all(t.status == 200 and t.median_ms < TARGET_MS for t in timings) else 1


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(main())

"""Tracked-link redirects: `GET /c/{token}` with click recording, against a bare aiohttp redirect.

Two servers, each a separate process pinned to CPU 0, loaded by `wrk` (one thread, closed loop)
pinned to CPU 1 with taskset when there are two CPUs (see bench/common.py):

1. baseline: a bare aiohttp handler (same Python, uvloop like `gateway serve`) answering every
   `GET /c/{token}` with 302 to a fixed URL, no lookup, nothing recorded;
2. `gateway serve --role api` on a fresh SQLite file (WAL, synchronous=FULL): each request looks
   the token up in `links`, records the click (group-committed by `Store.record_click`; the 302 is
   sent once the click is committed) and answers 302 to the registered URL with the campaign and
   variant appended. --tokens links are inserted into `links` with sqlite3 once the gateway has
   created its schema; requests cycle through them, with a phone's User-Agent (a person's click).

Each server: a warm-up, then --runs timed runs of --seconds; the table shows medians and the ratio
to the baseline, and the server process's CPU time per 302 (from /proc, all its threads; on a loaded
machine a steadier figure than the rate, since it does not depend on how much of CPU 0 the server
got). With --py-spy FILE the gateway's last timed run is sampled by py-spy (folded stacks to FILE).
Clicks are checked against answers twice:

- after every timed run, once the click group commit has flushed: 302 answers <= new `clicks` rows
  <= requests sent (rows above the 302 count are requests wrk had sent but not read the answer of
  when it stopped; their clicks were committed all the same);
- at the end, an exact check without a cut-off: --exact requests from an aiohttp client (32 at a
  time, every answer read), then `clicks` must have grown by exactly the number of 302 answers.

Results go to docs/benchmarks/clicks.md (text after the "notes" marker there is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PYTHON,
    LoadResult,
    RequestTemplate,
    ServerProcess,
    doc_header,
    fmt,
    free_port,
    have_taskset,
    load_average,
    load_tool,
    markdown_table,
    median,
    run_load,
    serve_bare,
    source_revision,
    temporary_directory,
    uses_uvloop,
    write_doc,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks" / "clicks.md"
API_KEY = "bench-key-0123456789abcdef"
SERVER_CPU, LOAD_CPU = "0", "1"
TOKEN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DESTINATION = "https://shop.example.com/sale?item=42"
PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"


def make_tokens(count: int, seed: int = 7) -> list[str]:
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(TOKEN_ALPHABET) for _ in range(10)) for _ in range(count)]


def templates(tokens: list[str], agents: int = 0) -> list[RequestTemplate]:
    """A request per token, with the phone's User-Agent; with `agents`, that many distinct ones in
    turn (a campaign's clicks come from thousands of devices: each agent the gateway has not seen
    before is judged person or machine anew)."""
    if not agents:
        return [RequestTemplate("GET", f"/c/{token}", {"User-Agent": PHONE}) for token in tokens]
    return [
        RequestTemplate("GET", f"/c/{tokens[n % len(tokens)]}", {"User-Agent": PHONE.replace("Pixel 8", f"Pixel {n}")})
        for n in range(max(agents, len(tokens)))
    ]


# --- the baseline server ----------------------------------------------------------------------


def serve_baseline(port: int) -> None:
    """A bare aiohttp handler: 302 to a fixed URL, nothing looked up, nothing recorded."""
    from aiohttp import web

    async def redirect(_request: web.Request) -> web.Response:
        return web.Response(
            status=302, headers={"Location": DESTINATION, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        )

    serve_bare(port, "GET", "/c/{token}", redirect)


# --- the store, read with sqlite3 -------------------------------------------------------------


class Db:
    def __init__(self, path: Path, commit_seconds: float = 0.2) -> None:  # the gateway's default interval
        self.path = path
        # No new click for this long: the last commit has flushed (the queued commits' interval with room).
        self.quiet = max(0.5, 3 * commit_seconds)

    def count(self, sql: str) -> int:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            return int(conn.execute(sql).fetchone()[0])

    def clicks(self) -> int:
        return self.count("SELECT count(*) FROM clicks")

    def insert_links(self, tokens: list[str]) -> None:
        now = time.time()
        rows = [
            (token, "default", f"msg_bench{i:020d}", DESTINATION, "recall-2024-06", "ab"[i % 2], now)
            for i, token in enumerate(tokens)
        ]
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn, conn:
            conn.executemany(
                "INSERT INTO links (token, tenant_id, message_id, url, campaign, variant, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def settled_clicks(self, at_least: int, timeout: float = 15.0) -> int:
        """The click count once the last group commit has flushed: at least `at_least` rows, and
        no change for `self.quiet` seconds."""
        deadline = time.monotonic() + timeout
        last, since = self.clicks(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.clicks()
            if now != last:
                last, since = now, time.monotonic()
            elif now >= at_least and time.monotonic() - since >= self.quiet:
                return now
        return last


# --- measurements -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    load: LoadResult
    rows: int | None = None  # new rows in `clicks` during the run
    cpu_seconds: float | None = None  # the server process's CPU time during the load

    @property
    def cpu_us(self) -> float | None:
        """Server CPU time per 302, microseconds."""
        if self.cpu_seconds is None or not self.redirects:
            return None
        return self.cpu_seconds / self.redirects * 1e6

    @property
    def redirects(self) -> int:
        return self.load.status(302)

    @property
    def rate(self) -> float:
        return self.redirects / self.load.seconds if self.load.seconds else 0.0

    @property
    def recorded_ok(self) -> bool:
        return self.rows is None or self.redirects <= self.rows <= self.load.sent


@dataclass
class Measurement:
    server: str
    runs: list[Run] = field(default_factory=list)
    exact: tuple[int, int] | None = None  # (302 answers, new clicks rows) of the exact check
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return median([r.rate for r in self.runs])

    @property
    def p50(self) -> float | None:
        return median([r.load.p50_ms for r in self.runs])

    @property
    def p99(self) -> float | None:
        return median([r.load.p99_ms for r in self.runs])

    @property
    def cpu_us(self) -> float | None:
        return median([r.cpu_us for r in self.runs])

    @property
    def unexpected(self) -> int:
        return sum(r.load.requests - r.redirects + r.load.errors for r in self.runs)

    @property
    def recorded(self) -> str:
        if not self.runs or self.runs[0].rows is None:
            return "n/a (records nothing)"
        bad = [r for r in self.runs if not r.recorded_ok]
        if bad:
            return f"FAILED in {len(bad)}/{len(self.runs)} runs"
        gaps = [(r.rows or 0) - r.redirects for r in self.runs]
        text = f"ok ({len(self.runs)}/{len(self.runs)}; committed but unread at cut-off: {min(gaps)}-{max(gaps)})"
        if self.exact is not None:
            answers, rows = self.exact
            text += f"; exact: {rows:,} rows for {answers:,} 302s " + ("ok" if rows == answers else "MISMATCH")
        return text

    @property
    def failed(self) -> bool:
        return self.recorded.startswith("FAILED") or (self.exact is not None and self.exact[0] != self.exact[1])


def measure(
    measurement: Measurement,
    url: str,
    tokens: list[str],
    args: argparse.Namespace,
    db: Db | None,
    pid: int | None,
    spy: str | None = None,
) -> None:
    cpus = LOAD_CPU if have_taskset() else None
    tag = uuid.uuid4().hex[:8]
    plan = templates(tokens, args.agents)

    def load(seconds: float, label: str) -> LoadResult:
        return run_load(url, plan, seconds=seconds, connections=args.connections, run_id=f"{tag}{label}", cpus=cpus)

    if args.warmup > 0:
        warm = load(args.warmup, "w")
        if db is not None:
            db.settled_clicks(warm.status(302))
    for index in range(args.runs):
        before = db.clicks() if db is not None else 0
        sampler = py_spy(pid, spy, args.seconds) if spy and pid and index == args.runs - 1 else None
        cpu_before = cpu_seconds(pid) if pid else 0.0
        result = load(args.seconds, f"r{index}")
        run = Run(result, cpu_seconds=cpu_seconds(pid) - cpu_before if pid else None)
        if sampler is not None:
            sampler.wait()
        if db is not None:
            run.rows = db.settled_clicks(before + result.status(302)) - before
        measurement.runs.append(run)
        extra = f", clicks +{run.rows} (sent {result.sent})" if run.rows is not None else ""
        print(
            f"  [{measurement.server}] run {index + 1}: {run.rate:,.0f} redirects/s,"
            f" p50 {fmt(result.p50_ms, 2)} ms, p99 {fmt(result.p99_ms, 2)} ms,"
            f" CPU {fmt(run.cpu_us)} us/302, statuses {dict(sorted(result.statuses.items()))},"
            f" errors {result.errors}{extra}",
            flush=True,
        )


def py_spy(pid: int, output: str, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy sampling the process for `seconds` (folded stacks, one line per stack with its count)."""
    argv = [str(Path(PYTHON).with_name("py-spy")), "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
    argv += ["--duration", str(max(1, int(seconds))), "--format", "raw", "--output", output]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _exact_clicks(url: str, tokens: list[str], total: int, concurrency: int = 32) -> int:
    """Send exactly `total` clicks, reading every answer; the number of 302s."""
    import aiohttp

    counter = iter(range(total))
    redirects = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal redirects
        for n in counter:
            token = tokens[n % len(tokens)]
            async with session.get(f"{url}/c/{token}", headers={"User-Agent": PHONE}, allow_redirects=False) as r:
                await r.read()
                redirects += r.status == 302

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return redirects


def exact_check(url: str, tokens: list[str], total: int, db: Db) -> tuple[int, int]:
    before = db.clicks()
    answers = asyncio.run(_exact_clicks(url, tokens, total))
    rows = db.settled_clicks(before + answers) - before
    print(f"  exact check: {answers:,} 302 answers, {rows:,} new clicks rows", flush=True)
    return answers, rows


def bench_baseline(args: argparse.Namespace, tokens: list[str]) -> Measurement:
    port = free_port()
    argv = [PYTHON, str(Path(__file__).resolve()), "--serve-baseline", str(port)]
    measurement = Measurement("bare aiohttp 302" + (" + uvloop" if uses_uvloop() else ""))
    with ServerProcess(argv, ready_url=f"http://127.0.0.1:{port}/healthz", cpus=SERVER_CPU) as server:
        pid = server.proc.pid if server.proc is not None else None
        measure(measurement, f"http://127.0.0.1:{port}", tokens, args, None, pid)
    return measurement


def gateway_argv(root: Path) -> list[str]:
    script = Path(PYTHON).with_name("gateway")
    if root == ROOT and script.exists():
        return [str(script), "serve", "--role", "api"]
    return [PYTHON, "-m", "gateway", "serve", "--role", "api"]


def bench_gateway(args: argparse.Namespace, tokens: list[str]) -> Measurement:
    measurement = Measurement(
        "gateway --role api, GET /c/{token}"
        + (", claim tokens" if args.claim_tokens else "")
        + ("" if args.wait_for_commit else ", click queued")
        + (f" ({args.queued_click_commit_ms:g} ms commits)" if args.queued_click_commit_ms else "")
        + (f", click commits {args.click_synchronous}" if args.click_synchronous else "")
    )
    with temporary_directory("bench-clicks-") as tmp:
        port = free_port()
        db_path = tmp / "gateway.db"
        env = {
            "GATEWAY_PORT": str(port),
            "GATEWAY_DATABASE_URL": f"sqlite:///{db_path}",
            "GATEWAY_API_KEY": API_KEY,
            "GATEWAY_LOG_LEVEL": "warning",
            "PYTHONPATH": str(args.gateway_root),
            # Every click from one address here: the per-IP limit stays in the path, far above the load.
            "GATEWAY_LINKS__CLICKS_PER_IP_PER_SECOND": "1000000",
            "GATEWAY_LINKS__CLICK_BURST": "1000000",
        }
        if args.claim_tokens:
            env["GATEWAY_LINKS__CLAIM_TOKENS"] = "true"
        if not args.wait_for_commit:
            env["GATEWAY_LINKS__WAIT_FOR_CLICK_COMMIT"] = "false"
        if args.click_synchronous:
            env["GATEWAY_LINKS__CLICK_SYNCHRONOUS"] = args.click_synchronous
        if args.queued_click_commit_ms:
            env["GATEWAY_LINKS__QUEUED_CLICK_COMMIT_MS"] = str(args.queued_click_commit_ms)
        for name in ("GATEWAY_CONFIG", "GATEWAY_REDIS_URL"):
            os.environ.pop(name, None)
        process = ServerProcess(
            gateway_argv(args.gateway_root),
            ready_url=f"http://127.0.0.1:{port}/healthz",
            env=env,
            cwd=tmp,
            cpus=SERVER_CPU,
        )
        with process as proc:
            db = Db(db_path, args.queued_click_commit_ms / 1000) if args.queued_click_commit_ms else Db(db_path)
            db.insert_links(tokens)  # the schema exists once the gateway answers
            url = f"http://127.0.0.1:{port}"
            measure(measurement, url, tokens, args, db, proc.proc.pid if proc.proc else None, args.py_spy)
            if args.exact:
                measurement.exact = exact_check(url, tokens, args.exact, db)
            if proc.proc is not None and proc.proc.poll() is not None:
                measurement.notes.append(f"server exited early: {proc.output()[-500:]}")
    return measurement


# --- report -----------------------------------------------------------------------------------


def report(args: argparse.Namespace, baseline: Measurement, gateway: Measurement, command: str) -> str:
    base = baseline.rate or 0.0
    base_cpu = baseline.cpu_us
    rows = []
    for m in (baseline, gateway):
        spread = f"{min(r.rate for r in m.runs):,.0f}-{max(r.rate for r in m.runs):,.0f}" if m.runs else ""
        rows.append(
            [
                m.server,
                f"{fmt(m.rate)} ({spread})",
                fmt(m.p50, 2),
                fmt(m.p99, 2),
                f"{(m.rate or 0) / base:.2f}" if base else "-",
                fmt(m.cpu_us),
                f"{base_cpu / m.cpu_us:.2f}" if base_cpu and m.cpu_us else "-",
                m.recorded,
            ]
        )
    table = markdown_table(
        [
            "server",
            "redirects/s (min-max)",
            "p50 ms",
            "p99 ms",
            "vs bare",
            "CPU us per 302",
            "bare CPU / CPU",
            "clicks rows == 302 answers",
        ],
        rows,
    )
    unexpected = baseline.unexpected + gateway.unexpected
    lines = [
        *doc_header(
            "Tracked-link redirects",
            "`bench/clicks.py`; numbers are medians of the timed runs of one launch.",
            command,
        ),
        f"- load generator: {load_tool()}"
        + (" (1 thread, closed loop)" if load_tool() == "wrk" else " (aiohttp client in its own process)")
        + f"; {args.connections} keep-alive connections; requests cycle through {args.tokens} tokens,"
        + (f" {args.agents:,} distinct phone User-Agents" if args.agents else " phone User-Agent"),
        "- pinning: "
        + (
            f"server on CPU {SERVER_CPU}, load generator on CPU {LOAD_CPU} (taskset)"
            if have_taskset()
            else "none (no taskset or one CPU)"
        ),
        f"- runs: {args.warmup:g} s warm-up, then {args.runs} x {args.seconds:g} s per server; the gateway on a fresh"
        " SQLite file (WAL, synchronous=FULL"
        + (f", clicks committed at {args.click_synchronous}" if args.click_synchronous else "")
        + "), links inserted with sqlite3, `--role api` (no worker)",
        f"- gateway source: `{args.gateway_root}` ({source_revision(args.gateway_root)})",
        f"- load average before / after the bench: {args.load_before} / {load_average()}",
        "- per gateway request: per-IP click rate (in memory), token check, `links` lookup (kept in memory once"
        " read), click row group-committed "
        + ("before the 302" if args.wait_for_commit else "after the 302 (queued before it)")
        + ", attribution"
        + (" and a signed claim token" if args.claim_tokens else "")
        + " appended to the URL",
        "- CPU us per 302: the server process's user + system time (all threads, /proc) during a timed run"
        " over its 302 answers, median of the runs; `bare CPU / CPU` is the ratio both would reach with"
        " all the CPU they want (steadier than the rates on a shared machine)",
        "",
        table,
        "",
        f"- unexpected answers or socket errors over all runs: {unexpected}",
        "",
    ]
    notes = [f"- {m.server}: {note}" for m in (baseline, gateway) for note in m.notes]
    if notes:
        lines += ["## Observations of this run", "", *notes, ""]
    lines += ["## Every run", ""]
    for m in (baseline, gateway):
        cells = "; ".join(
            f"{r.rate:,.0f}/s, {fmt(r.cpu_us)} us"
            + (f" (302 {r.redirects:,}, rows +{r.rows:,}, sent {r.load.sent:,})" if r.rows else "")
            for r in m.runs
        )
        lines.append(f"- {m.server}: {cells}")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=1000, help="distinct tracked links to click")
    parser.add_argument(
        "--agents", type=int, default=0, help="distinct User-Agents the clicks cycle through (default: one phone's)"
    )
    parser.add_argument(
        "--claim-tokens",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="links.claim_tokens on (the default): each redirect carries a signed claim token",
    )
    parser.add_argument(
        "--wait-for-commit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="links.wait_for_click_commit (the default): the 302 waits for the click's commit; "
        "--no-wait-for-commit answers once the click is queued for it",
    )
    parser.add_argument(
        "--click-synchronous",
        choices=("FULL", "NORMAL"),
        help="links.click_synchronous: NORMAL commits clicks without waiting for the disk (default: FULL, as"
        " every commit)",
    )
    parser.add_argument(
        "--queued-click-commit-ms",
        type=float,
        help="links.queued_click_commit_ms (with --no-wait-for-commit): how long queued clicks gather"
        " (default: the gateway's, 200)",
    )
    parser.add_argument("--exact", type=int, default=5000, help="clicks of the exact rows == 302s check (0: skip)")
    parser.add_argument(
        "--gateway-root",
        type=lambda p: Path(p).resolve(),
        default=ROOT,
        help="source tree of the gateway to run (default: this one); for A/B runs of a patched copy",
    )
    parser.add_argument("--py-spy", metavar="FILE", help="sample the gateway's last timed run with py-spy into FILE")
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOC.relative_to(ROOT)}")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0

    command = (".venv/bin/python bench/clicks.py " + " ".join(sys.argv[1:])).strip()
    started = time.monotonic()
    args.load_before = load_average()
    print(f"load generator: {load_tool()}; pinning: {'taskset' if have_taskset() else 'none'}", flush=True)
    tokens = make_tokens(args.tokens)
    baseline = bench_baseline(args, tokens)
    gateway = bench_gateway(args, tokens)
    text = report(args, baseline, gateway, command)
    print()
    print(text)
    print(f"bench took {time.monotonic() - started:.0f} s", flush=True)
    if not args.no_write:
        write_doc(DOC, text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 1 if gateway.failed else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(main())

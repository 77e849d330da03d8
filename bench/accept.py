"""Accept throughput: the gateway's durable accept against a bare aiohttp handler, in one run.

    .venv/bin/python bench/accept.py [--runs 5] [--seconds 4] [--warmup 2] [--connections 64]
                                     [--batch-connections 8] [--roles api,all,serve1,serve] [--no-write]

Measures, each in its own server process on a free loopback port (server pinned to CPU 0 and the
load generator to CPU 1 with taskset when there are two CPUs):

1. baseline: a bare aiohttp POST handler (same Python, uvloop like `gateway serve`) that parses the
   same ~300 B job with orjson and answers 202 with a small JSON body;
2. `gateway serve --role api` on a fresh SQLite file (WAL, synchronous=FULL), one job per request,
   half of them with a unique Idempotency-Key;
3. `POST /v1/messages/batch` with 100 and with 1000 jobs per request (every item keyed);
3a. `POST /v1/messages` naming a published template instead of giving content (the same ~300 B
   SMS rendered from it at accept: two params), against the plain single job of the same launch;
4. with `--roles api,all` also single and batch-1000 accept with `--role all`, the worker
   dispatching to the sandbox provider at the same time (and its dispatch rate);
5. with `serve1` and `serve` in --roles, the same as `all` for `gateway serve --processes 1` (one
   process, as before) and `gateway serve` as a user starts it (`--processes auto`: API processes
   on every core and a worker, supervised). These two are not pinned to a CPU (auto sizes itself from
   the CPUs it may use), so the load generator shares a core with them: compare them with each other;
6. with the `api` role, a single job for a `user_id` (no `to`) for one of 10,000 recipients imported
   before the run, on the same server: the profile read at accept (`--no-user-jobs` skips it); run
   by run alternating with the same job with `to` for one of the same people (its like-for-like
   plain job: the plain row's user_ids are a counter, which appends to their index).

Each measurement: a warm-up, then --runs timed runs of --seconds; the table shows medians, with the
server process's CPU time per answered request (user + system, all its threads, from /proc): other
work on a shared machine takes the server's wall time and moves that figure less than a rate (not
to nothing: it shares the CPU and its caches). After every gateway run the bench counts the rows of
`messages` with sqlite3: every acknowledged job must be there (rows >= 202 answers), and no more
than were sent (rows <= jobs sent; the gap is requests still in flight when the load generator
stopped, which the server commits anyway).
The results go to docs/benchmarks/accept.md (text after the "notes" marker there is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
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
DOC = ROOT / "docs" / "benchmarks" / "accept.md"
API_KEY = "bench-key-0123456789abcdef"
SERVER_CPU, LOAD_CPU = "0", "1"

# ~300 B: what a recall campaign sends. "{n}" becomes a unique token per job, "{d8}" 8 digits of a
# different recipient number per job (a campaign rarely repeats one, so no cache flatters the result).
JOB = (
    '{"channel":"sms","to":"+86138{d8}","content":{"text":"[Shop] Hi Lee, your 20% coupon expires on '
    'Sunday. Open the app to use it before it is gone. Reply T to opt out."},"category":"marketing",'
    '"campaign":"recall-2024-06","variant":"b","user_id":"u-{n}","metadata":{"segment":"dormant-30d"}}'
)
# The same job for a person: no `to`, the channel's address read from the profile at accept (one of
# 10,000 imported before the run; `{u4}` picks one per job).
PEOPLE = 10_000
USER_JOB = (
    '{"channel":"sms","content":{"text":"[Shop] Hi Lee, your 20% coupon expires on '
    'Sunday. Open the app to use it before it is gone. Reply T to opt out."},"category":"marketing",'
    '"campaign":"recall-2024-06","variant":"b","user_id":"u-{u4}","metadata":{"segment":"dormant-30d"}}'
)
# JOB for one of the same people, with `to` given: the like-for-like plain job of the user_id row
# (JOB's counter user_ids append to their index; a campaign's, like USER_JOB's, land anywhere in it).
PEER_JOB = JOB.replace('"user_id":"u-{n}"', '"user_id":"u-{u4}"')
# The same text as JOB, rendered at accept from a published template with two params.
TEMPLATE = (
    '{"name":"recall","variables":{"name":{"type":"string","required":true,"max_length":20,"example":"Lee"},'
    '"day":{"type":"string","required":true,"max_length":12,"example":"Sunday"}},"channels":{"sms":{"text":'
    '"[Shop] Hi {{ name }}, your 20% coupon expires on {{ day }}. Open the app to use it before it is gone. '
    'Reply T to opt out."}}}'
)
TEMPLATED_JOB = (
    '{"channel":"sms","to":"+86138{d8}","template":"recall","params":{"name":"Lee","day":"Sunday"},'
    '"category":"marketing","campaign":"recall-2024-06","variant":"b","user_id":"u-{n}",'
    '"metadata":{"segment":"dormant-30d"}}'
)
KEYED_ITEM = JOB[:-1] + ',"idempotency_key":"b-{n}"}'
AUTH = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


def single(job: str) -> list[RequestTemplate]:
    """One job per request, alternately with and without an Idempotency-Key."""
    return [
        RequestTemplate("POST", "/v1/messages", {**AUTH, "Idempotency-Key": "k-{n}"}, job),
        RequestTemplate("POST", "/v1/messages", dict(AUTH), job),
    ]


SINGLE = single(JOB)
SINGLE_TEMPLATED = single(TEMPLATED_JOB)
TEMPLATED_NAME = "single job, template"


def publish_template(url: str) -> None:
    """The template the templated rows name, created and published over the API."""
    import urllib.request

    for path, body in (("/v1/templates", TEMPLATE), ("/v1/templates/recall/publish", "{}")):
        request = urllib.request.Request(url + path, data=body.encode(), headers=AUTH, method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            if answer.status != 201:
                raise RuntimeError(f"{path}: {answer.status}")


USER_SINGLE = single(USER_JOB)
PEER_SINGLE = single(PEER_JOB)
PEER_NAME = "single job with `to`, for one of the same people"
PEOPLE_NAME = "single job for a user_id"


def import_people(url: str) -> None:
    """The profiles `USER_JOB` names, imported in bulk (NDJSON) before the measurement."""
    import json
    import urllib.request

    lines = "".join(
        json.dumps({"user_id": f"u-{i:04d}", "phone": f"+86138{i:08d}", "email": f"u{i}@example.com"}) + "\n"
        for i in range(PEOPLE)
    )
    request = urllib.request.Request(
        f"{url}/v1/recipients",
        data=lines.encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/x-ndjson"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        results = [json.loads(line) for line in answer.read().splitlines() if line.strip()]
    created = sum(1 for r in results if r["result"] in ("created", "replaced", "updated"))
    if created != PEOPLE:
        raise RuntimeError(f"imported {created} of {PEOPLE} recipients: {results[:3]}")


def batch(size: int) -> list[RequestTemplate]:
    return [RequestTemplate("POST", "/v1/messages/batch", dict(AUTH), '{"messages":[{items}]}', KEYED_ITEM, size)]


# --- the baseline server ----------------------------------------------------------------------


def serve_baseline(port: int) -> None:
    """A bare aiohttp handler: read, parse with orjson, answer 202 with a small JSON body."""

    import orjson
    from aiohttp import web

    async def accept(request: web.Request) -> web.Response:
        job = orjson.loads(await request.read())
        body = orjson.dumps({"id": "msg_01J0000000000000000000000", "status": "queued", "channel": job["channel"]})
        return web.Response(body=body, status=202, content_type="application/json")

    serve_bare(port, "POST", "/v1/messages", accept)


# --- measurements -----------------------------------------------------------------------------


@dataclass
class Run:
    load: LoadResult
    jobs: int  # acknowledged jobs (202 answers, or the batch answers' "accepted")
    rows: int | None = None  # new rows in `messages` during the run
    dispatched: int | None = None  # jobs that left queued/sending during the run (role all)
    wall: float = 0.0
    cpu: float | None = None  # CPU seconds the server process used during the load (all threads)

    @property
    def cpu_ms_per_request(self) -> float | None:
        return 1000 * self.cpu / self.load.requests if self.cpu is not None and self.load.requests else None

    @property
    def jobs_rate(self) -> float:
        return self.jobs / self.load.seconds

    @property
    def durable_ok(self) -> bool:
        return self.rows is None or self.jobs <= self.rows <= self.load.sent_jobs


@dataclass
class Measurement:
    name: str
    server: str
    jobs_per_request: int
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float | None:
        return median([r.load.rate for r in self.runs])

    @property
    def jps(self) -> float | None:
        return median([r.jobs_rate for r in self.runs])

    @property
    def p50(self) -> float | None:
        return median([r.load.p50_ms for r in self.runs])

    @property
    def p99(self) -> float | None:
        return median([r.load.p99_ms for r in self.runs])

    @property
    def cpu_ms(self) -> float | None:
        """The server's CPU per answered request: unlike a rate, barely moved by other load on the machine."""
        return median([r.cpu_ms_per_request for r in self.runs])

    @property
    def dispatch_rate(self) -> float | None:
        return median([r.dispatched / r.wall if r.dispatched is not None and r.wall else None for r in self.runs])

    @property
    def durable(self) -> str:
        if not self.runs or self.runs[0].rows is None:
            return "n/a"
        bad = [r for r in self.runs if not r.durable_ok]
        if bad:
            return f"FAILED in {len(bad)}/{len(self.runs)} runs"
        gaps = [r.rows - r.jobs for r in self.runs if r.rows is not None]
        return f"ok ({len(self.runs)}/{len(self.runs)}; unanswered but stored at cut-off: {min(gaps)}-{max(gaps)})"

    @property
    def unexpected(self) -> int:
        return sum(r.load.requests - r.load.status(self.expected_status) + r.load.errors for r in self.runs)

    @property
    def expected_status(self) -> int:
        return 200 if self.jobs_per_request > 1 else 202


class Db:
    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self, sql: str) -> int:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            return int(conn.execute(sql).fetchone()[0])

    def rows(self) -> int:
        return self.count("SELECT count(*) FROM messages")

    def settled_rows(self, expected: int | None = None, quiet: float = 1.0, timeout: float = 30.0) -> int:
        """The row count once requests still in flight at the cut-off have been committed.

        Returns as soon as `expected` rows are there (every job sent is stored), else once the count
        has not moved for `quiet` seconds (a request cut off half-written is never stored).
        """
        deadline = time.monotonic() + timeout
        last, since = self.rows(), time.monotonic()
        while time.monotonic() < deadline:
            if expected is not None and last >= expected:
                return last
            time.sleep(0.05)
            now = self.rows()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return now
        return last

    def dispatched(self) -> int:
        return self.count("SELECT count(*) FROM messages WHERE status NOT IN ('queued', 'sending')")


def measure(
    measurement: Measurement,
    url: str,
    templates: list[RequestTemplate],
    args: argparse.Namespace,
    connections: int,
    db: Db | None,
    count_field: str | None,
    track_dispatch: bool,
    server: ServerProcess | None = None,
) -> Measurement:
    cpus = LOAD_CPU if have_taskset() else None
    tag = uuid.uuid4().hex[:8]

    def load(seconds: float, label: str) -> LoadResult:
        return run_load(
            url,
            templates,
            seconds=seconds,
            connections=connections,
            run_id=f"{tag}{label}",
            count_field=count_field,
            cpus=cpus,
        )

    if args.warmup > 0:
        warm_before = db.rows() if db is not None else 0
        warm = load(args.warmup, "w")
        if db is not None:
            db.settled_rows(warm_before + warm.sent_jobs)
    for index in range(args.runs):
        before = db.rows() if db is not None else None
        dispatched_before = db.dispatched() if db is not None and track_dispatch else None
        started = time.monotonic()
        cpu_before = server.cpu_seconds() if server is not None else None
        result = load(args.seconds, f"r{index}")
        cpu_after = server.cpu_seconds() if server is not None else None
        jobs = result.counted if count_field else result.status(202)
        run = Run(result, jobs)
        if cpu_before is not None and cpu_after is not None:
            run.cpu = cpu_after - cpu_before
        if db is not None and before is not None:
            run.rows = db.settled_rows(before + result.sent_jobs) - before
            if dispatched_before is not None:
                run.dispatched = db.dispatched() - dispatched_before
        run.wall = time.monotonic() - started
        measurement.runs.append(run)
        extra = f", rows +{run.rows}" if run.rows is not None else ""
        extra += f", dispatched {run.dispatched}" if run.dispatched is not None else ""
        extra += f", server CPU {fmt(run.cpu_ms_per_request, 3)} ms/req" if run.cpu_ms_per_request else ""
        print(
            f"  {measurement.name} [{measurement.server}] run {index + 1}: {result.rate:,.0f} req/s,"
            f" {run.jobs_rate:,.0f} jobs/s, p50 {fmt(result.p50_ms, 2)} ms, p99 {fmt(result.p99_ms, 2)} ms,"
            f" statuses {dict(sorted(result.statuses.items()))}, errors {result.errors}{extra}",
            flush=True,
        )
    return measurement


def bench_baseline(args: argparse.Namespace) -> Measurement:
    port = free_port()
    argv = [PYTHON, str(Path(__file__).resolve()), "--serve-baseline", str(port)]
    server = "bare aiohttp" + (" + uvloop" if uses_uvloop() else "")
    with ServerProcess(argv, ready_url=f"http://127.0.0.1:{port}/healthz", cpus=SERVER_CPU) as proc:
        return measure(
            Measurement("single job", server, 1),
            f"http://127.0.0.1:{port}",
            SINGLE,
            args,
            args.connections,
            None,
            None,
            False,
            proc,
        )


# How each measured role is started, and what the report calls it.
SERVE_ARGS = {"api": ["--role", "api"], "all": ["--role", "all"], "serve1": ["--processes", "1"], "serve": []}
SERVER_NAMES = {
    "api": "gateway --role api",
    "all": "gateway --role all",
    "serve1": "gateway serve --processes 1",
    "serve": "gateway serve (auto)",
}
DISPATCHING = ("all", "serve1", "serve")


def gateway_argv(role: str, root: Path) -> list[str]:
    script = Path(PYTHON).with_name("gateway")
    if root == ROOT and script.exists():
        return [str(script), "serve", *SERVE_ARGS[role]]
    return [PYTHON, "-m", "gateway", "serve", *SERVE_ARGS[role]]


def bench_gateway(args: argparse.Namespace, role: str, sizes: list[int], templated: bool = False) -> list[Measurement]:
    """A row per size on a fresh SQLite file; with `templated`, a templated single-job row after the
    plain one."""
    results = []
    rows = [(size, False) for size in sizes]
    if templated and 1 in sizes:
        rows.insert(sizes.index(1) + 1, (1, True))
    for size, with_template in rows:
        with temporary_directory("bench-accept-") as tmp:
            port = free_port()
            db_path = tmp / "gateway.db"
            env = {
                "GATEWAY_PORT": str(port),
                "GATEWAY_DATABASE_URL": f"sqlite:///{db_path}",
                "GATEWAY_API_KEY": API_KEY,
                "GATEWAY_LOG_LEVEL": "warning",
                "PYTHONPATH": str(args.gateway_root),
            }
            for name in ("GATEWAY_CONFIG", "GATEWAY_REDIS_URL"):
                os.environ.pop(name, None)
            server = SERVER_NAMES[role]
            name = TEMPLATED_NAME if with_template else "single job" if size == 1 else f"batch of {size}"
            process = ServerProcess(
                gateway_argv(role, args.gateway_root),
                ready_url=f"http://127.0.0.1:{port}/healthz",
                env=env,
                cwd=tmp,
                cpus=SERVER_CPU if role in ("api", "all") else None,
            )
            try:
                process.start()
            except RuntimeError as exc:
                # A server that does not start is a finding, not a reason to lose the other rows.
                last = [line for line in str(exc).splitlines() if line.strip()][-1:]
                measurement = Measurement(name, server, size)
                measurement.notes.append(f"server did not start: {last[0] if last else exc}")
                print(f"  {name} [{server}]: server did not start: {exc}", flush=True)
                results.append(measurement)
                continue
            people_row: Measurement | None = None
            peer_row = Measurement(PEER_NAME, server, 1)
            with process as proc:
                measurement = Measurement(name, server, size)
                url = f"http://127.0.0.1:{port}"
                people = role == "api" and size == 1 and not with_template and not args.no_user_jobs
                if people:
                    import_people(url)  # before the plain run too: both measure on the same database
                if with_template:
                    publish_template(url)
                measure(
                    measurement,
                    url,
                    SINGLE_TEMPLATED if with_template else SINGLE if size == 1 else batch(size),
                    args,
                    args.connections if size == 1 else args.batch_connections,
                    Db(db_path),
                    None if size == 1 else "accepted",
                    role in DISPATCHING,
                    proc,
                )
                if people:
                    # Run by run, alternating with the like-for-like plain job, so that neither row
                    # meets a larger database than the other.
                    people_row = Measurement(PEOPLE_NAME, server, 1)
                    for index in range(args.runs):
                        warmup = args.warmup if index == 0 else 0
                        one = argparse.Namespace(**{**vars(args), "runs": 1, "warmup": warmup})
                        for row, requests in ((peer_row, PEER_SINGLE), (people_row, USER_SINGLE)):
                            measure(row, url, requests, one, args.connections, Db(db_path), None, False, proc)
                if role in DISPATCHING:
                    queued = Db(db_path).count("SELECT count(*) FROM messages WHERE status IN ('queued','sending')")
                    measurement.notes.append(f"backlog (queued + sending) at the end: {queued:,}")
                if proc.proc is not None and proc.proc.poll() is not None:
                    measurement.notes.append(f"server exited early: {proc.output()[-500:]}")
            results.append(measurement)
            if people_row is not None:
                results.extend([peer_row, people_row])
    return results


# --- report -----------------------------------------------------------------------------------


def multi_process_line(gateway: list[Measurement]) -> list[str]:
    """Single-job accept while dispatching, every core against one process, when both were measured."""
    single = {m.server: m.rps for m in gateway if m.jobs_per_request == 1}
    one, auto = single.get(SERVER_NAMES["serve1"]), single.get(SERVER_NAMES["serve"])
    if not one or not auto:
        return []
    return [f"- single-job accept while dispatching, `gateway serve` (auto) vs `--processes 1`: **{auto / one:.2f} x**"]


def user_jobs_line(gateway: list[Measurement]) -> list[str]:
    """Jobs for a user_id (profile read at accept) against plain single-job accept of the same people
    (alternating runs), and against the plain row measured before them; same server."""
    people = next((m for m in gateway if m.name == PEOPLE_NAME), None)
    peer = next((m for m in gateway if m.name == PEER_NAME), None)
    plain = next((m for m in gateway if m.server.endswith("api") and m.name == "single job"), None)
    if people is None or not people.rps:
        return []
    lines = []
    for label, base in (("the same people with `to`, alternating runs", peer), ("the plain row", plain)):
        if base is None or not base.rps:
            continue
        ratio = people.rps / base.rps
        verdict = "met" if ratio >= 0.8 else "NOT met"
        lines.append(f"- single job for a `user_id` vs {label}, >= 0.8: **{ratio:.2f}** -> {verdict}")
        if base.cpu_ms and people.cpu_ms:
            lines.append(
                f"  - server CPU per request, plain / user_id: {base.cpu_ms:.3f} / {people.cpu_ms:.3f} ms"
                f" (**{base.cpu_ms / people.cpu_ms:.2f}**, the rate ratio a CPU-bound server would show)"
            )
    return lines


def template_line(single: Measurement | None, templated: Measurement | None) -> list[str]:
    """Single-job accept naming a template against plain content, the same launch and role."""
    if single is None or templated is None or not single.rps or not templated.rps:
        return []
    ratio = templated.rps / single.rps
    return [
        f"- single-job accept with a template >= 0.80 x plain content: **{ratio:.2f}** ->"
        f" {'met' if ratio >= 0.80 else 'NOT met'}"
    ]


def report(args: argparse.Namespace, baseline: Measurement, gateway: list[Measurement], command: str) -> str:
    base = baseline.rps or 0.0
    rows = []
    for m in [baseline, *gateway]:
        spread = f"{min(r.jobs_rate for r in m.runs):,.0f}-{max(r.jobs_rate for r in m.runs):,.0f}" if m.runs else ""
        ratio = (m.rps or 0) / base if m.jobs_per_request == 1 and base else None
        rows.append(
            [
                m.server,
                m.name,
                fmt(m.rps),
                f"{fmt(m.jps)} ({spread})",
                fmt(m.p50, 2),
                fmt(m.p99, 2),
                fmt(m.cpu_ms, 3) if m.cpu_ms is not None else "-",
                f"{ratio:.2f}" if ratio is not None else "-",
                fmt(m.dispatch_rate) if m.dispatch_rate is not None else "-",
                m.durable,
            ]
        )
    table = markdown_table(
        [
            "server",
            "request",
            "req/s",
            "jobs/s (min-max)",
            "p50 ms",
            "p99 ms",
            "server CPU ms/req",
            "single vs bare",
            "dispatched/s",
            "rows == acknowledged",
        ],
        rows,
    )
    single = next((m for m in gateway if m.server.endswith("api") and m.name == "single job"), None)
    templated = next((m for m in gateway if m.server.endswith("api") and m.name == TEMPLATED_NAME), None)
    batches = [m for m in gateway if m.server.endswith("api") and m.jobs_per_request > 1]
    ratio = (single.rps or 0) / base if single and base else 0.0
    best_batch = max((m.jps or 0 for m in batches), default=0.0)
    unexpected = sum(m.unexpected for m in [baseline, *gateway])
    lines = [
        *doc_header(
            "Accept throughput", "`bench/accept.py`; numbers are medians of the timed runs of one launch.", command
        ),
        f"- load generator: {load_tool()}"
        + (
            " (1 thread, closed loop, Lua script per request)"
            if load_tool() == "wrk"
            else " (aiohttp client in its own process)"
        )
        + f"; {args.connections} connections for single jobs, {args.batch_connections} for batches",
        "- pinning: "
        + (
            f"server on CPU {SERVER_CPU}, load generator on CPU {LOAD_CPU} (taskset)"
            if have_taskset()
            else "none (no taskset or one CPU)"
        ),
        f"- runs: {args.warmup:g} s warm-up, then {args.runs} x {args.seconds:g} s per row; each gateway row on a fresh"
        " SQLite file (WAL, synchronous=FULL, group commit default)",
        f"- gateway source: `{args.gateway_root}` ({source_revision(args.gateway_root)})",
        f"- load average before / after the bench: {args.load_before} / {load_average()}"
        " (other processes on the machine skew every row, the baseline included)",
        "- single-job mix: half the requests carry a unique Idempotency-Key, half none; batch items all carry a"
        " unique idempotency_key",
        "",
        table,
        "",
        "## Targets",
        "",
        f"- single-job accept >= 0.40 x bare handler: **{ratio:.2f}** -> {'met' if ratio >= 0.40 else 'NOT met'}",
        f"- batch accept >= 10,000 jobs/s on one core: **{best_batch:,.0f}** ->"
        f" {'met' if best_batch >= 10_000 else 'NOT met'}",
        *template_line(single, templated),
        *multi_process_line(gateway),
        *user_jobs_line(gateway),
        f"- unexpected answers or socket errors over all runs: {unexpected}",
        "",
    ]
    notes = [f"- {m.server}, {m.name}: {note}" for m in gateway for note in m.notes]
    if notes:
        lines += ["## Observations of this run", "", *notes, ""]
    lines += ["## Every run", ""]
    for m in [baseline, *gateway]:
        cells = "; ".join(
            f"{r.load.rate:,.0f} req/s {r.jobs_rate:,.0f} jobs/s"
            + (f" rows +{r.rows} (ack {r.jobs}, sent {r.load.sent_jobs})" if r.rows is not None else "")
            for r in m.runs
        )
        lines.append(f"- {m.server}, {m.name}: {cells}")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64, help="for single-job requests")
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--batch-sizes", default="100,1000")
    parser.add_argument("--roles", default="api,all", help="gateway roles to measure: api, all, serve1, serve")
    parser.add_argument(
        "--gateway-root",
        type=lambda p: Path(p).resolve(),
        default=ROOT,
        help="source tree of the gateway to run (default: this one); for A/B runs of a patched copy",
    )
    parser.add_argument(
        "--no-user-jobs", action="store_true", help="skip the user_id row (10,000 recipients imported first)"
    )
    parser.add_argument("--no-template", action="store_true", help="leave out the templated single-job row")
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOC.relative_to(ROOT)}")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0

    command = ".venv/bin/python bench/accept.py " + " ".join(sys.argv[1:])
    started = time.monotonic()
    args.load_before = load_average()
    tool = load_tool()
    print(f"load generator: {tool}; pinning: {'taskset' if have_taskset() else 'none'}", flush=True)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s]
    baseline = bench_baseline(args)
    roles = args.roles.split(",")
    gateway = bench_gateway(args, "api", [1, *sizes], templated=not args.no_template) if "api" in roles else []
    for role in ("all", "serve1", "serve"):
        if role in roles:
            gateway += bench_gateway(args, role, [1, max(sizes)] if sizes else [1])
    text = report(args, baseline, gateway, command.strip())
    print()
    print(text)
    print(f"bench took {time.monotonic() - started:.0f} s", flush=True)
    if not args.no_write:
        write_doc(DOC, text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    failed = [m for m in gateway if m.durable.startswith("FAILED")]
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(main())

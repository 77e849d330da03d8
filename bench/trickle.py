"""What a trickle costs against a backlog: CPU per delivered message of `gateway serve`, in one launch.

    .venv/bin/python bench/trickle.py [--rate 100] [--seconds 30] [--burst 10000] [--runs 3]
        [--configs sqlite,pg] [--gateway-root DIR] [--no-write]

Each run starts `gateway serve` as a user does (supervised: API processes on one port and worker
processes, sized from the cores, or --processes/--workers) on a fresh database, lets it settle, then

- trickle: offers --rate single-job `POST /v1/messages` per second, open loop (each request sent at
  its scheduled time whether or not earlier ones were answered), for --seconds, and waits until
  every job is delivered (receipt applied);
- drain: accepts a backlog of --burst jobs through `POST /v1/messages/batch` (1,000 per request,
  4 in flight) and waits until every one is delivered.

Each phase's CPU (user + system, from /proc) is summed over the supervisor and every child, per role
(API, worker, supervisor), and, on PostgreSQL, the server's processes and Redis, from the phase's
first request to its last delivery, then divided by the jobs it delivered: everything the message
cost, accept included, idle ticks of the phase included. Configurations:

- sqlite: the embedded default (`gateway serve`, SQLite file, memory State shared by the supervisor);
- pg: the same on PostgreSQL + Redis (started from tests/servers.py, fsync=off).

The sandbox answers in 1 ms and posts each receipt 200 ms after the send, as in bench/dispatch.py:
receipts that fall due together go in one request, so a backlog's come in batches and a trickle's one
by one (as a provider posts one status callback per message).

The floor: each run also offers the same open loop to a bare aiohttp handler (bench/accept.py's
baseline: parse the body, answer 202), and reports its CPU per request. A trickled message is at
least two requests to the API (its accept and its receipt), so twice that is what the gateway could
not go below even if everything behind its handlers were free. The durable floor: the same handler
that also inserts the body as a row of a SQLite table (WAL, synchronous=FULL, the gateway's setting)
and commits it before answering, on the loop's thread (no thread hop): what answering a request only
once its record is on disk costs at the least, as a 202 for an accept and a 200 for a receipt are;
with pg, also on PostgreSQL (one INSERT in its own transaction through asyncpg, the server's CPU
counted). --floors-only measures the floors alone. --library-free-floors adds the bare and the durable
(SQLite) floors on an asyncio Protocol instead of aiohttp: what no HTTP library can go below.
With --gateway-root DIR (a `git archive` of another tree, unpacked) every configuration also runs
with that source, alternating run by run, as "(x0)" rows: a before/after in the same launch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from common import (  # noqa: E402
    PYTHON,
    ServerProcess,
    doc_header,
    fmt,
    free_port,
    load_average,
    markdown_table,
    median,
    serve_bare,
    source_revision,
    temporary_directory,
    write_doc,
)
from dispatch import (  # noqa: E402
    API_KEY,
    UNDELIVERED,
    PostgresCounter,
    SqliteCounter,
    _fresh_database,
    base_env,
    cpu_seconds,
    descendants,
    flush_redis,
    job,
    pids_listening_on,
    preload,
)

DOC = ROOT / "docs" / "benchmarks" / "trickle.md"
ROLES = ("api", "worker", "callbacks", "supervisor", "postgres", "redis")


@dataclass
class Meter:
    """CPU seconds per role between `start` and `stop`."""

    pids: dict[int, str]
    before: dict[int, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.before = {pid: cpu_seconds(pid) for pid in self.pids}

    def stop(self) -> None:
        self.spent = dict.fromkeys(sorted(set(self.pids.values())), 0.0)
        for pid, role in self.pids.items():
            self.spent[role] += cpu_seconds(pid) - self.before.get(pid, 0.0)


@dataclass
class Phase:
    jobs: int = 0
    seconds: float | None = None  # first request -> last delivery
    cpu: dict[str, float] = field(default_factory=dict)
    lateness_p99_ms: float | None = None  # trickle: how far behind schedule requests were sent
    failure: str | None = None

    def ms_per_message(self, roles: tuple[str, ...] = ROLES) -> float | None:
        if self.failure or not self.jobs:
            return None
        return sum(self.cpu.get(r, 0.0) for r in roles) * 1000 / self.jobs


@dataclass
class Run:
    trickle: Phase = field(default_factory=Phase)
    drain: Phase = field(default_factory=Phase)
    idle_cpu_per_s: float | None = None  # every process, before any job: the cost of standing by

    @property
    def ratio(self) -> float | None:
        t, d = self.trickle.ms_per_message(), self.drain.ms_per_message()
        return t / d if t and d else None


async def offer(url: str, rate: float, seconds: float, tag: str) -> tuple[int, float]:
    """Single-job POSTs at `rate`/s on schedule; returns (jobs accepted, p99 lateness in ms)."""
    import aiohttp
    import orjson

    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    count = int(rate * seconds)
    late: list[float] = []
    accepted = 0
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def one(n: int, due: float) -> None:
            nonlocal accepted
            late.append(max(0.0, time.monotonic() - due))
            body = dict(job(n, tag))
            key = body.pop("idempotency_key")
            async with session.post(
                url + "/v1/messages", data=orjson.dumps(body), headers={"Idempotency-Key": str(key)}
            ) as response:
                if response.status == 202:
                    accepted += 1

        start = time.monotonic() + 0.05
        tasks = []
        for n in range(count):
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks)
    late.sort()
    return accepted, late[int(len(late) * 0.99) - 1] * 1000 if late else 0.0


def wait_delivered(counter: SqliteCounter | PostgresCounter, total: int, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        statuses = counter.statuses()
        if sum(statuses.values()) >= total and counter.count(UNDELIVERED) == 0:
            return None
        if time.monotonic() > deadline:
            return f"not delivered after {timeout:.0f} s: {statuses}"
        time.sleep(0.1)


def measure(
    meter: Meter, phase: Phase, work: Callable[[], int], counter: SqliteCounter | PostgresCounter, total: int
) -> None:
    meter.start()
    started = time.monotonic()
    phase.jobs = work()
    phase.failure = wait_delivered(counter, total, timeout=300)
    phase.seconds = time.monotonic() - started
    meter.stop()
    phase.cpu = meter.spent


def serve_argv(args: argparse.Namespace) -> list[str]:
    extra = []
    if args.processes:
        extra += ["--processes", args.processes]
    if args.workers:
        extra += ["--workers", args.workers]
    return [PYTHON, "-m", "gateway", "serve", *extra]


def gateway_env(
    database: str, tmp: Path, source: Path, pg: str | None, redis: str | None, name: str
) -> tuple[str, int, dict[str, str]]:
    """A fresh store for one run of `gateway serve` from `source`: its database URL, its port and its
    environment (SQLite in `tmp`; or a new PostgreSQL database called `name`_..., Redis emptied)."""
    if database == "sqlite":
        url = f"sqlite:///{tmp / 'gateway.db'}"
    else:
        assert pg is not None and redis is not None
        url = asyncio.run(_fresh_database(pg, f"{name}_{uuid.uuid4().hex[:10]}"))
        flush_redis(redis)
    port = free_port()
    env = {**base_env(tmp, url), "PYTHONPATH": str(source), "GATEWAY_PORT": str(port)}
    if database != "sqlite":
        env["GATEWAY_REDIS_URL"] = str(redis)
    return url, port, env


def server_pids(pg: str | None, redis: str | None) -> dict[int, str]:
    """The processes of the PostgreSQL and Redis servers at these URLs, by role."""
    pids: dict[int, str] = {}
    if pg is not None and redis is not None:
        pids |= {p: "postgres" for p in pids_listening_on(int(pg.rsplit(":", 1)[1].split("/")[0]))}
        pids |= {p: "redis" for p in pids_listening_on(int(redis.rsplit(":", 1)[1].split("/")[0]))}
    return pids


def one_run(args: argparse.Namespace, source: Path, database: str, pg: str | None, redis: str | None) -> Run:
    run = Run()
    with temporary_directory("bench-trickle-") as tmp:
        url, port, env = gateway_env(database, tmp, source, pg, redis, "trickle")
        server = ServerProcess(
            serve_argv(args), ready_url=f"http://127.0.0.1:{port}/readyz", env=env, cwd=tmp, ready_timeout=90
        )
        with server:
            assert server.proc is not None
            time.sleep(args.settle)
            pids = descendants(server.proc.pid) | (server_pids(pg, redis) if database != "sqlite" else {})
            counter: SqliteCounter | PostgresCounter = (
                SqliteCounter(tmp / "gateway.db") if database == "sqlite" else PostgresCounter(url)
            )
            try:
                meter = Meter(pids)
                meter.start()
                time.sleep(args.idle_seconds)
                meter.stop()
                run.idle_cpu_per_s = sum(meter.spent.values()) / args.idle_seconds
                base = f"http://127.0.0.1:{port}"
                tag = uuid.uuid4().hex[:8]

                def trickle() -> int:
                    accepted, late = asyncio.run(offer(base, args.rate, args.seconds, f"t{tag}"))
                    run.trickle.lateness_p99_ms = late
                    return accepted

                measure(meter, run.trickle, trickle, counter, int(args.rate * args.seconds))
                measure(
                    meter,
                    run.drain,
                    lambda: (preload(base, args.burst, f"d{tag}"), args.burst)[1],
                    counter,
                    int(args.rate * args.seconds) + args.burst,
                )
            finally:
                counter.close()
            if run.trickle.failure or run.drain.failure:
                tail = server.output()[-400:]
                run.trickle.failure = run.trickle.failure and run.trickle.failure + " | " + tail
                run.drain.failure = run.drain.failure and run.drain.failure + " | " + tail
    return run


BARE, DURABLE_SQLITE, DURABLE_PG = "a bare aiohttp", "the durable (SQLite)", "the durable (PostgreSQL)"
RAW, DURABLE_RAW = "a raw-protocol (no HTTP library)", "the durable raw-protocol (SQLite)"


def floor(args: argparse.Namespace, kind: str, pg: str | None) -> float:
    """CPU ms per request of a floor handler offered the trickle's open loop (on PostgreSQL, the
    server's processes counted too)."""
    port = free_port()
    with temporary_directory("bench-trickle-floor-") as tmp:
        if kind == BARE:
            argv = [PYTHON, str(HERE / "accept.py"), "--serve-baseline", str(port)]
        elif kind in (RAW, DURABLE_RAW):
            store = str(tmp / "floor.db") if kind == DURABLE_RAW else ""
            argv = [PYTHON, str(Path(__file__).resolve()), "--serve-raw-floor", str(port), store]
        else:
            store = str(tmp / "floor.db")
            if kind == DURABLE_PG:
                assert pg is not None
                store = asyncio.run(_fresh_database(pg, f"floor_{uuid.uuid4().hex[:10]}"))
            argv = [PYTHON, str(Path(__file__).resolve()), "--serve-durable-floor", str(port), store]
        with ServerProcess(argv, ready_url=f"http://127.0.0.1:{port}/healthz") as server:
            assert server.proc is not None
            time.sleep(args.settle)
            url = f"http://127.0.0.1:{port}"
            asyncio.run(offer(url, 10, 0.3, "warm"))  # a PostgreSQL handler connects at its first request
            pids = [server.proc.pid]
            if kind == DURABLE_PG:
                assert pg is not None
                pids += pids_listening_on(int(pg.rsplit(":", 1)[1].split("/")[0]))
            before = sum(cpu_seconds(p) for p in pids)
            accepted, _ = asyncio.run(offer(url, args.rate, args.seconds, "floor"))
            return (sum(cpu_seconds(p) for p in pids) - before) * 1000 / max(accepted, 1)


def sqlite_commit(store: str) -> Callable[[dict[str, Any], bytes], None]:
    """The durable floors' work on SQLite: a job's body committed as a row of a table in `store` (WAL,
    synchronous=FULL: the fsync inside the commit), on the caller's thread."""
    import sqlite3

    db = sqlite3.connect(store, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, recipient TEXT, body BLOB)")

    def commit(job: dict[str, Any], body: bytes) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO jobs VALUES (?, ?, ?)", (uuid.uuid4().hex, str(job.get("to")), body))
        db.execute("COMMIT")

    return commit


def serve_durable_floor(port: int, store: str) -> None:
    """Parse the body, commit it as a row, answer 202: on SQLite (WAL, synchronous=FULL: fsync at the
    commit, on the loop's thread) or on PostgreSQL (one INSERT in its own transaction, asyncpg)."""
    import asyncpg
    import orjson
    from aiohttp import web

    answer = orjson.dumps({"status": "queued"})
    create = "CREATE TABLE jobs (id TEXT PRIMARY KEY, recipient TEXT, body BYTEA)"
    if store.startswith("postgresql://"):
        connection: list[asyncpg.Connection] = []

        async def accept(request: web.Request) -> web.Response:
            body = await request.read()
            job = orjson.loads(body)
            if not connection:
                connection.append(await asyncpg.connect(store))
                await connection[0].execute(create)
            await connection[0].execute(
                "INSERT INTO jobs VALUES ($1, $2, $3)", uuid.uuid4().hex, str(job.get("to")), body
            )
            return web.Response(status=202, body=answer, content_type="application/json")

    else:
        commit = sqlite_commit(store)

        async def accept(request: web.Request) -> web.Response:
            body = await request.read()
            commit(orjson.loads(body), body)
            return web.Response(status=202, body=answer, content_type="application/json")

    serve_bare(port, "POST", "/v1/messages", accept)


def serve_raw_floor(port: int, store: str) -> None:
    """What no HTTP library can go below: an asyncio Protocol on uvloop that finds the head's end and
    Content-Length, parses the JSON body and answers 202 (a 200 to GET /healthz) on a kept-alive
    connection; with `store`, after committing the body as a row as serve_durable_floor does on
    SQLite (WAL, synchronous=FULL, on the loop's thread)."""
    import orjson
    import uvloop

    commit = sqlite_commit(store) if store else None
    queued = orjson.dumps({"status": "queued"})

    def answer(status: bytes, body: bytes) -> bytes:
        head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        return head % (status, len(body)) + body

    class Http(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport  # uvloop's TCPTransport, not an asyncio.Transport subclass
            self.pending = b""

        def data_received(self, data: bytes) -> None:
            self.pending += data
            while (end := self.pending.find(b"\r\n\r\n")) >= 0:
                head = self.pending[:end].split(b"\r\n")
                length = next(
                    (int(v) for k, _, v in (h.partition(b":") for h in head[1:]) if k.lower() == b"content-length"), 0
                )
                if len(self.pending) < end + 4 + length:
                    return
                body, self.pending = self.pending[end + 4 : end + 4 + length], self.pending[end + 4 + length :]
                if head[0].startswith(b"GET"):
                    self.transport.write(answer(b"200 OK", b'{"status":"ok"}'))
                    continue
                job = orjson.loads(body)
                if commit is not None:
                    commit(job, body)
                self.transport.write(answer(b"202 Accepted", queued))

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())


@dataclass
class Config:
    name: str
    database: str
    source: Path
    runs: list[Run] = field(default_factory=list)

    def med(self, get: Callable[[Run], float | None]) -> float | None:
        return median([get(r) for r in self.runs])


def report(args: argparse.Namespace, configs: list[Config], floors: dict[str, list[float]], command: str) -> str:
    header = [
        "configuration",
        "runs",
        "trickle CPU ms/msg",
        "drain CPU ms/msg",
        "trickle / drain",
        "idle CPU (cores)",
        "trickle p99 send lateness ms",
        "drain msg/s",
    ]
    rows = []
    for c in configs:
        rows.append(
            [
                c.name,
                str(len(c.runs)),
                fmt(c.med(lambda r: r.trickle.ms_per_message()), 3),
                fmt(c.med(lambda r: r.drain.ms_per_message()), 3),
                fmt(c.med(lambda r: r.ratio), 2),
                fmt(c.med(lambda r: r.idle_cpu_per_s), 3),
                fmt(c.med(lambda r: r.trickle.lateness_p99_ms), 1),
                fmt(
                    c.med(lambda r: r.drain.jobs / r.drain.seconds if r.drain.seconds and not r.drain.failure else None)
                ),
            ]
        )
    roles = []
    for c in configs:
        for phase in ("trickle", "drain"):
            roles.append(
                [
                    f"{c.name}, {phase}",
                    *(
                        fmt(c.med(lambda r, role=role, phase=phase: getattr(r, phase).ms_per_message((role,))), 3)
                        for role in ROLES
                    ),
                ]
            )
    lines = [
        *doc_header("Trickle against backlog", "`bench/trickle.py`; medians of the runs of one launch.", command),
        f"- layout: `{' '.join(serve_argv(args)[2:])}` (supervised), sandbox latency 1 ms, receipts on;"
        f" trickle {args.rate:g} msg/s open loop for {args.seconds:g} s (single-job requests); drain"
        f" {args.burst:,} jobs in batches of 1,000",
        "- CPU: every process of the gateway (and PostgreSQL's and Redis's on pg) from a phase's first"
        " request to its last delivery, per delivered message; accept included",
        "- gateway source: " + "; ".join(sorted({f"`{c.source}` ({source_revision(c.source)})" for c in configs})),
        f"- load average before / after: {args.load_before} / {load_average()}",
        "",
        markdown_table(header, rows),
        "",
        *(
            f"- Floor, {kind} handler offered the same open loop ({args.rate:g}/s for {args.seconds:g} s):"
            f" {fmt(median(spent), 3)} ms of CPU per request (median of {len(spent)}:"
            f" {', '.join(fmt(f, 3) for f in spent)}); a trickled message is at least two such requests (accept"
            f" and receipt): {fmt(2 * median(spent) if spent else None, 3)} ms."
            for kind, spent in floors.items()
        ),
        "",
        "CPU ms per delivered message by role (medians):",
        "",
        markdown_table(["configuration, phase", *ROLES], roles),
        "",
        "## Every run",
        "",
    ]
    for c in configs:
        for i, r in enumerate(c.runs):
            lines.append(
                f"- {c.name}, run {i + 1}: idle {fmt(r.idle_cpu_per_s, 3)} cores; trickle {r.trickle.jobs} jobs in"
                f" {fmt(r.trickle.seconds, 1)} s, CPU { ({k: round(v, 2) for k, v in r.trickle.cpu.items()}) };"
                f" drain {r.drain.jobs} jobs in {fmt(r.drain.seconds, 1)} s, CPU"
                f" { ({k: round(v, 2) for k, v in r.drain.cpu.items()}) }"
                + (f"; FAILED: {r.trickle.failure or r.drain.failure}" if r.trickle.failure or r.drain.failure else "")
            )
    lines.append("")
    return "\n".join(lines)


@contextlib.contextmanager
def servers(wanted: list[str]) -> Iterator[tuple[str | None, str | None]]:
    if "pg" not in wanted:
        yield None, None
        return
    from tests.servers import postgres_server, redis_server

    with postgres_server() as pg, redis_server() as rd:
        yield pg, rd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--configs", default="sqlite,pg", help="any of sqlite, pg")
    parser.add_argument("--processes", default=None, help="passed to gateway serve (default: auto)")
    parser.add_argument("--workers", default=None, help="passed to gateway serve (default: auto)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after start before measuring")
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--gateway-root", type=Path, default=None, help="a baseline source, run in the same launch")
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOC.relative_to(ROOT)}")
    parser.add_argument("--serve-durable-floor", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--floors-only", action="store_true", help="measure the floors alone, no gateway")
    parser.add_argument("--serve-raw-floor", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--library-free-floors",
        action="store_true",
        help="the floors without any HTTP library too (a raw asyncio Protocol, bare and durable on SQLite)",
    )
    args = parser.parse_args()
    if args.serve_raw_floor:
        serve_raw_floor(int(args.serve_raw_floor[0]), args.serve_raw_floor[1])
        return 0
    if args.serve_durable_floor:
        serve_durable_floor(int(args.serve_durable_floor[0]), args.serve_durable_floor[1])
        return 0
    args.load_before = load_average()
    command = ".venv/bin/python bench/trickle.py " + " ".join(sys.argv[1:])
    wanted = args.configs.split(",")
    sources = [("", ROOT)] + ([("0", args.gateway_root.resolve())] if args.gateway_root else [])
    configs: list[Config] = []
    floors: dict[str, list[float]] = {BARE: [], DURABLE_SQLITE: []}
    if args.library_free_floors:
        floors |= {RAW: [], DURABLE_RAW: []}
    with servers(wanted) as (pg, rd):
        for database in wanted:
            if database == "pg" and (pg is None or rd is None):
                print("no PostgreSQL or Redis here: skipping pg", flush=True)
                continue
            label = "SQLite" if database == "sqlite" else "PostgreSQL + Redis"
            pair = [Config(f"({database}{tag}) {label}", database, source) for tag, source in sources]
            for i in range(args.runs):
                if database == "pg":
                    floors.setdefault(DURABLE_PG, [])
                for kind, spent in floors.items():
                    if len(spent) < args.runs:
                        spent.append(floor(args, kind, pg))
                        print(f"  {kind} handler run {len(spent)}: {fmt(spent[-1], 3)} ms/request", flush=True)
                if args.floors_only:
                    continue
                for c in pair[:: -1 if i % 2 else 1]:
                    run = one_run(args, c.source, database, pg, rd)
                    print(
                        f"  {c.name} run {i + 1}: trickle {fmt(run.trickle.ms_per_message(), 3)} ms/msg, drain"
                        f" {fmt(run.drain.ms_per_message(), 3)} ms/msg, load {load_average()}"
                        + (f" FAILED {run.trickle.failure or run.drain.failure}" if run.ratio is None else ""),
                        flush=True,
                    )
                    c.runs.append(run)
            configs.extend(pair if not args.floors_only else [])
    text = report(args, configs, floors, command)
    print()
    print(text)
    if not args.no_write:
        write_doc(DOC, text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 1 if any(r.ratio is None for c in configs for r in c.runs) else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(main())

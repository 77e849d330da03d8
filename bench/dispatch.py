"""End-to-end dispatch throughput through the sandbox provider (receipts on), in one launch.

    .venv/bin/python bench/dispatch.py [--jobs 20000] [--runs 1] [--baseline-seconds 4] [--no-write]

Each run preloads --jobs jobs through `POST /v1/messages/batch` (1000 per request) into a process
that does not dispatch (`gateway serve --role api`), so that only dispatch is measured, then starts
the dispatching process(es) and polls the `messages` table every 50 ms until

- handed off: no row is `queued` or `sending` (the sandbox took every job), and
- delivered:  no row is `queued`, `sending` or `sent` (every receipt came back and was applied).

Rates are jobs / seconds, timed from the launch of the dispatching process(es) (start-up included)
and, as "steady", from the first poll that saw a job leave `queued` (start-up excluded).

Configurations (sandbox latency 1 ms, `GATEWAY_SANDBOX__LATENCY_MS=1`, receipts on):

a. embedded default: SQLite; the preload API process is stopped, then `gateway serve` (role all,
   one process: API + worker, receipts posted to itself) on the same file;
b. PostgreSQL + Redis (started from tests/servers.py, fsync=off), 1 `--role api` process (preload,
   then takes the receipts) + 1 `--role worker` process;
c. the same with 2 worker processes.

With two CPUs: the dispatching process of (a) and the worker of (b) on CPU 0, the API of (b)/(c) on
CPU 1, the two workers of (c) on CPU 0 and CPU 1; PostgreSQL and Redis unpinned. CPU seconds of
every process (from /proc) are reported, so "messages per worker CPU-second" does not depend on
what else the two CPUs had to carry. The same-launch baseline is bench/accept.py's bare aiohttp
POST handler under wrk, so the figures can be read as ratios against it.

With --gateway-root DIR (e.g. a `git archive` of main, unpacked) every configuration also runs with
that source, alternating run by run, as "(x0)" rows: a before/after in the same launch. With
--statements the bench starts its own PostgreSQL with pg_stat_statements loaded, resets it once the
preload is done and counts the statements the dispatch ran (workers and the API taking receipts,
the bench's own polling left out), per delivered message; those that took the most execution time go under "Every run".
It also reads the WAL the dispatch wrote (pg_stat_wal: records, bytes, full-page images per delivered
message) and, with pg_walinspect, which table or index each record went to (by its first block).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
import threading
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
    have_taskset,
    load_average,
    load_tool,
    markdown_table,
    median,
    run_load,
    source_revision,
    temporary_directory,
    write_doc,
)

DOC = ROOT / "docs" / "benchmarks" / "dispatch.md"
API_KEY = "bench-key-0123456789abcdef"
BATCH = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PENDING = "('queued', 'sending')"
UNDELIVERED = "('queued', 'sending', 'sent')"


def job(n: int, tag: str) -> dict[str, object]:
    """~300 B, the recall-campaign job of bench/accept.py, each with its own key and recipient."""
    return {
        "channel": "sms",
        "to": f"+86138{(7919 + n * 104729) % 100_000_000:08d}",
        "content": {
            "text": "[Shop] Hi Lee, your 20% coupon expires on Sunday. Open the app to use it before it is gone."
            " Reply T to opt out."
        },
        "category": "marketing",
        "campaign": "recall-2024-06",
        "variant": "b",
        "user_id": f"u-{tag}-{n}",
        "metadata": {"segment": "dormant-30d"},
        "idempotency_key": f"d-{tag}-{n}",
    }


# --- processes --------------------------------------------------------------------------------


def gateway_argv(role: str) -> list[str]:
    script = Path(PYTHON).with_name("gateway")
    if script.exists():
        return [str(script), "serve", "--role", role]
    return [PYTHON, "-m", "gateway", "serve", "--role", role]


def supervised_argv(args: argparse.Namespace) -> list[str]:
    """`gateway serve` as a user starts it (supervised), with --processes / --workers if given."""
    argv = gateway_argv("all")[:-2]
    for flag, value in (("--processes", args.processes), ("--workers", args.workers)):
        if value not in (None, "", "auto"):
            argv += [flag, value]
    return argv


def gateway(
    role: str, env: dict[str, str], cwd: Path, cpus: str | None, port: int | None = None, argv: list[str] | None = None
) -> ServerProcess:
    port = port or free_port()
    return ServerProcess(
        argv or gateway_argv(role),
        ready_url=f"http://127.0.0.1:{port}/readyz",
        env={**env, "GATEWAY_PORT": str(port)},
        cwd=cwd,
        cpus=cpus if have_taskset() else None,
        ready_timeout=60,
    )


def base_env(tmp: Path, database_url: str) -> dict[str, str]:
    for name in ("GATEWAY_CONFIG", "GATEWAY_REDIS_URL", "GATEWAY_LIMITS"):
        os.environ.pop(name, None)
    return {
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_API_KEY": API_KEY,
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_SANDBOX__LATENCY_MS": "1",
        # marketing may be sent all day (the default window, 08:00-20:00 at the recipient, would defer
        # every job of a run made in the evening in China)
        "GATEWAY_LIMITS": '{"quiet_hours": {"marketing": "00:00-24:00"}}',
        "GATEWAY_SANDBOX__LEDGER_PATH": str(tmp / "sandbox-ledger.ndjson"),
        "PYTHONPATH": str(ROOT),
    }


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    return 0.0


def peak_rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    return None


def descendants(root: int) -> dict[int, str]:
    """A process and every process under it, each with its role (`--role X` on its command line;
    the supervisor, or a process started with no role, is "supervisor")."""
    parents: dict[int, int] = {}
    argv: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv[int(entry.name)] = (entry / "cmdline").read_bytes()
    found = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    roles = {}
    for pid in found:
        words = argv.get(pid, b"").split(b"\0")
        roles[pid] = words[words.index(b"--role") + 1].decode() if b"--role" in words else "supervisor"
    return roles


def pids_listening_on(port: int) -> list[int]:
    """The process whose command line carries `port` (postgres -p PORT, redis --port PORT) and its children."""
    roots, parents = [], {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parents[int(entry.name)] = ppid
            name = argv[0].split(b" ")[0].split(b"/")[-1] if argv else b""
            # redis-server rewrites its title to "redis-server 127.0.0.1:PORT"
            words = b" ".join(argv).replace(b":", b" ").split()
            if name in (b"postgres", b"redis-server") and str(port).encode() in words:
                roots.append(int(entry.name))
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return sorted(found)


# --- counting ---------------------------------------------------------------------------------


class SqliteCounter:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, timeout=30)

    def count(self, where: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM messages WHERE status IN {where}").fetchone()[0])

    def statuses(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall())

    def close(self) -> None:
        self.conn.close()


class PostgresCounter:
    def __init__(self, url: str) -> None:
        import asyncpg

        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(url))
        # The bench's own backend: its counts (two per 50 ms poll, each over the rows still pending)
        # are PostgreSQL CPU that no deployment spends, so they are taken out of the gateway's figure.
        self.backend_pid: int = self.conn.get_server_pid()

    def count(self, where: str) -> int:
        sql = f"SELECT count(*) FROM messages WHERE status IN {where}"
        return int(self.loop.run_until_complete(self.conn.fetchval(sql)))

    def statuses(self) -> dict[str, int]:
        rows = self.loop.run_until_complete(self.conn.fetch("SELECT status, count(*) FROM messages GROUP BY status"))
        return {r[0]: r[1] for r in rows}

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


# --- preload ----------------------------------------------------------------------------------


def preload(url: str, jobs: int, tag: str) -> float:
    """Queue `jobs` jobs through the batch endpoint (4 requests in flight); returns the seconds it took."""
    import aiohttp
    import orjson

    async def go() -> None:
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        chunks = [range(i, min(i + BATCH, jobs)) for i in range(0, jobs, BATCH)]
        queue = list(reversed(chunks))
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:

            async def sender() -> None:
                while queue:
                    chunk = queue.pop()
                    body = orjson.dumps({"messages": [job(n, tag) for n in chunk]})
                    async with session.post(url + "/v1/messages/batch", data=body) as response:
                        answer = await response.json()
                        assert response.status == 200, answer
                        bad = [r for r in answer["results"] if r["status"] != 202]
                        assert not bad, bad[:3]

            await asyncio.gather(*(sender() for _ in range(4)))

    started = time.monotonic()
    asyncio.run(go())
    return time.monotonic() - started


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    jobs: int
    preload_s: float
    first_s: float | None = None  # launch -> first job left `queued`
    ready_s: float | None = None  # launch -> every dispatcher answered /readyz
    handoff_s: float | None = None  # launch -> nothing queued/sending
    delivered_s: float | None = None  # launch -> nothing queued/sending/sent
    worker_cpu: list[float] = field(default_factory=list)
    api_cpu: float | None = None
    pg_cpu: float | None = None  # the gateway's backends and PostgreSQL's own processes, the poller's left out
    poller_cpu: float | None = None  # PostgreSQL CPU of the bench's own polling backend
    redis_cpu: float | None = None
    supervisor_cpu: float = 0.0  # supervised layout: the supervisor (its State server included)
    ready_cpu: dict[int, float] = field(default_factory=dict)  # supervised: each process's CPU once ready
    worker_rss_mb: list[float] = field(default_factory=list)  # peak RSS (VmHWM) of each dispatcher
    worker_rss_start_mb: list[float] = field(default_factory=list)  # RSS when it first answered /readyz
    statuses: dict[str, int] = field(default_factory=dict)
    failure: str | None = None
    statements: int | None = None  # pg_stat_statements calls during the dispatch (--statements)
    transaction_statements: int | None = None  # of which BEGIN / COMMIT / ROLLBACK
    top_statements: list[tuple[int, float, str]] = field(default_factory=list)  # calls, exec ms, query
    wal_records: int | None = None  # pg_stat_wal during the dispatch (--statements)
    wal_fpi: int | None = None
    wal_bytes: int | None = None
    wal_start: str | None = None
    wal_by_relation: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def statements_per_message(self) -> float | None:
        return self.statements / self.jobs if self.statements is not None else None

    def cpu_ms_per_message(self, seconds: float | None) -> float | None:
        return seconds * 1000 / self.jobs if seconds is not None else None

    @property
    def system_cpu_s(self) -> float | None:
        parts = [sum(self.worker_cpu) or None, self.api_cpu, self.pg_cpu, self.redis_cpu]
        return None if any(p is None for p in parts) else sum(p or 0.0 for p in parts) + self.supervisor_cpu

    def rate(self, seconds: float | None) -> float | None:
        return self.jobs / seconds if seconds else None

    @property
    def handoff_rate(self) -> float | None:
        return self.rate(self.handoff_s)

    @property
    def delivered_rate(self) -> float | None:
        return self.rate(self.delivered_s)

    @property
    def steady_delivered_rate(self) -> float | None:
        if self.delivered_s is None or self.first_s is None:
            return None
        return self.rate(self.delivered_s - self.first_s)

    @property
    def per_worker_cpu_s(self) -> float | None:
        total = sum(self.worker_cpu)
        return self.jobs / total if total else None


def time_dispatch(  # noqa: C901 - one measured scenario, step by step, as the table reports it
    run: Run,
    counter: SqliteCounter | PostgresCounter,
    dispatchers: list[ServerProcess],
    timeout: float,
    others: Callable[[], None] = lambda: None,
) -> None:
    """Launch the dispatchers (in threads: start() blocks until /readyz) and poll the table."""
    ready: list[float] = []
    errors: list[str] = []

    def start(process: ServerProcess) -> None:
        try:
            process.start()
            ready.append(time.monotonic())
            assert process.proc is not None
            roles = descendants(process.proc.pid)
            if len(roles) > 1:  # supervised: its start-up (imports, schema, children) is not dispatch work
                run.ready_cpu.update({pid: cpu_seconds(pid) for pid in roles})
            rss = rss_mb(process.proc.pid)
            if rss is not None:
                run.worker_rss_start_mb.append(rss)
        except Exception as exc:  # noqa: BLE001 - a failed run is reported in the table, the others go on
            errors.append(str(exc)[-500:])

    launched = time.monotonic()
    threads = [threading.Thread(target=start, args=(p,), daemon=True) for p in dispatchers]
    for t in threads:
        t.start()
    others()
    last_pending, last_change = None, time.monotonic()
    was_ready = False
    while True:
        now = time.monotonic()
        if errors:
            run.failure = errors[0]
            break
        pending = counter.count(PENDING)
        if run.first_s is None and pending < run.jobs:
            run.first_s = now - launched
        if pending == 0 and run.handoff_s is None:
            run.handoff_s = now - launched
        if pending == 0 and counter.count(UNDELIVERED) == 0:
            run.delivered_s = now - launched
            break
        undelivered = counter.count(UNDELIVERED)
        if undelivered != last_pending or (len(ready) == len(dispatchers) and not was_ready):
            last_pending, last_change = undelivered, now  # (a stall is counted from readiness at the earliest)
        was_ready = len(ready) == len(dispatchers)
        # Before every dispatcher is ready (a supervised start on a loaded machine can take half a
        # minute), nothing moving is no stall.
        if now - last_change > (30 if len(ready) == len(dispatchers) else 120) or now - launched > timeout:
            run.failure = f"stalled: {undelivered} not delivered after {now - launched:.0f} s"
            break
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=5)
    if len(ready) == len(dispatchers):
        run.ready_s = max(ready) - launched
    for process in dispatchers:
        if process.proc is not None and process.proc.poll() is None:
            roles = descendants(process.proc.pid)
            if len(roles) == 1:
                run.worker_cpu.append(cpu_seconds(process.proc.pid))
            else:  # supervised: the children by role, from the moment the gateway answered /readyz

                def spent(pid: int) -> float:
                    return cpu_seconds(pid) - run.ready_cpu.get(pid, 0.0)

                run.worker_cpu += [spent(pid) for pid, role in roles.items() if role == "worker"]
                run.api_cpu = (run.api_cpu or 0.0) + sum(spent(pid) for pid, role in roles.items() if role == "api")
                run.supervisor_cpu += sum(spent(pid) for pid, role in roles.items() if role == "supervisor")
            rss = peak_rss_mb(process.proc.pid)
            if rss is not None:
                run.worker_rss_mb.append(rss)
    run.statuses = counter.statuses()


def run_sqlite(args: argparse.Namespace, index: int, source: Path) -> Run:
    with temporary_directory("bench-dispatch-") as tmp:
        db = tmp / "gateway.db"
        env = {**base_env(tmp, f"sqlite:///{db}"), "PYTHONPATH": str(source)}
        with gateway("api", env, tmp, "1") as api:
            preload_s = preload(api.ready_url.rsplit("/", 1)[0], args.jobs, f"a{index}{uuid.uuid4().hex[:6]}")
        run = Run(args.jobs, preload_s)
        counter = SqliteCounter(db)
        supervised = args.processes is not None or args.workers is not None
        # Supervised, it sizes itself from the CPUs it may use: not pinned.
        embedded = (
            gateway("all", env, tmp, None, argv=supervised_argv(args)) if supervised else gateway("all", env, tmp, "0")
        )
        try:
            time_dispatch(run, counter, [embedded], args.timeout)
        finally:
            embedded.stop()
            counter.close()
            if run.failure:
                run.failure += " | " + embedded.output()[-300:]
        return run


async def _fresh_database(admin_url: str, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()


def postgres_cpu(port: int, before: dict[int, float], poller: int) -> tuple[float, float]:
    """PostgreSQL's CPU since `before`: the gateway's share, and the bench's polling backend's."""
    spent = {p: cpu_seconds(p) - before.get(p, 0.0) for p in pids_listening_on(port)}
    return sum(cpu for p, cpu in spent.items() if p != poller), spent.get(poller, 0.0)


def run_postgres(args: argparse.Namespace, index: int, workers: int, pg_url: str, redis_url: str, source: Path) -> Run:
    with temporary_directory("bench-dispatch-") as tmp:
        name = f"bench_{workers}w_{index}_{uuid.uuid4().hex[:6]}"
        url = asyncio.run(_fresh_database(pg_url, name))
        flush_redis(redis_url)
        env = {**base_env(tmp, url), "GATEWAY_REDIS_URL": redis_url, "PYTHONPATH": str(source)}
        api_port = free_port()
        env["GATEWAY_SANDBOX__RECEIPT_URL"] = f"http://127.0.0.1:{api_port}/v1/receipts/sandbox"
        pg_port = int(pg_url.rsplit(":", 1)[1].split("/")[0])
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        with gateway("api", env, tmp, "1", port=api_port) as api:
            preload_s = preload(f"http://127.0.0.1:{api_port}", args.jobs, f"p{workers}{index}{uuid.uuid4().hex[:6]}")
            run = Run(args.jobs, preload_s)
            assert api.proc is not None
            api_before = cpu_seconds(api.proc.pid)
            pg_pids, redis_pids = pids_listening_on(pg_port), pids_listening_on(redis_port)
            pg_before = {p: cpu_seconds(p) for p in pg_pids}
            redis_before = sum(cpu_seconds(p) for p in redis_pids)
            counter = PostgresCounter(url)
            dispatchers = [gateway("worker", env, tmp, str(i % 2)) for i in range(workers)]
            if args.statements:
                run.wal_start = asyncio.run(reset_statements(pg_url))
            try:
                time_dispatch(run, counter, dispatchers, args.timeout)
                run.api_cpu = cpu_seconds(api.proc.pid) - api_before
                # Backends that came and went during the run are not counted; the pools keep theirs open.
                run.pg_cpu, run.poller_cpu = postgres_cpu(pg_port, pg_before, counter.backend_pid)
                run.redis_cpu = sum(cpu_seconds(p) for p in redis_pids) - redis_before
                if args.statements:  # after the CPU is read: reading the WAL back costs PostgreSQL CPU
                    asyncio.run(count_statements(pg_url, name, run))
            finally:
                for d in dispatchers:
                    if run.failure:
                        run.failure += " | " + d.output()[-300:]
                    d.stop()
                counter.close()
        return run


def run_postgres_supervised(args: argparse.Namespace, index: int, pg_url: str, redis_url: str, source: Path) -> Run:
    """Preloaded through a `--role api` process that then stops; `gateway serve` (supervised, with
    --processes/--workers) dispatches and takes the receipts on the same port."""
    with temporary_directory("bench-dispatch-") as tmp:
        name = f"bench_sup_{index}_{uuid.uuid4().hex[:6]}"
        url = asyncio.run(_fresh_database(pg_url, name))
        flush_redis(redis_url)
        env = {**base_env(tmp, url), "GATEWAY_REDIS_URL": redis_url, "PYTHONPATH": str(source)}
        api_port = free_port()
        pg_port = int(pg_url.rsplit(":", 1)[1].split("/")[0])
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        with gateway("api", env, tmp, "1", port=api_port):
            preload_s = preload(f"http://127.0.0.1:{api_port}", args.jobs, f"s{index}{uuid.uuid4().hex[:6]}")
        run = Run(args.jobs, preload_s)
        pg_pids, redis_pids = pids_listening_on(pg_port), pids_listening_on(redis_port)
        pg_before = {p: cpu_seconds(p) for p in pg_pids}
        redis_before = sum(cpu_seconds(p) for p in redis_pids)
        counter = PostgresCounter(url)
        served = gateway("all", env, tmp, None, port=api_port, argv=supervised_argv(args))
        if args.statements:
            run.wal_start = asyncio.run(reset_statements(pg_url))
        try:
            time_dispatch(run, counter, [served], args.timeout)
            # Backends opened by the children are counted whole (their connection set-up included).
            run.pg_cpu, run.poller_cpu = postgres_cpu(pg_port, pg_before, counter.backend_pid)
            run.redis_cpu = sum(cpu_seconds(p) for p in redis_pids) - redis_before
            if args.statements:  # after the CPU is read: reading the WAL back costs PostgreSQL CPU
                asyncio.run(count_statements(pg_url, name, run))
        finally:
            if run.failure:
                run.failure += " | " + served.output()[-300:]
            served.stop()
            counter.close()
        return run


def supervised_postgres(args: argparse.Namespace, sources: list[tuple[str, Path]], layout: str) -> list[Config]:
    pair = [Config(f"(s{tag}) PostgreSQL + Redis, `{layout}`", 1, source) for tag, source in sources]
    with servers(args.statements) as (pg, rd):
        if pg is None or rd is None:
            print("no PostgreSQL or Redis binaries here: skipping (s)", flush=True)
            return []
        for i in range(args.runs):
            for c in pair[:: -1 if i % 2 else 1]:
                run = run_postgres_supervised(args, i, pg, rd, c.source)
                print(f"  {c.name} run {i + 1}: {run}", flush=True)
                c.runs.append(run)
    return pair


# --- statements (pg_stat_statements) ----------------------------------------------------------

# The bench's own polling (PostgresCounter) and these queries are not the gateway's work.
_BENCH_QUERIES = ("FROM messages WHERE status IN", "FROM messages GROUP BY status", "pg_stat_statements")


async def enable_statements(server: Any) -> None:
    """Load pg_stat_statements into the bench's own server (a restart, same port and data)."""
    import asyncpg

    conn = await asyncpg.connect(server.url)
    await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    await conn.close()
    server.stop()
    server.start()
    conn = await asyncpg.connect(server.url)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await conn.close()


async def reset_statements(admin_url: str) -> str:
    """Returns the WAL position the dispatch starts from."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    await conn.execute("SELECT pg_stat_statements_reset()")
    await conn.execute("SELECT pg_stat_reset_shared('wal')")
    start = str(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
    await conn.close()
    return start


async def count_statements(admin_url: str, database: str, run: Run) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    rows = await conn.fetch(
        "SELECT calls, total_exec_time, query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = $1 ORDER BY total_exec_time DESC",
        database,
    )
    # The whole server's WAL since the reset: the bench's own polling reads and writes none.
    wal = await conn.fetchrow("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal")
    await conn.close()
    run.wal_records, run.wal_fpi, run.wal_bytes = int(wal["wal_records"]), int(wal["wal_fpi"]), int(wal["wal_bytes"])
    ours = [(int(r["calls"]), float(r["total_exec_time"]), " ".join(r["query"].split())) for r in rows]
    ours = [(calls, ms, query) for calls, ms, query in ours if not any(q in query for q in _BENCH_QUERIES)]
    run.statements = sum(calls for calls, _, _ in ours)
    run.transaction_statements = sum(
        calls for calls, _, query in ours if query.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))
    )
    run.top_statements = [(calls, ms, query[:110]) for calls, ms, query in ours[:8]]
    if run.wal_start is not None:
        run.wal_by_relation = await wal_by_relation(admin_url.rsplit("/", 1)[0] + "/" + database, run.wal_start)


async def wal_by_relation(database_url: str, start: str) -> list[tuple[str, int, int]]:
    """(relation, records, bytes) of the WAL written since `start`, by the relation of each record's
    first block (pg_walinspect): which tables and indexes a delivered message's writes went to."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        rows = await conn.fetch(
            "SELECT substring(block_ref from 'rel [0-9]+/[0-9]+/([0-9]+)')::oid AS node,"
            " count(*) AS records, sum(record_length) AS bytes"
            " FROM pg_get_wal_records_info($1::text::pg_lsn, pg_current_wal_lsn()) GROUP BY 1",
            start,
        )
        names = dict(await conn.fetch("SELECT relfilenode, relname FROM pg_class WHERE relfilenode <> 0"))
    finally:
        await conn.close()
    merged: dict[str, tuple[int, int]] = {}
    for r in rows:
        name = names.get(r["node"], "(no block: commits, other databases)" if r["node"] is None else "(other)")
        records, size = merged.get(name, (0, 0))
        merged[name] = (records + int(r["records"]), size + int(r["bytes"]))
    return sorted(((n, r, b) for n, (r, b) in merged.items()), key=lambda x: -x[1])


# --- baseline ---------------------------------------------------------------------------------


def baseline(args: argparse.Namespace) -> float | None:
    from accept import SINGLE

    port = free_port()
    argv = [PYTHON, str(HERE / "accept.py"), "--serve-baseline", str(port)]
    with ServerProcess(argv, ready_url=f"http://127.0.0.1:{port}/healthz", cpus="0"):
        run_load(f"http://127.0.0.1:{port}", SINGLE, seconds=1, connections=64, run_id="bw", cpus="1")  # warm-up
        result = run_load(
            f"http://127.0.0.1:{port}",
            SINGLE,
            seconds=args.baseline_seconds,
            connections=64,
            run_id=f"b{uuid.uuid4().hex[:6]}",
            cpus="1",
        )
    print(f"  baseline: {result.rate:,.0f} req/s, statuses {result.statuses}, errors {result.errors}", flush=True)
    return result.rate


# --- report -----------------------------------------------------------------------------------


@dataclass
class Config:
    name: str
    workers: int
    source: Path = ROOT
    runs: list[Run] = field(default_factory=list)

    def med(self, get: Callable[[Run], float | None]) -> float | None:
        return median([get(r) for r in self.runs if r.failure is None])


def report(args: argparse.Namespace, base: float | None, configs: list[Config], command: str) -> str:
    rows = []
    for c in configs:
        ok = [r for r in c.runs if r.failure is None]
        delivered = c.med(lambda r: r.delivered_rate)
        spread = (
            f" ({min(r.delivered_rate or 0 for r in ok):,.0f}-{max(r.delivered_rate or 0 for r in ok):,.0f})"
            if len(ok) > 1
            else ""
        )
        rows.append(
            [
                c.name,
                f"{len(ok)}/{len(c.runs)}",
                fmt(c.med(lambda r: r.handoff_rate)),
                fmt(delivered) + spread,
                fmt(c.med(lambda r: r.steady_delivered_rate)),
                f"{(delivered or 0) / base:.3f}" if base and delivered else "n/a",
                fmt((delivered or 0) / c.workers) if delivered else "n/a",
                fmt(c.med(lambda r: r.per_worker_cpu_s)),
                fmt(c.med(lambda r: r.ready_s), 1),
                fmt(c.med(lambda r: sum(r.worker_cpu) or None), 1),
                fmt(c.med(lambda r: r.api_cpu), 1),
                fmt(c.med(lambda r: r.pg_cpu), 1),
                fmt(c.med(lambda r: max(r.worker_rss_mb, default=0) or None)),
            ]
        )
    table = markdown_table(
        [
            "configuration",
            "runs ok",
            "handed off msg/s",
            "delivered msg/s",
            "delivered msg/s, steady",
            "delivered / bare req/s",
            "delivered msg/s per worker process",
            "msg per worker CPU-s",
            "dispatcher start s",
            "worker CPU s",
            "API CPU s",
            "PostgreSQL CPU s",
            "peak worker RSS MB",
        ],
        rows,
    )
    one = next((c for c in configs if c.name.startswith("(b)")), None)
    two = next((c for c in configs if c.name.startswith("(c)")), None)
    r1 = one.med(lambda r: r.delivered_rate) if one else None
    r2 = two.med(lambda r: r.delivered_rate) if two else None
    scale = r2 / r1 if r1 and r2 else None
    per_core = [x for x in (r1, (r2 / 2) if r2 else None) if x]
    per_cpu = one.med(lambda r: r.per_worker_cpu_s) if one else None
    lines = [
        *doc_header(
            "Dispatch throughput",
            "`bench/dispatch.py`; numbers are medians of the runs of one launch"
            + (" (ONE run per row: no median, read as indicative)" if args.runs == 1 else "")
            + ".",
            command,
        ),
        f"- jobs per run: {args.jobs:,}, preloaded through `POST /v1/messages/batch` ({BATCH} per request) into"
        " `--role api` before any dispatcher starts; ~300 B marketing SMS, each with a unique idempotency key"
        " and recipient; no caps configured, marketing allowed all day",
        "- sandbox: latency 1 ms (uniform 0.5-1.5 ms), receipts on (200 ms receipt delay, batched POSTs to the API"
        " process), ledger file on; worker settings at their defaults (batch 200, concurrency 256)",
        '- timing: from the launch of the dispatching process(es), start-up included; "handed off" = no row'
        ' `queued`/`sending` (the sandbox took every job), "delivered" = no row `queued`/`sending`/`sent`'
        ' (every receipt applied); "steady" = delivered, timed from the first poll that saw a job leave'
        " `queued`; polled every 50 ms",
        "- pinning: "
        + (
            "(a) on CPU 0; (b) worker CPU 0, API CPU 1; (c) workers CPU 0 and 1, API CPU 1; PostgreSQL,"
            " Redis and the poller unpinned (taskset). The API (receipts) and PostgreSQL share the same two"
            " CPUs as the workers: (c) runs 2 workers + API + PostgreSQL + Redis on 2 CPUs"
            if have_taskset()
            else "none"
        ),
        "- PostgreSQL and Redis: started by tests/servers.py (PostgreSQL fsync=off, Redis no persistence); a"
        " fresh database and FLUSHALL per run",
        f"- baseline: bare aiohttp + uvloop POST handler of bench/accept.py under {load_tool()} (64 connections,"
        f" server CPU 0, load CPU 1), {args.baseline_seconds:g} s, same launch: **{fmt(base)} req/s**",
        "- gateway source: "
        + "; ".join(sorted({f"`{c.source}` ({source_revision(c.source)})" for c in configs}))
        + (" — rows marked (x0) run the --gateway-root source" if any(c.source != ROOT for c in configs) else ""),
        f"- load average before / after: {args.load_before} / {load_average()} (other work on this machine skews"
        " every figure, the baseline included)",
        "- worker CPU s, API CPU s, PostgreSQL CPU s: user+system CPU seconds spent during the dispatch"
        " (from /proc; PostgreSQL = postmaster and its live backends, the bench's own polling backend left out"
        ' and given on its own under "Every run")',
        "- peak worker RSS: VmHWM of the dispatching process at the end of the run. RSS per 100,000 queued jobs"
        " was not derived: a worker claims `batch_size` jobs at a time and holds at most `concurrency` in"
        " flight, so its RSS is not expected to grow with the queue; see the start vs peak figures under"
        ' "Every run"',
        "",
        table,
        "",
        cost_table(configs),
        "",
        "## Targets",
        "",
        "- 2 workers / 1 worker (delivered) >= 1.7x: "
        + (f"**{scale:.2f}x** -> {'met' if scale >= 1.7 else 'NOT met'}" if scale else "n/a"),
        "- >= 2,000 delivered msg/s per worker core on PostgreSQL: "
        + (
            f"**{', '.join(f'{x:,.0f}' for x in per_core)}** (1 worker; 2 workers / 2) ->"
            f" {'met' if per_core and min(per_core) >= 2000 else 'NOT met'}"
            if per_core
            else "n/a"
        )
        + (f"; per worker CPU-second (1 worker): {per_cpu:,.0f}" if per_cpu else ""),
        "",
        "## Every run",
        "",
    ]
    for c in configs:
        for i, r in enumerate(c.runs):
            lines.append(
                f"- {c.name}, run {i + 1}: preload {r.preload_s:.1f} s; first dispatch {fmt(r.first_s, 2)} s,"
                f" ready {fmt(r.ready_s, 2)} s, handed off {fmt(r.handoff_s, 2)} s, delivered"
                f" {fmt(r.delivered_s, 2)} s after launch; worker CPU {[round(x, 1) for x in r.worker_cpu]} s,"
                f" API CPU {fmt(r.api_cpu, 1)} s, PostgreSQL CPU {fmt(r.pg_cpu, 1)} s (the bench's polling backend"
                f" besides: {fmt(r.poller_cpu, 2)} s), Redis CPU"
                f" {fmt(r.redis_cpu, 1)} s; worker RSS at ready {[round(x) for x in r.worker_rss_start_mb]} MB,"
                f" peak {[round(x) for x in r.worker_rss_mb]} MB; statuses {r.statuses}"
                + (f"; FAILED: {r.failure}" if r.failure else "")
            )
            for calls, ms, query in r.top_statements:
                per_message = ms * 1000 / r.jobs
                lines.append(f"  - {calls:,} x, {ms:,.0f} ms executing ({per_message:.1f} us per message): `{query}`")
            if r.wal_by_relation:
                lines.append(
                    "  - WAL per delivered message by relation (records / bytes): "
                    + "; ".join(
                        f"{name} {records / r.jobs:.1f} / {size / r.jobs:,.0f}"
                        for name, records, size in r.wal_by_relation
                        if records / r.jobs >= 0.05
                    )
                )
    lines.append("")
    return "\n".join(lines)


def cost_table(configs: list[Config]) -> str:
    """What a delivered message cost, per configuration (medians): CPU of each part, and statements."""
    rows = []
    for c in configs:
        per = [
            c.med(lambda r: r.cpu_ms_per_message(sum(r.worker_cpu) or None)),
            c.med(lambda r: r.cpu_ms_per_message(r.api_cpu)),
            c.med(lambda r: r.cpu_ms_per_message(r.pg_cpu)),
            c.med(lambda r: r.cpu_ms_per_message(r.system_cpu_s)),
        ]
        statements = c.med(lambda r: r.statements_per_message)
        bare = c.med(
            lambda r: (r.statements - (r.transaction_statements or 0)) / r.jobs if r.statements is not None else None
        )
        wal = [
            c.med(lambda r: r.wal_records / r.jobs if r.wal_records is not None else None),
            c.med(lambda r: r.wal_bytes / r.jobs if r.wal_bytes is not None else None),
            c.med(lambda r: r.wal_fpi / r.jobs if r.wal_fpi is not None else None),
        ]
        rows.append([c.name, *(fmt(x, 3) for x in per), fmt(statements, 2), fmt(bare, 2), *(fmt(x, 1) for x in wal)])
    return markdown_table(
        [
            "configuration",
            "worker CPU ms/msg",
            "API CPU ms/msg",
            "PostgreSQL CPU ms/msg",
            "whole system CPU ms/msg",
            "statements/msg",
            "statements/msg without BEGIN/COMMIT",
            "WAL records/msg",
            "WAL bytes/msg",
            "full-page images/msg",
        ],
        rows,
    )


@contextlib.contextmanager
def servers(statements: bool = False) -> Iterator[tuple[str | None, str | None]]:
    from tests.servers import own_postgres_server, postgres_server, redis_server

    if not statements:
        with postgres_server() as pg, redis_server() as rd:
            yield pg, rd
        return
    with own_postgres_server() as server, redis_server() as rd:
        if server is not None:
            asyncio.run(enable_statements(server))
        yield (server.url if server is not None else None), rd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--baseline-seconds", type=float, default=4.0)
    parser.add_argument(
        "--configs",
        default="sqlite,pg1,pg2",
        help="any of sqlite, pg1, pg2, pg (PostgreSQL supervised, with --processes)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="give up a run after this many seconds")
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOC.relative_to(ROOT)}")
    parser.add_argument("--gateway-root", type=Path, default=None, help="a baseline source, run in the same launch")
    parser.add_argument("--statements", action="store_true", help="count statements with pg_stat_statements")
    parser.add_argument(
        "--processes",
        default=None,
        help="dispatch with `gateway serve` supervised (auto or N API processes) instead of one process per role",
    )
    parser.add_argument("--workers", default=None, help="with the supervised layout: auto or N worker processes")
    args = parser.parse_args()
    command = ".venv/bin/python bench/dispatch.py " + " ".join(sys.argv[1:])
    started = time.monotonic()
    args.load_before = load_average()
    wanted = args.configs.split(",")
    sources = [("", ROOT)] + ([("0", args.gateway_root.resolve())] if args.gateway_root else [])
    base = baseline(args)
    configs: list[Config] = []
    if "sqlite" in wanted:
        pair = [Config(f"(a{tag}) embedded: gateway serve, SQLite", 1, source) for tag, source in sources]
        for i in range(args.runs):
            for c in pair[:: -1 if i % 2 else 1]:
                run = run_sqlite(args, i, c.source)
                print(f"  {c.name} run {i + 1}: {run}", flush=True)
                c.runs.append(run)
        configs.extend(pair)
    supervised = args.processes is not None or args.workers is not None
    layout = "gateway " + " ".join(supervised_argv(args)[supervised_argv(args).index("serve") :]) if supervised else ""
    if supervised:
        for c in configs:
            c.name = c.name.replace("gateway serve", f"`{layout}`")
    if supervised and "pg" in wanted:
        configs.extend(supervised_postgres(args, sources, layout))
    pg_configs = [(n, w) for n, w in (("pg1", 1), ("pg2", 2)) if n in wanted]
    if pg_configs:
        with servers(args.statements) as (pg, rd):
            if pg is None or rd is None:
                print("no PostgreSQL or Redis binaries here: skipping (b) and (c)", flush=True)
            else:
                for _name, workers in pg_configs:
                    label = "b" if workers == 1 else "c"
                    pair = [
                        Config(f"({label}{tag}) PostgreSQL + Redis, 1 API + {workers} worker", workers, source)
                        for tag, source in sources
                    ]
                    for i in range(args.runs):
                        for c in pair[:: -1 if i % 2 else 1]:
                            run = run_postgres(args, i, workers, pg, rd, c.source)
                            print(f"  {c.name} run {i + 1}: {run}", flush=True)
                            c.runs.append(run)
                    configs.extend(pair)
    text = report(args, base, configs, command.strip())
    print()
    print(text)
    print(f"bench took {time.monotonic() - started:.0f} s", flush=True)
    if not args.no_write:
        write_doc(DOC, text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 1 if any(r.failure for c in configs for r in c.runs) else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(main())

"""The record at scale: delivery-log latency at 1 million messages, and memory per 100,000 queued jobs.

    .venv/bin/python bench/scale.py [--messages 1000000] [--queued 100000] [--requests 30]

(1) Delivery log. A store (SQLite, and PostgreSQL when its binaries are here) is filled with
`--messages` messages straight through the schema (COPY on PostgreSQL, executemany on SQLite): 30
days of traffic, 95% one tenant, 200,000 recipients, 300,000 users, 40 campaigns, a realistic mix
of statuses. Then `gateway serve --role api` answers the ops queries of `GET /v1/messages` (newest
first, 50 a page: no filter, by campaign, recipient, user, status, a one-hour window, the second
page through the cursor) and `GET /v1/messages/{id}`, each `--requests` times one after another;
the median latency is compared with a bare aiohttp GET handler answering a page of the same size
in the same launch.

(2) Memory. A fresh store; `gateway serve --role api` accepts `--queued` jobs in batches of 1,000
(due in a year, so they stay queued); the API process's RSS before and after, and the store's size.
Then a `--role worker` process starts with those jobs due now and drains them through the
sandbox: its RSS at start and its peak (VmHWM) while the queue goes from 100,000 to 0.

Writes docs/benchmarks/scale.md. Loopback only; every request loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import (  # noqa: E402
    PYTHON,
    ServerProcess,
    free_port,
    machine_info,
    markdown_table,
    serve_bare,
)

from gateway.store.migrations import KEYS_OF_MESSAGES  # noqa: E402

DOC = ROOT / "docs" / "benchmarks" / "scale.md"
API_KEY = "bench-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
DAY = 86400.0
CAMPAIGNS = [f"campaign-{n:02d}" for n in range(40)]
# status, reason, provider, error_code, weight
OUTCOMES = [
    ("delivered", "receipt", "sandbox", None, 80),
    ("sent", None, "sandbox", None, 6),
    ("undelivered", "provider.undelivered.30003", "sandbox", "30003", 4),
    ("failed", "provider.transient.exhausted", "sandbox", "SBX-503", 3),
    ("suppressed", "limit.cap", None, None, 4),
    ("rejected", "content.blocked_word", None, None, 1),
    ("queued", None, None, None, 2),
]
COLUMNS = (
    "id",
    "tenant_id",
    "channel",
    "to_addr",
    "content",
    "category",
    "user_id",
    "campaign",
    "variant",
    "status",
    "reason",
    "provider",
    "error_code",
    "attempt_count",
    "next_attempt_at",
    "created_at",
    "updated_at",
)


def message_rows(count: int, now: float, seed: int = 11) -> Iterator[list[tuple[object, ...]]]:
    """Chunks of message rows, oldest first, in COLUMNS order."""
    from gateway.domain.ids import message_id

    rng = random.Random(seed)
    outcomes = [o for o in OUTCOMES for _ in range(o[4])]
    start, step = now - 30 * DAY, 30 * DAY / count
    chunk: list[tuple[object, ...]] = []
    for i in range(count):
        created = start + (i + rng.random()) * step
        status, reason, provider, code, _ = rng.choice(outcomes)
        campaign = rng.choice(CAMPAIGNS) if rng.random() < 0.8 else None
        chunk.append(
            (
                message_id(created),
                "default" if rng.random() < 0.95 else "acme",
                "sms",
                f"+86138{rng.randrange(200_000):08d}",
                '{"text":"Spring sale https://shop.example.com/s"}',
                "marketing",
                f"u{rng.randrange(300_000)}",
                campaign,
                ("A", "B")[i % 2] if campaign else None,
                status,
                reason,
                provider,
                code,
                0 if status == "queued" else 1,
                created + 365 * DAY if status == "queued" else created,
                created,
                created + rng.random() * 600,
            )
        )
        if len(chunk) == 50_000:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def migrate_and_key(database_url: str) -> None:
    from gateway.api.auth import SCOPES, key_row, provisioned_key_id
    from gateway.store.store import SqlStore

    store = SqlStore.open(database_url)
    try:
        await store.migrate()
        await store.ensure_tenant("default")
        row = key_row(API_KEY, provisioned_key_id(API_KEY), "default", "bench", SCOPES)
        await store.add_api_key(row)
    finally:
        await store.close()


def fill_sqlite(path: Path, count: int, now: float) -> None:
    placeholders = ", ".join("?" for _ in COLUMNS)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        for chunk in message_rows(count, now):
            with conn:
                conn.executemany(f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES ({placeholders})", chunk)
        with conn:
            conn.execute(KEYS_OF_MESSAGES)  # what each message is found by, as accept writes it
        conn.execute("ANALYZE")


async def fill_postgres(url: str, count: int, now: float) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for chunk in message_rows(count, now):
            await conn.copy_records_to_table("messages", records=chunk, columns=list(COLUMNS))
        await conn.execute(KEYS_OF_MESSAGES)
        await conn.execute("ANALYZE messages")
        await conn.execute("ANALYZE message_keys")
    finally:
        await conn.close()


def gateway_env(database_url: str, port: int, workdir: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_PORT": str(port),
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_SANDBOX__LEDGER_PATH": str(workdir / "ledger.ndjson"),
        "GATEWAY_SANDBOX__LATENCY_MS": "1",
        "GATEWAY_SANDBOX__RECEIPTS": "false",
    }


def gateway(role: str, env: dict[str, str], port: int, workdir: Path) -> ServerProcess:
    return ServerProcess(
        [PYTHON, "-m", "gateway", "serve", "--role", role],
        env=env,
        cwd=workdir,
        ready_url=f"http://127.0.0.1:{port}/healthz",
        ready_timeout=120,
    )


def timed_get(url: str, headers: dict[str, str]) -> tuple[float, bytes]:
    request = urllib.request.Request(url, headers=headers)
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return (time.perf_counter() - started) * 1000, body


def median_ms(url: str, requests: int, headers: dict[str, str] | None = None) -> float:
    timed_get(url, headers or AUTH)  # warm: caches and the first plan
    return statistics.median(timed_get(url, headers or AUTH)[0] for _ in range(requests))


def delivery_log_queries(base: str, now: float) -> list[tuple[str, str]]:
    def iso(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    first = orjson.loads(timed_get(f"{base}/v1/messages?limit=50", AUTH)[1])
    sample = first["data"][7]
    return [
        ("newest 50, no filter", "/v1/messages?limit=50"),
        ("by campaign", f"/v1/messages?limit=50&campaign={CAMPAIGNS[3]}"),
        ("by recipient", f"/v1/messages?limit=50&to=%2B86138{7_777:08d}"),
        ("by user", "/v1/messages?limit=50&user_id=u4242"),
        ("by status (failed)", "/v1/messages?limit=50&status=failed"),
        (
            "one hour, 10 days ago",
            f"/v1/messages?limit=50&since={iso(now - 10 * DAY)}&until={iso(now - 10 * DAY + 3600)}",
        ),
        ("second page (cursor)", f"/v1/messages?limit=50&cursor={first['next_cursor']}"),
        ("one message with events", f"/v1/messages/{sample['id']}"),
    ]


def serve_page(port: int) -> None:
    from aiohttp import web

    page = orjson.dumps(
        {"data": [{"id": f"msg_{n:026d}", "status": "delivered", "to": "+8613800000000"} for n in range(50)]}
    )

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="application/json")

    serve_bare(port, "GET", "/page", handler)


def bare_baseline(requests: int) -> float:
    import multiprocessing

    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=serve_page, args=(port,))
    process.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                return median_ms(f"http://127.0.0.1:{port}/page", requests, {})
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        process.terminate()
        process.join()


def measure_log(store: str, database_url: str, args: argparse.Namespace, workdir: Path) -> list[tuple[str, float]]:
    now = time.time()
    asyncio.run(migrate_and_key(database_url))
    started = time.monotonic()
    if store == "sqlite":
        fill_sqlite(Path(database_url.removeprefix("sqlite:///")), args.messages, now)
    else:
        asyncio.run(fill_postgres(database_url, args.messages, now))
    print(f"  {store}: {args.messages:,} messages in {time.monotonic() - started:.0f} s", flush=True)
    port = free_port()
    with gateway("api", gateway_env(database_url, port, workdir), port, workdir):
        base = f"http://127.0.0.1:{port}"
        results = [(name, median_ms(base + path, args.requests)) for name, path in delivery_log_queries(base, now)]
    for name, ms in results:
        print(f"  {store} {name}: {ms:.1f} ms", flush=True)
    return results


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def store_bytes(store: str, database_url: str) -> int:
    if store == "sqlite":
        path = Path(database_url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))

    async def size() -> int:
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        finally:
            await conn.close()

    return asyncio.run(size())


def measure_memory(store: str, database_url: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    asyncio.run(migrate_and_key(database_url))
    empty = store_bytes(store, database_url)
    port = free_port()
    env = gateway_env(database_url, port, workdir)
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 365 * DAY))
    with gateway("api", env, port, workdir) as api:
        assert api.proc is not None
        before = rss_kb(api.proc.pid)
        for first in range(0, args.queued, 1000):
            jobs = [
                {
                    "channel": "sms",
                    "to": f"+86139{n:08d}",
                    "content": {"text": "Your parcel is on its way"},
                    "category": "transactional",
                    "send_at": later,
                }
                for n in range(first, min(first + 1000, args.queued))
            ]
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/messages/batch",
                data=orjson.dumps({"messages": jobs}),
                headers={**AUTH, "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
        after = rss_kb(api.proc.pid)
    queued_bytes = store_bytes(store, database_url) - empty
    make_due(store, database_url)
    port = free_port()
    with gateway("worker", gateway_env(database_url, port, workdir), port, workdir) as worker:
        assert worker.proc is not None
        at_start = rss_kb(worker.proc.pid)
        deadline = time.monotonic() + 900
        while remaining(store, database_url) and time.monotonic() < deadline:
            time.sleep(1.0)
        peak = rss_kb(worker.proc.pid, "VmHWM")
    result = {
        "api_rss_before_mb": before / 1024,
        "api_rss_after_mb": after / 1024,
        "store_mb_per_100k": queued_bytes / 1024 / 1024 * 100_000 / args.queued,
        "worker_rss_start_mb": at_start / 1024,
        "worker_rss_peak_mb": peak / 1024,
        "left_queued": remaining(store, database_url),
    }
    print(f"  {store} memory: {result}", flush=True)
    return result


def _sql(store: str, database_url: str, statement: str) -> object:
    if store == "sqlite":
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)) as conn:
            with conn:
                row = conn.execute(statement).fetchone()
            return row[0] if row else None

    async def run() -> object:
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval(statement)
        finally:
            await conn.close()

    return asyncio.run(run())


def make_due(store: str, database_url: str) -> None:
    _sql(store, database_url, f"UPDATE messages SET send_at = NULL, next_attempt_at = {time.time()}")


def remaining(store: str, database_url: str) -> int:
    return int(_sql(store, database_url, "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')") or 0)


@contextlib.contextmanager
def stores(workdir: Path, name: str) -> Iterator[list[tuple[str, str]]]:
    from tests.servers import postgres_server

    with postgres_server() as pg:
        found = [("sqlite", f"sqlite:///{workdir / (name + '.db')}")]
        if pg is not None:
            found.append(("postgresql", fresh_database(pg, name)))
        yield found


def fresh_database(server: str, name: str) -> str:
    async def create() -> None:
        import asyncpg

        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return server.rsplit("/", 1)[0] + "/" + name


def report(
    args: argparse.Namespace, bare: float, logs: dict[str, list[tuple[str, float]]], memory: dict[str, dict[str, float]]
) -> str:
    info = machine_info()
    stores_seen = list(logs)
    lines = [
        "# The record at scale",
        "",
        "Written by `bench/scale.py`; medians of one launch.",
        "",
        "```",
        f".venv/bin/python bench/scale.py --messages {args.messages} --queued {args.queued} --requests {args.requests}",
        "```",
        "",
        f"- machine: {info['nproc']} CPUs, {info['cpu']}, {info['os']}, Python {info['python']}",
        f"- load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        "(other work on the machine skews every figure)",
        "- baseline: a bare aiohttp GET handler answering a 50-item JSON page, same client, same launch: "
        f"**{bare:.2f} ms** median",
        "",
        f"## Delivery log at {args.messages:,} messages",
        "",
        f"Median of {args.requests} sequential requests each (after one warm-up), client-side, 50 per page.",
        "",
        markdown_table(
            ["query", *[f"{s} ms" for s in stores_seen], *[f"{s} / bare" for s in stores_seen]],
            [
                [
                    name,
                    *[f"{dict(logs[s])[name]:.1f}" for s in stores_seen],
                    *[f"{dict(logs[s])[name] / bare:.1f}x" for s in stores_seen],
                ]
                for name, _ in logs[stores_seen[0]]
            ],
        ),
        "",
        f"## Memory per {args.queued:,} queued jobs",
        "",
        markdown_table(
            [
                "store",
                "API RSS before MB",
                "API RSS after accepting MB",
                "store MB per 100,000 jobs",
                "worker RSS at start MB",
                "worker peak RSS while draining MB",
                "left queued",
            ],
            [
                [
                    s,
                    f"{m['api_rss_before_mb']:.0f}",
                    f"{m['api_rss_after_mb']:.0f}",
                    f"{m['store_mb_per_100k']:.0f}",
                    f"{m['worker_rss_start_mb']:.0f}",
                    f"{m['worker_rss_peak_mb']:.0f}",
                    f"{m['left_queued']:.0f}",
                ]
                for s, m in memory.items()
            ],
        ),
        "",
        "A worker claims `worker.batch_size` jobs at a time and holds at most `worker.concurrency` in",
        "flight; the queue itself lives in the store. What the processes gain while accepting or",
        "draining is mostly cache: each SQLite connection may keep up to 64 MiB of pages",
        "(`cache_size=-65536`; a process has a writer, an inline writer and reader connections), and",
        "freed Python objects stay in the allocator's arenas. Growth per queued job is not derived",
        "from one queue size.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    bare = bare_baseline(args.requests)
    print(f"  bare baseline: {bare:.2f} ms", flush=True)
    logs: dict[str, list[tuple[str, float]]] = {}
    memory: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = Path(tmp)
        with stores(workdir, "bench_scale_log") as found:
            for store, url in found:
                logs[store] = measure_log(store, url, args, workdir)
        with stores(workdir, "bench_scale_memory") as found:
            for store, url in found:
                memory[store] = measure_memory(store, url, args, workdir)
    text = report(args, bare, logs, memory)
    print(text)
    if not args.no_write:
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

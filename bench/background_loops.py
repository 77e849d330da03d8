"""The gateway's background loops as the database grows: their time, and their longest write.

    .venv/bin/python bench/background_loops.py [--messages 1000000] [--runs 5] [--gateway-root /tmp/base]

Loops that run while the gateway serves, whatever the traffic: every minute each process releases
the idempotency keys past `api.idempotency_retention_hours` (store/sql/retention.py); every hour
(`retention.purge_interval_seconds`) a worker drops the content of finished messages older than
`retention.content_days`; every 5 s the callbacks process reads each endpoint's pending and dead
deliveries for its gauges (store/sql/webhooks.delivery_health, also behind `GET /v1/webhooks`). On
SQLite a write holds the write lock: accepts and the worker wait meanwhile.

A database of --messages messages, every other one keyed, all older than the content's retention
and already purged, and as many delivered status callbacks kept for one endpoint (20 pending, a few
dead): as in a steady state, no loop finds much to do. Each loop run --runs times: the median of its
whole time and of its longest write transaction. SQLite, and PostgreSQL in a database of its own.
With --gateway-root, that tree's gateway is measured in the same launch, each tree in a process of
its own. Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fill_sql(dialect: str, count: int) -> str:
    padded = "printf('%010d', n)" if dialect == "sqlite" else "lpad(n::text, 10, '0')"
    return (
        "INSERT INTO messages (id, tenant_id, idempotency_key, idempotency_expires_at, channel, to_addr, content,"
        " category, status, next_attempt_at, created_at, updated_at, attempt_count)"
        f" WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {count})"
        f" SELECT 'msg_00' || {padded}, 't', CASE WHEN n % 2 = 0 THEN 'k' || n END, CASE WHEN n % 2 = 0 THEN 4e9 END,"
        " 'sms', '+8613912345678', 'null', 'marketing', 'delivered', n, n, n, 1 FROM c"
    )


def deliveries_sql(count: int) -> str:
    return (
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, type, event_at, state, attempts, next_attempt_at,"
        f" created_at) WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {count})"
        f" SELECT 'wh_1', n, 'message.delivered', n, CASE WHEN n % 100000 = 0 THEN 'dead' WHEN n > {count - 20}"
        " THEN 'pending' ELSE 'delivered' END, 1, n, n FROM c"
    )


async def measure(url: str, count: int, runs: int) -> dict[str, list[float]]:
    """In this process, on the gateway first on sys.path: per loop and run, ms in all and ms of the
    longest write transaction."""
    from gateway.store import migrations
    from gateway.store.sql import retention
    from gateway.store.store import SqlStore

    store = SqlStore.open(url)
    await store.migrate()

    def fill(conn: object) -> None:
        conn.exec_driver_sql(fill_sql(conn.dialect.name, count))  # type: ignore[attr-defined]
        conn.exec_driver_sql(migrations.KEYS_OF_MESSAGES)  # type: ignore[attr-defined]
        conn.exec_driver_sql(deliveries_sql(count))  # type: ignore[attr-defined]

    held: list[float] = []
    write = store.db.write

    async def timed_write(fn: object, *args: object) -> object:
        start = time.perf_counter()
        try:
            return await write(fn, *args)  # type: ignore[arg-type]
        finally:
            held.append((time.perf_counter() - start) * 1000)

    loops = {
        "key release": lambda: store.db.write(retention.release_idempotency_keys, time.time()),
        "content purge": lambda: store.purge_content(30.0),
        "callbacks' health": lambda: store.webhook_health(["wh_1"]),
    }
    try:
        await store.db.write(fill)
        if url.startswith("postgresql"):
            await store.db.write(lambda conn: conn.exec_driver_sql("ANALYZE"))
        store.db.write = timed_write  # type: ignore[method-assign]
        figures: dict[str, list[float]] = {}
        for name, loop in loops.items():
            for _ in range(runs):
                held.clear()
                start = time.perf_counter()
                await loop()
                figures.setdefault(f"{name}, all", []).append((time.perf_counter() - start) * 1000)
                if held:  # a read holds no write lock
                    figures.setdefault(f"{name}, longest write", []).append(max(held))
        return figures
    finally:
        store.db.write = write  # type: ignore[method-assign]
        await store.close()


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.tree)
    print(json.dumps(asyncio.run(measure(args.url, args.messages, args.runs))))


def in_child(tree: str, url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    argv = [sys.executable, __file__, "--child", "--tree", tree, "--url", url]
    argv += ["--messages", str(args.messages), "--runs", str(args.runs)]
    env = {**os.environ, "PYTHONPATH": tree}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=tree)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gateway-root", default=None, help="a baseline tree measured in the same launch")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", default=str(ROOT), help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(ROOT))
    from scale import fresh_database  # type: ignore[import-not-found]

    from tests.servers import postgres_server

    trees = [str(ROOT)] + ([args.gateway_root] if args.gateway_root else [])
    rows = []
    with tempfile.TemporaryDirectory() as work, postgres_server() as pg:
        for tree in trees[::-1]:  # the baseline first
            for engine in ("sqlite", "postgresql"):
                if engine == "postgresql" and pg is None:
                    continue
                name = f"background_loops_{len(rows)}"
                url = f"sqlite:///{work}/{name}.db" if engine == "sqlite" else fresh_database(pg, name)
                for figure, values in in_child(tree, url, args).items():
                    rows.append((tree, engine, figure, statistics.median(values), min(values), max(values)))
                    print(f"{tree} {engine} {figure}: {statistics.median(values):.1f} ms", flush=True)
    print(f"\n{args.messages:,} messages and callbacks kept; ms, median of {args.runs} (min-max)\n")
    print("| gateway | engine | loop | median ms | min-max |\n| --- | --- | --- | ---: | --- |")
    for tree, engine, figure, mid, low, high in rows:
        print(f"| {tree} | {engine} | {figure} | {mid:.1f} | {low:.1f}-{high:.1f} |")


if __name__ == "__main__":
    main()

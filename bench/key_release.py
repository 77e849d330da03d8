"""The minute's release of idempotency keys: how long it holds a write transaction as the table grows.

    .venv/bin/python bench/key_release.py [--messages 1000000] [--runs 5] [--gateway-root /tmp/base]

Each gateway process releases the keys past `api.idempotency_retention_hours` every minute
(gateway/store/sql/retention.release_idempotency_keys), in a write transaction: on SQLite, accepts
and the worker wait for the lock meanwhile. A database of --messages messages (every other one
keyed, none past its retention, so each release finds nothing), on SQLite and on a PostgreSQL of its
own; the release run --runs times, the median. With --gateway-root, that tree's gateway is measured
in the same launch, each tree in a process of its own, alternating. Prints a table; writes nothing.
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
        f" SELECT 'msg_' || {padded}, 't', CASE WHEN n % 2 = 0 THEN 'k' || n END, CASE WHEN n % 2 = 0 THEN 4e9 END,"
        " 'sms', '+8613912345678', '{}', 'marketing', 'delivered', n, n, n, 1 FROM c"
    )


async def measure(url: str, count: int, runs: int) -> list[float]:
    """In this process, on the gateway first on sys.path: ms the release held its transaction, per run."""
    from gateway.store import migrations
    from gateway.store.sql import retention
    from gateway.store.store import SqlStore

    store = SqlStore.open(url)
    await store.migrate()

    def fill(conn: object) -> None:
        conn.exec_driver_sql(fill_sql(conn.dialect.name, count))  # type: ignore[attr-defined]
        conn.exec_driver_sql(migrations.KEYS_OF_MESSAGES)  # type: ignore[attr-defined]

    try:
        await store.db.write(fill)
        if url.startswith("postgresql"):
            await store.db.write(lambda conn: conn.exec_driver_sql("ANALYZE messages, message_keys"))
        held = []
        for _ in range(runs):
            start = time.perf_counter()
            await store.db.write(retention.release_idempotency_keys, time.time())
            held.append((time.perf_counter() - start) * 1000)
        return held
    finally:
        await store.close()


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.tree)
    print(json.dumps(asyncio.run(measure(args.url, args.messages, args.runs))))


def in_child(tree: str, url: str, args: argparse.Namespace) -> list[float]:
    argv = [sys.executable, __file__, "--child", "--tree", tree, "--url", url]
    argv += ["--messages", str(args.messages), "--runs", str(args.runs)]
    env = {**os.environ, "PYTHONPATH": tree}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=tree)
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


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
                name = f"key_release_{len(rows)}"
                url = f"sqlite:///{work}/{name}.db" if engine == "sqlite" else fresh_database(pg, name)
                held = in_child(tree, url, args)
                rows.append((tree, engine, statistics.median(held), min(held), max(held)))
                print(f"{tree} {engine}: {statistics.median(held):.1f} ms", flush=True)
    print(f"\n{args.messages:,} messages, none to release; ms the release held its write transaction", end="")
    print(f" (median of {args.runs})\n")
    print("| gateway | engine | median ms | min-max |\n| --- | --- | ---: | --- |")
    for tree, engine, mid, low, high in rows:
        print(f"| {tree} | {engine} | {mid:.1f} | {low:.1f}-{high:.1f} |")


if __name__ == "__main__":
    main()

"""What recording a click costs by how many clicks share a commit (`links.queued_click_commit_ms`).

    .venv/bin/python bench/click_commits.py [--runs 5] [--clicks 100000] [--sizes 200,2000,10000]
        [--messages 1000] [--synchronous NORMAL]

In this process, on a fresh SQLite file (WAL) per measurement: --clicks person's clicks spread at
random over the links of --messages messages are queued through the store (`record_click` with
wait=False, as the redirect does with `links.wait_for_click_commit` off) and committed --size at a
time (`flush_clicks`), the clicks at `--synchronous` (links.click_synchronous). At ~10,000 clicks a
second, 200 per commit is a 20 ms interval, 2,000 is 200 ms (the default), 10,000 one second.

Baseline, in the same launch and the same commit sizes: the same rows inserted with sqlite3 alone
(executemany, one commit per size) into a table with the columns of `clicks` and no index: what a
click's row costs SQLite before any index, audit entry or gateway code. Figure: CPU microseconds of
this process (all threads, time.process_time) per click, median of --runs, the store and the
baseline alternating run by run; the first 5 commits of each measurement are not counted. Prints a
markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import fmt, load_average, machine_info, markdown_table, median, temporary_directory  # noqa: E402

WARMUP_COMMITS = 5
PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"


def click_rows(count: int, messages: int, rng: random.Random) -> list[dict[str, Any]]:
    now = time.time()
    rows = []
    for n in range(count):
        m = rng.randrange(messages)
        rows.append(
            {
                "token": f"tok{m:07d}",
                "tenant_id": "default",
                "message_id": f"msg_bench{m:020d}",
                "at": now + n * 1e-4,
                "user_agent": PHONE,
                "ip_hash": f"{rng.getrandbits(256):064x}",
                "automated": False,
            }
        )
    return rows


async def through_store(path: Path, rows: list[dict[str, Any]], size: int, synchronous: str) -> float:
    from gateway.store.store import SqlStore

    store = SqlStore.open(f"sqlite:///{path}", synchronous="FULL", click_synchronous=synchronous)
    try:
        await store.migrate()
        started = 0.0
        for n, first in enumerate(range(0, len(rows), size)):
            if n == WARMUP_COMMITS:
                started = time.process_time()
            for row in rows[first : first + size]:
                await store.record_click(row, wait=False)
            await store.flush_clicks()
        return (time.process_time() - started) / (len(rows) - WARMUP_COMMITS * size) * 1e6
    finally:
        await store.close()


def bare_sqlite(path: Path, rows: list[dict[str, Any]], size: int, synchronous: str) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(
            "CREATE TABLE clicks (id INTEGER PRIMARY KEY, token TEXT, tenant_id TEXT, message_id TEXT,"
            " at REAL, user_agent TEXT, ip_hash TEXT, automated BOOLEAN)"
        )
        columns = ("token", "tenant_id", "message_id", "at", "user_agent", "ip_hash", "automated")
        sql = f"INSERT INTO clicks ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        started = 0.0
        for n, first in enumerate(range(0, len(rows), size)):
            if n == WARMUP_COMMITS:
                started = time.process_time()
            conn.execute("BEGIN")
            conn.executemany(sql, [tuple(row[c] for c in columns) for row in rows[first : first + size]])
            conn.execute("COMMIT")
        return (time.process_time() - started) / (len(rows) - WARMUP_COMMITS * size) * 1e6
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clicks", type=int, default=100_000)
    parser.add_argument("--sizes", default="200,2000,10000", help="clicks per commit")
    parser.add_argument("--messages", type=int, default=1000, help="messages whose links are clicked")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="NORMAL")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    command = ".venv/bin/python bench/click_commits.py " + " ".join(sys.argv[1:])
    load_before = load_average()
    store_us: dict[int, list[float]] = {s: [] for s in sizes}
    bare_us: dict[int, list[float]] = {s: [] for s in sizes}
    for run in range(args.runs):
        for size in sizes:
            if args.clicks < (WARMUP_COMMITS + 1) * size:
                least = (WARMUP_COMMITS + 1) * size
                raise SystemExit(f"--clicks {args.clicks}: at least {least} for {size} per commit")
            rows = click_rows(args.clicks, args.messages, random.Random(run))
            with temporary_directory("bench-click-commits-") as tmp:
                store_us[size].append(asyncio.run(through_store(tmp / "store.db", rows, size, args.synchronous)))
                bare_us[size].append(bare_sqlite(tmp / "bare.db", rows, size, args.synchronous))
            figures = f"store {store_us[size][-1]:.1f} us, bare {bare_us[size][-1]:.1f} us"
            print(f"run {run + 1}, {size} per commit: {figures}", flush=True)
    info = machine_info()
    table = markdown_table(
        ["clicks per commit", "store CPU us per click", "sqlite3 alone, unindexed", "store / sqlite3 alone", "runs"],
        [
            [
                f"{size:,}",
                fmt(median(store_us[size]), 1),
                fmt(median(bare_us[size]), 1),
                f"{(median(store_us[size]) or 0) / (median(bare_us[size]) or 1):.1f}",
                ", ".join(f"{v:.1f}" for v in store_us[size]),
            ]
            for size in sizes
        ],
    )
    print()
    print("```")
    print(command)
    print("```")
    print()
    print(f"- machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}")
    print(f"- load average before / after: {load_before} / {load_average()}")
    print(f"- {args.clicks:,} clicks over {args.messages:,} messages' links, commits at {args.synchronous}")
    print()
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

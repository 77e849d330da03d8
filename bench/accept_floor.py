"""Where the single-job accept budget goes: the per-job costs that no request can avoid, against the
budget that 0.40 x the bare handler leaves, measured in the same launch.

    .venv/bin/python bench/accept_floor.py [--runs 3] [--jobs 6400] [--batches 16,32,64,128] [--no-write]

1. The bare aiohttp handler of bench/accept.py (pinned to CPU 0, wrk on CPU 1): its rate gives the
   budget per request at 0.40 of it, and its own time per request (aiohttp + orjson) is a cost any
   Python HTTP handler pays too.
2. In this process, pinned to CPU 0, on a gateway started in a temporary directory (`--role api`,
   SQLite WAL, synchronous=FULL, as `gateway serve` runs):
   - the gateway's per-job work outside HTTP and the store: parse and duplicate-key screen,
     validation, content policy, request hash, the row, the answer body (its own objects);
   - the durable commit of those rows through `gateway.store.sql.accept.insert_accepted` in group commits of each
     batch size (under 64 connections the group commit forms batches of about 32);
   - the same rows committed with the sqlite3 module alone, no SQLAlchemy and no gateway code: the
     cost of SQLite's own work for the messages row and its audit event with the delivery log's
     indexes, i.e. the floor under any Python code on this schema;
   - that floor without the two indexes on recipient and user id (the delivery log's `to` and
     `user_id` filters), whose keys land on a different page for every row.
   CPU time is process time (user + system: WAL writes and fsync are counted where the kernel does
   them in this process), median of --runs, per job.

The results go to docs/benchmarks/accept-floor.md (text after the "notes" marker there is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from accept import JOB, bench_baseline  # noqa: E402
from common import fmt, load_average, machine_info, markdown_table, median, temporary_directory, write_doc  # noqa: E402

from gateway.store.schema import KEY_COLUMNS  # noqa: E402

DOC = ROOT / "docs" / "benchmarks" / "accept-floor.md"
TARGET = 0.40
RANDOM_INDEXES = ("ix_message_keys_tenant_to", "ix_message_keys_tenant_user")


def job_bodies(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [
        JOB.replace("{d8}", f"{rng.randrange(10**8):08d}").replace("{n}", f"{seed}-{i}").encode() for i in range(count)
    ]


def cpu_per_item(fn: Callable[[], int]) -> float:
    """Process CPU µs per item of one call of fn (which returns how many items it handled)."""
    started = time.process_time()
    items = fn()
    return (time.process_time() - started) / items * 1e6


async def measure_gateway(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    os.environ.update(
        {"GATEWAY_PORT": "0", "GATEWAY_API_KEY": "floor-key-0123456789abcdef", "GATEWAY_LOG_LEVEL": "warning"}
    )
    os.environ.pop("GATEWAY_REDIS_URL", None)
    os.environ.pop("GATEWAY_CONFIG", None)
    os.environ["GATEWAY_DATABASE_URL"] = f"sqlite:///{directory / 'gateway.db'}"
    os.chdir(directory)
    from gateway.api import messages, render
    from gateway.api.bodies import check_parsed
    from gateway.api.context import CONTEXT
    from gateway.app import Gateway
    from gateway.contract.jobs import validate_job
    from gateway.logging import configure_logging
    from gateway.settings import load_settings
    from gateway.store.sql import accept as accept_sql
    from gateway.store.store import SqlStore

    configure_logging("warning")
    gateway = Gateway(load_settings(), role="api")
    await gateway.start()
    try:
        assert gateway.runner is not None
        ctx = gateway.runner.app[CONTEXT]
        tenant = "default"
        python_runs: list[float] = []
        rows_by_run: list[list[dict[str, Any]]] = []
        for run in range(args.runs):
            bodies = job_bodies(args.jobs, run)
            holder: list[dict[str, Any]] = []

            def handle_all(bodies: list[bytes] = bodies, out: list[dict[str, Any]] = holder, run: int = run) -> int:
                for index, raw in enumerate(bodies):
                    body = orjson.loads(raw)
                    check_parsed(raw, body)
                    job, _ = validate_job(body, ctx.limits)
                    assert job is not None
                    assert messages.content_refusal(ctx, tenant, job) is None
                    key = f"k-{run}-{index}" if index % 2 else None
                    row = messages.job_row(ctx, tenant, job, key, messages.request_hash(body), time.time())
                    orjson.dumps(render.accepted_message(row))
                    out.append(row)
                return len(bodies)

            python_runs.append(cpu_per_item(handle_all))
            rows_by_run.append(holder)

        commit: dict[int, list[float]] = {size: [] for size in args.batches}
        for size in args.batches:
            for run, rows in enumerate(rows_by_run):
                # A fresh database per measurement, so every batch size starts from the same state.
                store = SqlStore.open(f"sqlite:///{directory / f'commit-{size}-{run}.db'}")
                await store.migrate()
                now = time.time()
                chunks = [rows[start : start + size] for start in range(0, len(rows), size)]
                started = time.process_time()
                for chunk in chunks:
                    await store.db.write(accept_sql.insert_accepted, chunk, now)
                commit[size].append((time.process_time() - started) / len(rows) * 1e6)
                await store.close()
        columns = list(rows_by_run[0][0])
        return {"python": python_runs, "commit": commit, "rows": rows_by_run, "columns": columns, "db": directory}
    finally:
        await gateway.stop()


def sqlite_only(
    schema_db: Path, rows: list[dict[str, Any]], columns: list[str], size: int, path: Path, skip: tuple[str, ...]
) -> float:
    """SQLite's own cost per job: its keys, the messages row and its event, through the sqlite3 module only."""
    with contextlib.closing(sqlite3.connect(schema_db)) as source:
        ddl = [
            sql
            for name, sql in source.execute(
                "SELECT name, sql FROM sqlite_master"
                " WHERE tbl_name IN ('messages', 'message_keys', 'events') AND sql IS NOT NULL"
            )
            if name not in skip
        ]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA cache_size=-65536")
        for sql in ddl:
            conn.execute(sql)
        insert_keys = (
            f"INSERT INTO message_keys (message_id, {', '.join(KEY_COLUMNS)})"
            f" VALUES ({', '.join('?' * (len(KEY_COLUMNS) + 1))}) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING"
        )
        insert_message = f"INSERT INTO messages ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        insert_event = "INSERT INTO events (tenant_id, message_id, at, type, status, reason) VALUES (?, ?, ?, ?, ?, ?)"
        key_values = [(row["id"], *(row[c] for c in KEY_COLUMNS)) for row in rows]
        message_values = [tuple(row[c] for c in columns) for row in rows]
        event_values = [(r["tenant_id"], r["id"], r["created_at"], "status", "queued", "accepted") for r in rows]

        def commit_all() -> int:
            for start in range(0, len(rows), size):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(insert_keys, key_values[start : start + size])
                conn.executemany(insert_message, message_values[start : start + size])
                conn.executemany(insert_event, event_values[start : start + size])
                conn.execute("COMMIT")
            return len(rows)

        return cpu_per_item(commit_all)
    finally:
        conn.close()


def report(
    args: argparse.Namespace, bare_rps: float, measured: dict[str, Any], floors: dict[str, dict[int, float]]
) -> str:
    budget = 1e6 / (TARGET * bare_rps)
    bare_us = 1e6 / bare_rps
    python = median(measured["python"]) or 0.0
    typical = 32 if 32 in args.batches else args.batches[0]
    floor_all = floors["all"][typical]
    lines = [
        "# Single-job accept: the budget and the floor",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'bench/accept_floor.py', *sys.argv[1:]])}`",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in machine_info().items()],
        f"- load average before / after: {args.load_before} / {load_average()}",
        f"- {args.runs} runs of {args.jobs:,} jobs (the ~300 B job of bench/accept.py, every recipient different); "
        "medians; everything pinned to CPU 0",
        "",
        "## The budget",
        "",
        f"Bare aiohttp handler: {bare_rps:,.0f} req/s, i.e. {bare_us:.1f} µs per request. 0.40 of it is "
        f"{TARGET * bare_rps:,.0f} req/s: **{budget:.1f} µs per request** for everything the gateway does.",
        "",
        "## Per-job costs (CPU µs per job)",
        "",
    ]
    rows = [
        ["aiohttp + orjson, as the bare handler pays them", fmt(bare_us, 1), "-"],
        [
            "gateway work outside HTTP and the store (parse, validation, content policy, hash, row, answer)",
            fmt(python, 1),
            "-",
        ],
    ]
    for size in args.batches:
        rows.append(
            [
                f"durable commit through the gateway's store, group commits of {size}",
                fmt(median(measured["commit"][size]), 1),
                fmt(floors["all"][size], 1),
            ]
        )
    for size in args.batches:
        rows.append(
            [
                f"SQLite alone without the recipient and user-id indexes, commits of {size}",
                "-",
                fmt(floors["no-random"][size], 1),
            ]
        )
    lines.append(markdown_table(["cost", "gateway", "sqlite3 alone"], rows))
    total = bare_us + python + floor_all
    lines += [
        "",
        "## Reading",
        "",
        f"- With commits of {typical} (what 64 connections produce), SQLite's own work for one job with "
        f"the delivery log's indexes is {floor_all:.1f} µs: {100 * floor_all / budget:.0f}% of the budget before "
        "any Python code runs.",
        f"- aiohttp's own handling ({bare_us:.1f} µs) + the gateway's work per job ({python:.1f} µs) + that "
        f"floor = {total:.1f} µs per request: at most {1e6 / total:,.0f} req/s = "
        f"{(1e6 / total) / bare_rps:.2f} of the bare handler, whatever the rest of the path costs.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=6400)
    parser.add_argument("--batches", default="16,32,64,128")
    parser.add_argument("--seconds", type=float, default=4.0, help="per bare-handler run")
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOC.relative_to(ROOT)}")
    args = parser.parse_args()
    args.batches = [int(size) for size in args.batches.split(",") if size]
    args.load_before = load_average()
    # bench_baseline reads these from accept.py's own options.
    args.warmup, args.connections = 2.0, 64
    baseline = bench_baseline(args)
    bare_rps = baseline.rps or 0.0
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0})
    with temporary_directory("bench-floor-") as directory:
        measured = asyncio.run(measure_gateway(args, directory))
        schema_db = directory / "gateway.db"
        floors: dict[str, dict[int, float]] = {"all": {}, "no-random": {}}
        for label, skip in (("all", ()), ("no-random", RANDOM_INDEXES)):
            for size in args.batches:
                runs = []
                for run, rows in enumerate(measured["rows"]):
                    path = directory / f"sqlite-only-{label}-{size}-{run}.db"
                    runs.append(sqlite_only(schema_db, rows, measured["columns"], size, path, skip))
                floors[label][size] = median(runs) or 0.0
    text = report(args, bare_rps, measured, floors)
    print(text)
    if not args.no_write:
        write_doc(DOC, text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

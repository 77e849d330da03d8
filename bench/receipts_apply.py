"""The fixed CPU cost of applying provider receipts in small calls, as a trickle brings them.

    .venv/bin/python bench/receipts_apply.py [--runs 5] [--messages 1000] [--batches 1,100]
        [--stores sqlite,postgresql] [--match reference,provider_id] [--gateway-root DIR]

At a trickle each receipt arrives alone (the sandbox, like Twilio, posts one status callback per
message), so the API process applies receipts one call at a time. For each store (a SQLite file,
WAL, synchronous=FULL as `gateway serve` runs it; a PostgreSQL of our own from tests/servers.py, a
fresh database per measurement) a child process accepts --messages messages through the gateway's
store, dispatches them (the `sending` mark, then the `sent` outcome with the provider's id), and
applies one `delivered` receipt per message through the store's `apply_receipts`, --batch receipts
per call. Receipts either name our message (`reference`, as the sandbox's do) or only the
provider's id (`provider_id`, as Twilio's do). A warm-up of 50 receipts (statement caches, the
connection) is not counted.

Figure: CPU microseconds of the child process (all its threads: time.process_time) per receipt
over the timed calls, median of --runs. PostgreSQL's own work is in the server's processes and not
counted. `--gateway-root DIR` (e.g. `git archive main | tar -x -C DIR`) measures that tree's store
too, alternating with this one run by run. Prints a markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import PYTHON, fmt, load_average, machine_info, markdown_table, median, temporary_directory  # noqa: E402
from dispatch import _fresh_database  # noqa: E402

WARMUP = 50
PROVIDER = "sandbox"


# --- the child: one measurement in the source tree it was started in ----------------------------


def message_rows(count: int, now: float) -> list[dict[str, Any]]:
    """Queued SMS jobs as the accept path stores them."""
    from tests.integration.direct import message_row

    return [message_row(now, to_addr=f"+1415555{i % 10000:04d}", category="transactional") for i in range(count)]


async def measure(url: str, messages: int, batch: int, match: str) -> float:
    from gateway.domain.models import AttemptOutcome, Status
    from gateway.store.records import Outcome, ReceiptRecord, SendingMark
    from gateway.store.sql import leases, outcomes
    from gateway.store.store import SqlStore

    store = SqlStore.open(url)
    await store.migrate()
    try:
        now = time.time()
        rows = message_rows(WARMUP + messages, now)
        for start in range(0, len(rows), 500):
            accepted = await store.accept(rows[start : start + 500])
            assert all(o.kind == "accepted" for o in accepted), accepted
        ids = [row["id"] for row in rows]
        pmids = {message_id: f"SBX{uuid.uuid4().hex}" for message_id in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = [SendingMark(m, "default", 1, "sms", PROVIDER, None, now, worker=None) for m in chunk]
            await store.db.write(leases.mark_sending, marks, now + 60)
            sent = [
                Outcome(
                    m,
                    "default",
                    Status.SENT,
                    now,
                    reason="provider.accepted",
                    attempt=1,
                    attempt_outcome=AttemptOutcome.SENT,
                    provider=PROVIDER,
                    provider_message_id=pmids[m],
                    next_attempt_at=now + 3600,
                )
                for m in chunk
            ]
            await store.db.write(outcomes.record_outcomes, sent)
        receipts = [
            ReceiptRecord(
                provider=PROVIDER,
                provider_message_id=pmids[m],
                status="delivered",
                reference=m if match == "reference" else None,
                raw='{"status":"delivered"}',
            )
            for m in ids
        ]
        for receipt in receipts[:WARMUP]:
            await store.apply_receipts([receipt])
        timed = receipts[WARMUP:]
        applied = 0
        started = time.process_time()
        for start in range(0, len(timed), batch):
            summary = await store.apply_receipts(timed[start : start + batch])
            applied += summary["applied"]
        spent = time.process_time() - started
        assert applied == len(timed), (applied, len(timed))
        last = await store.get_message("default", ids[-1])
        assert last is not None and last["status"] == "delivered", last
        return spent / len(timed) * 1e6
    finally:
        await store.close()


def child(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(args.source))
    if args.store == "sqlite":
        url = f"sqlite:///{args.directory / f'gateway-{uuid.uuid4().hex[:8]}.db'}"
    else:
        url = asyncio.run(_fresh_database(args.postgres_url, f"bench_receipts_{uuid.uuid4().hex[:8]}"))
    print(json.dumps({"us_per_receipt": asyncio.run(measure(url, args.messages, args.batch, args.match))}))
    return 0


# --- the parent: every measurement, alternating sources run by run --------------------------------


@contextlib.contextmanager
def postgres(stores: list[str]) -> Iterator[str | None]:
    if "postgresql" not in stores:
        yield None
        return
    sys.path.insert(0, str(ROOT))
    from tests.servers import postgres_server

    with postgres_server() as url:
        if url is None:
            raise SystemExit("no PostgreSQL here: pass --stores sqlite")
        yield url.replace("postgresql://", "postgres://", 1) if url.startswith("postgres://") else url


def run_child(
    source: Path, store: str, batch: int, match: str, args: argparse.Namespace, directory: Path, pg: str | None
) -> float:
    argv = [
        PYTHON,
        str(Path(__file__).resolve()),
        "--child",
        "--source",
        str(source),
        "--store",
        store,
        "--batch",
        str(batch),
        "--match",
        match,
        "--messages",
        str(args.messages),
        "--directory",
        str(directory),
    ]
    if pg is not None:
        argv += ["--postgres-url", pg]
    done = subprocess.run(argv, cwd=source, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({source}, {store}, {batch}, {match}): {done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["us_per_receipt"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--batches", default="1,100")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--match", default="reference,provider_id")
    parser.add_argument("--gateway-root", type=Path, default=None, help="a baseline source, run in the same launch")
    # The child's own options.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--store", default="sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--directory", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--postgres-url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    # Stopped by SIGTERM, the PostgreSQL server and temporary files are still cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    batches = [int(b) for b in args.batches.split(",") if b]
    stores = [s for s in args.stores.split(",") if s]
    matches = [m for m in args.match.split(",") if m]
    sources = [("this tree", ROOT)] + ([("--gateway-root", args.gateway_root.resolve())] if args.gateway_root else [])
    load_before = load_average()
    figures: dict[tuple[str, str, str, int], list[float]] = {}
    with temporary_directory("bench-receipts-") as directory, postgres(stores) as pg:
        for run in range(args.runs):
            for store in stores:
                for match in matches:
                    for batch in batches:
                        # Alternating sources run by run: a change in the machine's load hits both.
                        order = sources if run % 2 == 0 else sources[::-1]
                        for label, source in order:
                            us = run_child(source, store, batch, match, args, directory, pg)
                            figures.setdefault((store, match, label, batch), []).append(us)
                            print(f"run {run + 1}: {store} {match} batch {batch} {label}: {us:.0f} µs", flush=True)
    header = ["store", "receipts name", *[f"{label}, batch {b}" for b in batches for label, _ in sources]]
    rows = [
        [store, match, *[fmt(median(figures[(store, match, label, b)])) for b in batches for label, _ in sources]]
        for store in stores
        for match in matches
    ]
    print()
    print(f"Command: `{' '.join(['.venv/bin/python', 'bench/receipts_apply.py', *sys.argv[1:]])}`")
    print(*[f"- {k}: {v}" for k, v in machine_info().items()], sep="\n")
    print(f"- load average before / after: {load_before} / {load_average()}")
    print(f"- CPU µs per receipt (process time, all threads), median of {args.runs} runs of {args.messages} receipts")
    print()
    print(markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

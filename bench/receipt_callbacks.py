"""Receipt callbacks one per request, into `gateway serve`, closed loop, in one launch.

    .venv/bin/python bench/receipt_callbacks.py [--runs 3] [--messages 20000] [--connections 32]
        [--configs sqlite,pg] [--gateway-root DIR] [--no-write]

Most HTTP providers post a status callback per message, and per status (Twilio: sent, then delivered):
at 1,000 messages a second, thousands of requests a second that each carry one receipt. Each run
starts `gateway serve` as a user does, with the sandbox's own receipts off, accepts --messages jobs in
batches and waits until every one is sent; then --connections connections post one signed sandbox
receipt ("delivered") per request for each message, as fast as they are answered. Reported: callbacks
answered per second, the answers' p99, CPU ms per callback of every process of the gateway (and
PostgreSQL's and Redis's on pg), and whether every message ended delivered. The baseline, in the same
launch: bench/accept.py's bare aiohttp handler offered the same closed loop (parse the body, answer).
With --gateway-root DIR (a `git archive` of another tree, unpacked), that source runs too, alternating
run by run. Results: docs/benchmarks/receipt-callbacks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

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
    markdown_table,
    median,
    source_revision,
    temporary_directory,
    write_doc,
)
from dispatch import (  # noqa: E402
    PostgresCounter,
    SqliteCounter,
    cpu_seconds,
    descendants,
    preload,
)
from trickle import gateway_env, server_pids, servers  # noqa: E402

from providers.sandbox import SIGNATURE_HEADER, sign  # noqa: E402

DOC = ROOT / "docs" / "benchmarks" / "receipt-callbacks.md"
BodyAndHeaders = tuple[bytes, dict[str, str]]


async def closed_loop(url: str, bodies: list[BodyAndHeaders], connections: int) -> tuple[int, float, float | None]:
    """Each body posted once, `connections` at a time; (answered 200, seconds, p99 ms)."""
    import aiohttp

    pending = list(reversed(bodies))
    answered: list[float] = []
    ok = 0

    async def connection(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        while pending:
            body, headers = pending.pop()
            sent = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status in (200, 202):
                    ok += 1
                    answered.append(time.perf_counter() - sent)

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        await asyncio.gather(*(connection(session) for _ in range(connections)))
    seconds = time.perf_counter() - started
    answered.sort()
    p99 = answered[min(len(answered) - 1, int(0.99 * len(answered)))] * 1000 if answered else None
    return ok, seconds, p99


def receipt_bodies(sids: list[str], secret: str) -> list[BodyAndHeaders]:
    import orjson

    bodies = []
    for sid in sids:
        body = orjson.dumps({"receipts": [{"sid": sid, "status": "delivered"}]})
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, int(time.time()), body)}
        bodies.append((body, headers))
    return bodies


def sent_ids_and_secret(database: str, url: str, tmp: Path) -> tuple[list[str], str]:
    query = "SELECT provider_message_id FROM messages WHERE status = 'sent'"
    secret_query = "SELECT value FROM secrets WHERE name = 'sandbox_receipts'"
    if database == "sqlite":
        conn = sqlite3.connect(tmp / "gateway.db")
        try:
            return [row[0] for row in conn.execute(query)], conn.execute(secret_query).fetchone()[0]
        finally:
            conn.close()
    import asyncpg

    async def read() -> tuple[list[str], str]:
        conn = await asyncpg.connect(url)
        try:
            return [row[0] for row in await conn.fetch(query)], await conn.fetchval(secret_query)
        finally:
            await conn.close()

    return asyncio.run(read())


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def one_run(args: argparse.Namespace, source: Path, database: str, pg: str | None, redis: str | None) -> dict:
    with temporary_directory("bench-receipt-callbacks-") as tmp:
        url, port, env = gateway_env(database, tmp, source, pg, redis, "receipts")
        env["GATEWAY_SANDBOX__RECEIPTS"] = "false"
        argv = [PYTHON, "-m", "gateway", "serve"]
        with ServerProcess(
            argv, ready_url=f"http://127.0.0.1:{port}/readyz", env=env, cwd=tmp, ready_timeout=90
        ) as server:
            assert server.proc is not None
            base = f"http://127.0.0.1:{port}"
            counter = SqliteCounter(tmp / "gateway.db") if database == "sqlite" else PostgresCounter(url)
            try:
                preload(base, args.messages, uuid.uuid4().hex[:8])
                if not wait_for(lambda: counter.count("('sent')") >= args.messages, 300):
                    return {"failure": f"not all sent: {counter.statuses()}"}
                sids, secret = sent_ids_and_secret(database, url, tmp)
                bodies = receipt_bodies(sids, secret)
                pids = descendants(server.proc.pid) | (server_pids(pg, redis) if database != "sqlite" else {})
                before = {pid: cpu_seconds(pid) for pid in pids}
                ok, seconds, p99 = asyncio.run(closed_loop(f"{base}/v1/receipts/sandbox", bodies, args.connections))
                spent = sum(cpu_seconds(pid) - before[pid] for pid in pids)
                delivered = wait_for(lambda: counter.count("('delivered')") >= args.messages, 30)
                return {
                    "per_s": ok / seconds,
                    "p99_ms": p99,
                    "cpu_ms": spent * 1000 / max(ok, 1),
                    "answered": ok,
                    "failure": None if delivered and ok == len(bodies) else f"{ok} answered, {counter.statuses()}",
                }
            finally:
                counter.close()


def baseline(args: argparse.Namespace) -> dict:
    """The bare aiohttp handler offered the same closed loop: bodies of the same size (it reads a
    job's `channel`), unsigned (it reads no header)."""
    import orjson

    port = free_port()
    argv = [PYTHON, str(HERE / "accept.py"), "--serve-baseline", str(port)]
    receipt = {"sid": "SBX-0", "status": "delivered"}
    body = orjson.dumps({"channel": "sms", "receipts": [receipt]})
    bodies = [(body, {"Content-Type": "application/json"})] * args.messages
    with ServerProcess(argv, ready_url=f"http://127.0.0.1:{port}/healthz") as server:
        assert server.proc is not None
        before = cpu_seconds(server.proc.pid)
        ok, seconds, p99 = asyncio.run(closed_loop(f"http://127.0.0.1:{port}/v1/messages", bodies, args.connections))
        return {"per_s": ok / seconds, "p99_ms": p99, "cpu_ms": (cpu_seconds(server.proc.pid) - before) * 1000 / ok}


def described(source: Path) -> str:
    """A tree's commit, or its path when it is an unpacked `git archive` (the baseline)."""
    revision = source_revision(source)
    return f"`{source}`" if revision == "not a git work tree" else revision


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--configs", default="sqlite,pg", help="any of sqlite, pg")
    parser.add_argument("--gateway-root", type=Path, default=None, help="a baseline source, run in the same launch")
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOC.relative_to(ROOT)}")
    args = parser.parse_args()
    command = ".venv/bin/python bench/receipt_callbacks.py " + " ".join(sys.argv[1:])
    wanted = args.configs.split(",")
    sources = [("this tree", ROOT)] + ([("baseline", args.gateway_root.resolve())] if args.gateway_root else [])
    results: dict[str, list[dict]] = {}
    bare: list[dict] = []
    with servers(wanted) as (pg, rd):
        for i in range(args.runs):
            bare.append(baseline(args))
            print(
                f"  bare aiohttp run {i + 1}: {fmt(bare[-1]['per_s'])}/s, {fmt(bare[-1]['cpu_ms'], 3)} ms", flush=True
            )
            for database in wanted:
                for name, source in sources[:: -1 if i % 2 else 1]:
                    outcome = one_run(args, source, database, pg, rd)
                    results.setdefault(f"{database}, {name}", []).append(outcome)
                    print(f"  {database}, {name}, run {i + 1}: {outcome}", flush=True)
    rows = [["bare aiohttp handler", fmt(median([b["per_s"] for b in bare])), "1.00", "-", "-"]]
    rows[0][3:] = [fmt(median([b["p99_ms"] for b in bare]), 1), fmt(median([b["cpu_ms"] for b in bare]), 3)]
    for label, runs in results.items():
        good = [r for r in runs if not r["failure"]]
        rate = median([r["per_s"] for r in good])
        rows.append(
            [
                f"{label} ({described(dict(sources)[label.split(', ', 1)[1]])})"
                + (f", {len(runs) - len(good)} failed" if len(good) < len(runs) else ""),
                fmt(rate),
                fmt(rate / median([b["per_s"] for b in bare]), 2) if rate else "-",
                fmt(median([r["p99_ms"] for r in good]), 1),
                fmt(median([r["cpu_ms"] for r in good]), 3),
            ]
        )
    text = "\n".join(
        [
            *doc_header("Receipt callbacks, one receipt per request", "bench/receipt_callbacks.py", command),
            f"{args.messages:,} messages sent, then one signed sandbox receipt per request for each, from"
            f" {args.connections} connections (closed loop); `gateway serve` as a user starts it; medians of"
            f" {args.runs} runs; CPU of every process of the gateway (and PostgreSQL's and Redis's on pg).",
            "",
            markdown_table(["server", "callbacks/s", "x bare", "answer p99 ms", "CPU ms per callback"], rows),
            "",
            "## Every run",
            "",
            *(f"- {label}: {runs}" for label, runs in results.items()),
            f"- bare: {bare}",
            "",
        ]
    )
    print()
    print(text)
    if not args.no_write:
        write_doc(DOC, text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 1 if any(r["failure"] for runs in results.values() for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())

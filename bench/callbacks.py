"""Status callbacks' cost to dispatch, and their lag, in one launch.

    .venv/bin/python bench/callbacks.py [--jobs 10000] [--runs 2] [--rate 500] [--seconds 20]
        [--max-events-per-request 1] [--no-write]

Drain: --jobs jobs are queued through `POST /v1/messages/batch` into `gateway serve --role api`
(nothing dispatched), then one `gateway serve --role all` process (the embedded default, SQLite,
sandbox latency 1 ms, receipts on) dispatches them; the rate is jobs over the seconds until every
one is delivered. Once without a subscription, once with one for `*` (every event: queued, sent,
delivered per message), alternating run by run; with callbacks, also the seconds until the
receiver (an aiohttp server in this process, answering 204) holds every event.

Steady: the same process with the `*` subscription is offered --rate jobs/s for --seconds (a batch
every 100 ms); callback lag is the receiver's arrival time minus the event's own time (the body's
`timestamp`), over every event; "kept up" says whether every job was delivered within 5 s of the
offer's end.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    PYTHON,
    ServerProcess,
    fmt,
    free_port,
    machine_info,
    markdown_table,
    median,
    temporary_directory,
    write_doc,
)

DOC = ROOT / "docs" / "benchmarks" / "callbacks.md"
KEY = "bench-key-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.lags: list[float] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        now = time.time()
        events = (
            body["data"]["events"]
            if body["type"] == "batch"
            else [{**body, "webhook_id": request.headers["webhook-id"]}]
        )
        for event in events:
            if event["webhook_id"] not in self.arrivals:
                self.arrivals[event["webhook_id"]] = now
                at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
                self.lags.append(now - at)
        return web.Response(status=204)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/events", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/events"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


BATCH: dict[str, str] = {}  # [webhooks] batching for the runs with callbacks (--max-events-per-request)


def gateway(workdir: Path, role: str, port: int) -> ServerProcess:
    env = {
        **BATCH,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_DATABASE_URL": f"sqlite:///{workdir / 'gateway.db'}",
        "GATEWAY_API_KEY": KEY,
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_SANDBOX__LATENCY_MS": "1",
        "GATEWAY_SANDBOX__LEDGER_PATH": str(workdir / "ledger.ndjson"),
        "GATEWAY_WEBHOOKS__ALLOW_PRIVATE_NETWORKS": "true",
        "GATEWAY_WEBHOOKS__ALLOW_HTTP": "true",
    }
    argv = [PYTHON, "-m", "gateway", "serve", "--role", role]
    return ServerProcess(argv, env=env, ready_url=f"http://127.0.0.1:{port}/healthz", cwd=ROOT, ready_timeout=90)


def _job(n: int) -> dict[str, Any]:
    return {
        "channel": "sms",
        "to": f"+86138{n:08d}",
        "content": {"text": "Your code is 1234"},
        "category": "transactional",
    }


async def _queue(session: aiohttp.ClientSession, url: str, first: int, count: int) -> None:
    items = [{**_job(n), "idempotency_key": f"k{n}"} for n in range(first, first + count)]
    async with session.post(url + "/v1/messages/batch", json={"messages": items}, headers=HEADERS) as response:
        assert response.status == 200, await response.text()


def _unfinished(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT count(*) FROM messages WHERE status IN ('queued','sending','sent')").fetchone()[0]
        )


def _events(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT count(*) FROM events WHERE type = 'status' AND status != 'sending'").fetchone()[0]
        )


async def drain(jobs: int, callbacks: bool) -> dict[str, float | None]:
    with temporary_directory("bench-callbacks-") as workdir:
        async with Receiver() as receiver, aiohttp.ClientSession() as session:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            with gateway(workdir, "api", port):
                if callbacks:
                    async with session.post(
                        url + "/v1/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=HEADERS
                    ) as response:
                        assert response.status == 201, await response.text()
                for first in range(0, jobs, 1000):
                    await _queue(session, url, first, min(1000, jobs - first))
            db = workdir / "gateway.db"
            started = time.monotonic()
            with gateway(workdir, "all", free_port()):
                delivered_at = None
                while True:
                    now = time.monotonic()
                    if delivered_at is None and _unfinished(db) == 0:
                        delivered_at = now
                    if delivered_at is not None and (not callbacks or len(receiver.arrivals) >= _events(db)):
                        break
                    if now - started > 600:
                        raise RuntimeError("not drained in 600 s")
                    await asyncio.sleep(0.05)
                all_callbacks = time.monotonic()
    return {
        "rate": jobs / (delivered_at - started),
        "callbacks_rate": jobs / (all_callbacks - started) if callbacks else None,
        "callbacks": float(len(receiver.arrivals)),
    }


async def _within(seconds: float, done: Any) -> bool:
    for _ in range(int(seconds / 0.05)):
        if done():
            return True
        await asyncio.sleep(0.05)
    return bool(done())


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def steady(rate: int, seconds: int) -> dict[str, Any]:
    with temporary_directory("bench-callbacks-steady-") as workdir:
        async with Receiver() as receiver, aiohttp.ClientSession() as session:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            with gateway(workdir, "all", port):
                async with session.post(
                    url + "/v1/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=HEADERS
                ) as response:
                    assert response.status == 201
                per_tick = max(1, rate // 10)
                start = time.monotonic()
                for tick in range(seconds * 10):
                    await _queue(session, url, tick * per_tick, per_tick)
                    await asyncio.sleep(max(0.0, start + (tick + 1) / 10 - time.monotonic()))
                offered_for = time.monotonic() - start
                db = workdir / "gateway.db"
                kept_up = await _within(5.0, lambda: _unfinished(db) == 0)
                await _within(30.0, lambda: len(receiver.arrivals) >= _events(db))
                missing = _events(db) - len(receiver.arrivals)
    return {
        "offered": per_tick * seconds * 10 / offered_for,
        "kept_up": kept_up,
        "events": len(receiver.lags),
        "missing": missing,
        "p50": _percentile(receiver.lags, 0.5),
        "p99": _percentile(receiver.lags, 0.99),
        "max": max(receiver.lags) if receiver.lags else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--max-events-per-request", type=int, default=1, help="above 1: batching on")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.max_events_per_request > 1:
        BATCH["GATEWAY_WEBHOOKS__MAX_EVENTS_PER_REQUEST"] = str(args.max_events_per_request)
    runs: dict[bool, list[dict[str, float | None]]] = {False: [], True: []}
    for run in range(args.runs):
        for callbacks in (False, True):
            result = await drain(args.jobs, callbacks)
            runs[callbacks].append(result)
            print(f"drain run {run + 1} callbacks={callbacks}: {result}", flush=True)
    held = await steady(args.rate, args.seconds)
    print(f"steady: {held}", flush=True)
    off = median([r["rate"] for r in runs[False]])
    on = median([r["rate"] for r in runs[True]])
    rows = [
        ["no subscription", fmt(off), "1.00", "-"],
        [
            "subscription for `*`",
            fmt(on),
            fmt(on / off if on and off else None, 2),
            fmt(median([r["callbacks_rate"] for r in runs[True]])),
        ],
    ]
    text = "\n".join(
        [
            "# Status callbacks (`bench/callbacks.py`)",
            "",
            f"`.venv/bin/python bench/callbacks.py --jobs {args.jobs} --runs {args.runs} --rate {args.rate}"
            f" --seconds {args.seconds} --max-events-per-request {args.max_events_per_request}`",
            "",
            "Machine: " + ", ".join(f"{k} {v}" for k, v in machine_info().items()),
            "",
            f"Drain of {args.jobs:,} queued jobs by one `gateway serve --role all` (SQLite), median of {args.runs}:",
            "",
            markdown_table(
                ["configuration", "delivered msg/s", "vs none", "jobs/s until every callback arrived"], rows
            ),
            "",
            f"Steady offer of {held['offered']:,.0f} jobs/s for {args.seconds} s with callbacks for `*`: kept up: "
            f"{'yes' if held['kept_up'] else 'no'}; {held['events']:,} events received"
            f" ({held['missing']} missing after 30 s);"
            f" lag p50 {fmt(held['p50'], 3)} s, p99 {fmt(held['p99'], 3)} s, max {fmt(held['max'], 3)} s.",
            "",
            "Every run: " + "; ".join(f"{'on' if k else 'off'} {[fmt(r['rate']) for r in v]}" for k, v in runs.items()),
        ]
    )
    print(text)
    if not args.no_write:
        write_doc(DOC, text)


if __name__ == "__main__":
    asyncio.run(main())

"""Status callbacks' cost to dispatch, and their lag, in one launch.

    .venv/bin/python bench/callbacks.py [--jobs 10000] [--runs 3] [--rate 500] [--seconds 20]
        [--configs off,on,own] [--steady on,own] [--max-events-per-request 1] [--no-write]

Drain: --jobs jobs are queued through `POST /v1/messages/batch` into `gateway serve --role api`
(nothing dispatched), then one `gateway serve --role all` process (the embedded default, SQLite,
sandbox latency 1 ms, receipts on) dispatches them; the rate is jobs over the seconds until every
one is delivered. Configurations, alternating run by run:

- off: no subscription;
- on: a subscription for `*` (every event: queued, sent, delivered per message), its callbacks
  delivered by the `--role all` process itself (`[webhooks] delivery_process` auto or worker);
- own: the same subscription, its callbacks delivered by a `gateway serve --role callbacks` process
  beside it (`delivery_process = "own"`, as `gateway serve` places them on 2+ cores); both
  processes are started together, inside the timed span.

With callbacks, also the seconds until the receiver (an aiohttp server in this process, answering
204) holds every event.

Steady: the configurations in --steady, each offered --rate jobs/s for --seconds (a batch every
100 ms); callback lag is the receiver's arrival time minus the event's own time (the body's
`timestamp`), over every event; "kept up" says whether every job was delivered within 5 s of the
offer's end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
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


BATCH: dict[str, str] = {}  # settings for every gateway process: --max-events-per-request, --env


def gateway(workdir: Path, role: str, port: int, extra: dict[str, str] | None = None) -> ServerProcess:
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
        **(extra or {}),
    }
    argv = [PYTHON, "-m", "gateway", "serve", "--role", role]
    return ServerProcess(argv, env=env, ready_url=f"http://127.0.0.1:{port}/healthz", cwd=ROOT, ready_timeout=90)


OWN = {"GATEWAY_WEBHOOKS__DELIVERY_PROCESS": "own"}


@contextlib.asynccontextmanager
async def dispatching(workdir: Path, config: str, port: int, *, together: bool = True) -> AsyncIterator[None]:
    """The `--role all` process, and for `own` the `--role callbacks` process beside it, started
    together (a database made already) or one after the other; off the loop, so the receiver
    answers meanwhile."""
    servers = [gateway(workdir, "all", port, OWN if config == "own" else None)]
    if config == "own":
        servers.append(gateway(workdir, "callbacks", free_port(), OWN))
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
        if together:
            await asyncio.gather(*(asyncio.to_thread(server.start) for server in servers))
        else:
            for server in servers:
                await asyncio.to_thread(server.start)
        for server in servers:
            stack.enter_context(server)
        yield


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


async def drain(jobs: int, config: str) -> dict[str, float | None]:
    callbacks = config != "off"
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
            async with dispatching(workdir, config, free_port()):
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


async def steady(config: str, rate: int, seconds: int) -> dict[str, Any]:
    with temporary_directory("bench-callbacks-steady-") as workdir:
        async with Receiver() as receiver, aiohttp.ClientSession() as session:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            async with dispatching(workdir, config, port, together=False):
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


LABELS = {
    "off": "no subscription",
    "on": "subscription for `*`, delivered by the dispatching process",
    "own": "subscription for `*`, delivered by a `--role callbacks` process",
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--configs", default="off,on,own", help="drain configurations: off, on, own")
    parser.add_argument("--steady", default="on,own", help="steady-offer configurations (empty: none)")
    parser.add_argument("--max-events-per-request", type=int, default=1, help="above 1: batching on")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every gateway process (repeat)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    BATCH.update(item.split("=", 1) for item in args.env)
    if args.max_events_per_request > 1:
        BATCH["GATEWAY_WEBHOOKS__MAX_EVENTS_PER_REQUEST"] = str(args.max_events_per_request)
    configs = [c for c in args.configs.split(",") if c]
    runs: dict[str, list[dict[str, float | None]]] = {c: [] for c in configs}
    for run in range(args.runs):
        for config in configs:
            result = await drain(args.jobs, config)
            runs[config].append(result)
            print(f"drain run {run + 1} {config}: {result}", flush=True)
    held = {}
    for config in [c for c in args.steady.split(",") if c]:
        held[config] = await steady(config, args.rate, args.seconds)
        print(f"steady {config}: {held[config]}", flush=True)
    off = median([r["rate"] for r in runs["off"]]) if "off" in runs else None
    rows = []
    for config, results in runs.items():
        rate = median([r["rate"] for r in results])
        rows.append(
            [
                LABELS[config],
                fmt(rate),
                fmt(rate / off if rate and off else None, 2),
                fmt(median([r["callbacks_rate"] for r in results])) if config != "off" else "-",
            ]
        )
    steady_lines = [
        f"Steady offer, {LABELS[config]}: {h['offered']:,.0f} jobs/s for {args.seconds} s; kept up: "
        f"{'yes' if h['kept_up'] else 'no'}; {h['events']:,} events received ({h['missing']} missing after 30 s);"
        f" lag p50 {fmt(h['p50'], 3)} s, p99 {fmt(h['p99'], 3)} s, max {fmt(h['max'], 3)} s."
        for config, h in held.items()
    ]
    text = "\n".join(
        [
            "# Status callbacks (`bench/callbacks.py`)",
            "",
            f"`.venv/bin/python bench/callbacks.py --jobs {args.jobs} --runs {args.runs} --rate {args.rate}"
            f" --seconds {args.seconds} --configs {args.configs} --steady {args.steady}"
            f" --max-events-per-request {args.max_events_per_request}"
            + "".join(f" --env {item}" for item in args.env)
            + "`",
            "",
            "Machine: " + ", ".join(f"{k} {v}" for k, v in machine_info().items()),
            "",
            f"Drain of {args.jobs:,} queued jobs by one `gateway serve --role all` (SQLite), median of {args.runs}:",
            "",
            markdown_table(
                ["configuration", "delivered msg/s", "vs none", "jobs/s until every callback arrived"], rows
            ),
            "",
            *steady_lines,
            "",
            "Every run: " + "; ".join(f"{k} {[fmt(r['rate']) for r in v]}" for k, v in runs.items()),
        ]
    )
    print(text)
    if not args.no_write:
        write_doc(DOC, text)


if __name__ == "__main__":
    asyncio.run(main())

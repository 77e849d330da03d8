"""Limit decisions per second: memory and Redis State backends against raw Redis round trips.

    .venv/bin/python bench/limits.py [--redis-url redis://...] [--runs 5] [--seconds 1.0] [--live-subjects N]

Without --redis-url it starts a throwaway redis-server on loopback (tests/servers.py). Every
figure is the median of --runs timed runs in this one process, so the raw round trips (PING and
an EVALSHA of `return 1`) and the backends are measured against the same server and load.
A "decision" is one throughput request or one cap reservation; a call decides a whole batch.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
import redis.asyncio as aioredis

from gateway.domain.limits import CapRule, Period
from gateway.state.base import CapReservation, State, ThroughputRequest
from gateway.state.memory import MemoryState
from gateway.state.redis import RedisState
from tests.servers import redis_server

RULES = (CapRule("sms", 1, Period.DAY), CapRule("sms", 3, Period.WEEK), CapRule("all", 5, Period.WEEK))


async def rate(call: Callable[[], Awaitable[object]], per_call: int, seconds: float) -> float:
    """Decisions per second of `call` repeated for about `seconds`."""
    for _ in range(20):  # warm up connections and script caches
        await call()
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        await call()
        n += 1
        if n % 16 == 0 and time.perf_counter() >= deadline:
            break
    return n * per_call / (time.perf_counter() - start)


def throughput_batch(size: int, tag: str) -> Callable[[State], Awaitable[object]]:
    # 1000 distinct keys at a rate no batch can exhaust: every decision runs the full script path.
    reqs = [ThroughputRequest.single(f"bench:{tag}:{i % 1000}", rate=1e6, burst=1000) for i in range(size)]
    return lambda state: state.acquire_throughput(reqs)


def caps_batch(size: int) -> Callable[[State], Awaitable[object]]:
    counter = iter(range(10**12))

    def call(state: State) -> Awaitable[object]:
        # fresh ids over 10,000 recipients: a realistic mix of allowed and blocked reservations
        batch = []
        for _ in range(size):
            i = next(counter)
            batch.append(CapReservation(f"m{i}", f"u:{i % 10_000}", "marketing", "sms", RULES, 30 * 86_400))
        return state.reserve_caps(batch)

    return call


async def bench(url: str, runs: int, seconds: float) -> list[tuple[str, int, float, float]]:
    """Rows of (what, batch size, median decisions/s, median ratio to PING in the same round).

    Rounds are interleaved (every configuration once per round), so load from anything else on
    the machine hits all configurations alike and the ratios stay meaningful."""
    client = aioredis.Redis.from_url(url)
    sha = await client.script_load("return 1")
    memory = MemoryState()
    red = RedisState.from_url(url, namespace=f"gw:bench{uuid.uuid4().hex[:6]}:")
    configs: list[tuple[str, int, Callable[[], Awaitable[object]]]] = [
        ("raw PING", 1, lambda: client.ping()),  # type: ignore[arg-type,return-value]
        ("raw EVALSHA return 1", 1, lambda: client.evalsha(sha, 0)),  # type: ignore[arg-type,return-value]
    ]
    for name, state in (("memory", memory), ("redis", red)):
        for size in (1, 100):
            tp = throughput_batch(size, name)
            configs.append((f"{name} acquire_throughput", size, lambda tp=tp, state=state: tp(state)))
            cp = caps_batch(size)
            configs.append((f"{name} reserve_caps", size, lambda cp=cp, state=state: cp(state)))
    results: list[list[float]] = [[] for _ in configs]
    ratios: list[list[float]] = [[] for _ in configs]
    for _ in range(runs):
        this_round = [await rate(call, size, seconds) for _, size, call in configs]
        for i, value in enumerate(this_round):
            results[i].append(value)
            ratios[i].append(value / this_round[0])
    await client.aclose()
    await red.close()
    return [
        (what, size, statistics.median(results[i]), statistics.median(ratios[i]))
        for i, (what, size, _) in enumerate(configs)
    ]


async def reservation_latency(live_subjects: int, calls: int = 20_000) -> tuple[float, float, float]:
    """The memory State with `live_subjects` recipients' cap logs held (a day's marketing caps over
    a large list): µs per single reservation, p50 / p99 / max over `calls` (its sweeps of expired
    keys fall inside some of them)."""
    memory = MemoryState()
    for start in range(0, live_subjects, 1000):
        await memory.reserve_caps(
            [
                CapReservation(f"f{i}", f"u:{i}", "marketing", "sms", RULES, 30 * 86_400)
                for i in range(start, min(start + 1000, live_subjects))
            ]
        )
    took = []
    for i in range(calls):
        one = [CapReservation(f"m{i}", f"v:{i}", "marketing", "sms", RULES, 30 * 86_400)]
        started = time.perf_counter()
        await memory.reserve_caps(one)
        took.append((time.perf_counter() - started) * 1e6)
    took.sort()
    return took[len(took) // 2], took[len(took) * 99 // 100], took[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-url")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument(
        "--live-subjects",
        type=int,
        default=0,
        help="also: single reservations on the memory State holding this many recipients' caps (latency)",
    )
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
        loop = "uvloop"
    except ImportError:
        loop = "asyncio"

    def run(url: str) -> list[tuple[str, int, float, float]]:
        return asyncio.run(bench(url, args.runs, args.seconds))

    if args.redis_url:
        rows = run(args.redis_url)
    else:
        with redis_server() as url:
            if url is None:
                sys.exit("no redis-server on PATH; pass --redis-url")
            rows = run(url)
    print(
        f"python {platform.python_version()}, redis-py {redis.__version__}, {loop}, "
        f"median of {args.runs} x {args.seconds}s"
    )
    print(f"{'what':32} {'batch':>5} {'decisions/s':>12} {'vs PING':>8}")
    for what, size, value, ratio in rows:
        print(f"{what:32} {size:>5} {value:>12,.0f} {ratio:>7.2f}x")
    if args.live_subjects:
        for _ in range(args.runs):
            p50, p99, most = asyncio.run(reservation_latency(args.live_subjects))
            print(
                f"memory reserve_caps with {args.live_subjects:,} live subjects: p50 {p50:.1f} us, p99 {p99:.1f} us,",
                end="",
            )
            print(f" max {most:.1f} us")


if __name__ == "__main__":
    main()

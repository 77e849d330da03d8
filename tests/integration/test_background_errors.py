"""No silent failure: a background loop that survives an error logs it with its loop's name and counts
it in `gateway_background_errors_total{loop=...}`, as served on /metrics.

The error is a real one: the loops run on a real SQLite store whose schema was never created, so
every query they make fails inside SQLite ("no such table"), as it would on a damaged database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from structlog.testing import capture_logs

from gateway.metrics import Metrics
from gateway.number_pool import NumberPool
from gateway.settings import NumbersSettings
from gateway.state.memory import MemoryState
from gateway.store.store import SqlStore
from providers.sandbox import SandboxProvider
from tests.integration.direct import build_worker


@asynccontextmanager
async def store_without_schema(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'empty.db'}", synchronous="OFF")
    try:
        yield store
    finally:
        await store.close()


def errors_counted(metrics: Metrics, loop: str) -> float:
    return metrics.registry.get_sample_value("gateway_background_errors_total", {"loop": loop}) or 0.0


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the loop never reported its error"
        await asyncio.sleep(0.01)


def reports(logs: list[dict[str, Any]], loop: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry.get("loop") == loop]


async def test_the_number_health_tick_logs_and_counts_each_error_and_keeps_ticking(tmp_path: Path) -> None:
    metrics = Metrics()
    async with store_without_schema(tmp_path) as store:
        pool = NumberPool(store, MemoryState(), NumbersSettings(tick_seconds=0.01), metrics=metrics)
        with capture_logs() as logs:
            pool.start(ticking=True)
            try:
                await until(lambda: errors_counted(metrics, "numbers-tick") >= 2)
            finally:
                await pool.close()
    first = reports(logs, "numbers-tick")[0]
    assert first["event"] == "number health tick failed"
    assert first["log_level"] == "error"
    assert "no such table" in first["error"]
    assert isinstance(first["exc_info"], Exception), "the traceback goes with the line"
    exposed = generate_latest(metrics.registry).decode()  # what GET /metrics answers
    assert 'gateway_background_errors_total{loop="numbers-tick"}' in exposed


async def test_the_dispatch_loop_logs_and_counts_a_failed_claim_and_carries_on(tmp_path: Path) -> None:
    metrics = Metrics()
    async with store_without_schema(tmp_path) as store:
        worker = build_worker(
            store, MemoryState(), [SandboxProvider(receipt_url=None, secret="s", latency_ms=0)], metrics=metrics
        )
        with capture_logs() as logs:
            worker.start()
            try:
                await until(lambda: errors_counted(metrics, "dispatch") >= 1)
                assert all(not task.done() for task in worker._tasks), "every worker loop is still running"
            finally:
                await worker.stop()
    [first, *_] = reports(logs, "dispatch")
    assert first["event"] == "claiming due jobs failed; retrying"
    assert "no such table: messages" in first["error"]

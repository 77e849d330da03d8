"""The retry budget per provider, counted in the State so it holds across worker processes.

Counting every send in Redis would cost a round trip per send; instead each worker counts
locally and syncs once a second (one batched call), deciding in between on the last shared
totals plus its own unsynced counts. The budget can overshoot by at most what the workers send
in one sync interval, which is the price of keeping Redis off the per-send path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import structlog

from gateway.background import survived
from gateway.domain.retry import RetryBudgetPolicy, retry_within_budget
from gateway.metrics import Metrics
from gateway.state.base import State, WindowCounter

log = structlog.get_logger("gateway.retry_budget")
SYNC_SECONDS = 1.0


class RetryBudget:
    def __init__(self, state: State, policy: RetryBudgetPolicy, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.state = state
        self.policy = policy
        self._pending: dict[tuple[str, str], int] = defaultdict(int)
        self._totals: dict[tuple[str, str], int] = defaultdict(int)
        self._task: asyncio.Task[None] | None = None

    def _counter(self, provider: str, kind: str) -> WindowCounter:
        return WindowCounter(f"retry-budget:{provider}:{kind}", self.policy.window_seconds)

    def allows_retry(self, provider: str) -> bool:
        first = self._totals[(provider, "first")] + self._pending[(provider, "first")]
        retries = self._totals[(provider, "retry")] + self._pending[(provider, "retry")]
        return retry_within_budget(self.policy, first, retries)

    def record(self, provider: str, is_retry: bool) -> None:
        self._pending[(provider, "retry" if is_retry else "first")] += 1

    async def sync(self) -> None:
        keys = sorted(set(self._pending) | set(self._totals))
        if not keys:
            return
        increments = [(self._counter(p, k), self._pending.get((p, k), 0)) for p, k in keys]
        pending = dict(self._pending)
        self._pending.clear()
        try:
            totals = await self.state.incr_counters(increments)
        except Exception:
            for key, count in pending.items():  # not lost: counted at the next sync
                self._pending[key] += count
            raise
        for key, total in zip(keys, totals, strict=True):
            self._totals[key] = total

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retry-budget")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            try:
                await self.sync()
            except Exception as exc:  # noqa: BLE001 - the counts are kept and sent at the next sync
                survived(self.metrics, "retry-budget", "syncing the retry budget failed", exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.sync()
        except Exception as exc:  # noqa: BLE001 - closing goes on; the last counts only shape a budget
            survived(self.metrics, "retry-budget", "syncing the retry budget at close failed", exc)

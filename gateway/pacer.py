"""Throughput pacing: a send waits here until every limit on it (provider, account, sender number)
grants, so providers see a smooth rate across all worker processes, never a burst.

Waiting sends form one FIFO lane per set of limits; each lane asks the State for a few grants at a
time and sleeps exactly as long as the limiter says, so a 50/s provider costs ~50 State calls a
second per worker, not one per waiting send per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from gateway.background import survived
from gateway.domain.limits import ThroughputRule, ThroughputTable
from gateway.metrics import Metrics
from gateway.state.base import RateLimit, State, ThroughputRequest

log = structlog.get_logger("gateway.pacer")
MAX_ASK = 64


@dataclass
class _Lane:
    waiting: deque[tuple[ThroughputRequest, asyncio.Future[None]]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class ThroughputPacer:
    def __init__(
        self,
        state: State,
        table: ThroughputTable,
        accounts: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.state = state
        self.table = table
        # provider name -> its account ("twilio:AC123"): sections sharing an account share its limit.
        self.accounts = dict(accounts or {})
        self._lanes: dict[tuple[str, ...], _Lane] = {}

    def request_for(
        self, provider: str, sender: str | None, segments: int, sender_rate: float | None = None
    ) -> ThroughputRequest | None:
        """`sender_rate` (messages per second) is the sender number's own, from its pool; it wins
        over the throughput table's rule for numbers."""
        limits: list[RateLimit] = []
        costs: list[int] = []
        for kind, name in (("provider", provider), ("account", self.accounts.get(provider)), ("number", sender)):
            if name is None:
                continue
            rule = self.table.lookup(kind, name)
            if kind == "number" and sender_rate is not None:
                rule = ThroughputRule(sender_rate, rule.burst if rule is not None else 1)
            if rule is not None:
                limits.append(RateLimit(ThroughputTable.key(kind, name), rule.rate, rule.burst))
                costs.append(rule.cost(segments))
        return ThroughputRequest(tuple(limits), costs=tuple(costs)) if limits else None

    async def admit(
        self, provider: str, sender: str | None = None, segments: int = 1, *, sender_rate: float | None = None
    ) -> None:
        request = self.request_for(provider, sender, segments, sender_rate)
        if request is None:
            return
        key = tuple(limit.key for limit in request.limits)
        lane = self._lanes.setdefault(key, _Lane())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.waiting.append((request, future))
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._drain(lane), name=f"pacer:{'+'.join(key)}")
        await future

    async def _drain(self, lane: _Lane) -> None:
        while lane.waiting:
            batch = [lane.waiting[i] for i in range(min(MAX_ASK, len(lane.waiting)))]
            try:
                decisions = await self.state.acquire_throughput([request for request, _ in batch])
            except Exception as exc:  # noqa: BLE001 - sends are held, not lost, until the State answers
                survived(
                    self.metrics,
                    "pacer",
                    "throughput limiter unavailable; holding sends",
                    exc,
                    waiting=len(lane.waiting),
                )
                await asyncio.sleep(0.5)
                continue
            wait = 0.0
            granted = 0
            for (_, future), decision in zip(batch, decisions, strict=True):
                if not decision.allowed:
                    wait = decision.retry_after
                    break  # first come, first served: nobody overtakes a refused send
                granted += 1
                if not future.done():
                    future.set_result(None)
            for _ in range(granted):
                lane.waiting.popleft()
            while lane.waiting and lane.waiting[0][1].done():  # cancelled while waiting
                lane.waiting.popleft()
            if wait > 0:
                await asyncio.sleep(max(wait, 0.001))

    async def close(self) -> None:
        for lane in self._lanes.values():
            if lane.task is not None:
                lane.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.task

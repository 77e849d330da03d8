"""The State port in process memory: the embedded default, for one process and one event loop.

No method awaits between reading and writing, so every decision is atomic with respect to the
other coroutines of the loop - the same guarantee the Redis scripts give across processes.
Keys are the Redis keys, so the two storages can be compared entry by entry.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence

from gateway.domain.limits import ALL_CHANNELS, cap_block, gcra
from gateway.state.base import (
    CapDecision,
    CapReservation,
    ThroughputDecision,
    ThroughputRequest,
    WindowCounter,
    cap_keys,
    to_us,
)

NAMESPACE = "gw:"
# Expired entries are dropped lazily on access and by a sweep every this many operations, so
# memory stays proportional to the live keys without a timer task.
_SWEEP_EVERY = 8192
_SECOND_US = 1_000_000


class _Expiries:
    """When each key of one store expires, and its keys by the second they expire in, so a sweep
    visits only what has expired. A pass over every live key instead took ~70 ms of the loop with a
    million recipients' caps held (a day's marketing caps; two logs each), every 8,192 operations,
    while every process's reservations waited (bench/limits.py --live-subjects)."""

    def __init__(self) -> None:
        self.at: dict[str, int] = {}
        self._by_second: dict[int, set[str]] = {}
        self._seconds: list[int] = []  # a heap of _by_second's keys

    def set(self, key: str, at_us: int) -> None:
        before = self.at.get(key)
        self.at[key] = at_us
        second = at_us // _SECOND_US
        if before is not None:
            if before // _SECOND_US == second:
                return
            self._by_second[before // _SECOND_US].discard(key)
        keys = self._by_second.get(second)
        if keys is None:
            keys = self._by_second[second] = set()
            heapq.heappush(self._seconds, second)
        keys.add(key)

    def expired(self, now_us: int) -> list[str]:
        """The keys whose whole second has passed, forgotten here; the caller drops their entries."""
        gone: list[str] = []
        while self._seconds and (self._seconds[0] + 1) * _SECOND_US <= now_us:
            for key in self._by_second.pop(heapq.heappop(self._seconds)):
                del self.at[key]
                gone.append(key)
        return gone


class MemoryState:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tat: dict[str, int] = {}
        self._logs: dict[str, dict[str, int]] = {}  # key -> reservation id -> send time (µs)
        self._log_expiry = _Expiries()
        self._counters: dict[str, dict[int, int]] = {}
        self._counter_expiry = _Expiries()
        self._ops = 0

    def _now_us(self) -> int:
        return to_us(self._clock())

    def _tick(self, now: int, n: int) -> None:
        self._ops += n
        if self._ops < _SWEEP_EVERY:
            return
        self._ops = 0
        self._tat = {k: v for k, v in self._tat.items() if v > now}
        for key in self._log_expiry.expired(now):
            self._logs.pop(key, None)
        for key in self._counter_expiry.expired(now):
            self._counters.pop(key, None)

    async def acquire_throughput(self, requests: Sequence[ThroughputRequest]) -> list[ThroughputDecision]:
        now = self._now_us()
        out = []
        for req in requests:
            keys = [NAMESPACE + "tp:" + lim.key for lim in req.limits]
            results = [
                gcra(self._tat.get(k, 0), now, lim.interval_us, lim.burst, req.cost_of(j))
                for j, (k, lim) in enumerate(zip(keys, req.limits, strict=True))
            ]
            retry, blocking = 0, -1
            for j, res in enumerate(results):
                if not res.allowed and res.retry_after_us > retry:
                    retry, blocking = res.retry_after_us, j
            if blocking < 0:
                for k, res in zip(keys, results, strict=True):
                    self._tat[k] = res.tat_us
            out.append(
                ThroughputDecision(
                    blocking < 0, retry / 1e6, now / 1e6, req.limits[blocking].key if blocking >= 0 else None
                )
            )
        self._tick(now, len(requests))
        return out

    def _log(self, key: str, now: int, retention_us: int) -> dict[str, int]:
        if self._log_expiry.at.get(key, now + 1) <= now:
            self._logs.pop(key, None)
        log = self._logs.setdefault(key, {})
        horizon = now - retention_us
        for rid in [rid for rid, ts in log.items() if ts <= horizon]:
            del log[rid]
        return log

    async def reserve_caps(self, reservations: Sequence[CapReservation]) -> list[CapDecision]:
        now = self._now_us()
        out = []
        for r in reservations:
            retention_us = to_us(r.retention)
            keys = cap_keys(NAMESPACE, r)
            logs = (self._log(keys[0], now, retention_us), self._log(keys[1], now, retention_us))
            if r.id in logs[0]:
                out.append(CapDecision(True, at=now / 1e6, already_held=True))
                continue
            entries = {r.channel: sorted(logs[0].values()), ALL_CHANNELS: sorted(logs[1].values())}
            block, frees = cap_block(entries, now, r.rules)
            if block >= 0:
                out.append(CapDecision(False, r.rules[block], frees / 1e6, now / 1e6))
                continue
            for key, log in zip(keys, logs, strict=True):
                log[r.id] = now
                self._log_expiry.set(key, now + retention_us + 1_000_000)
            out.append(CapDecision(True, at=now / 1e6))
        self._tick(now, len(reservations))
        return out

    async def release_caps(self, reservations: Sequence[CapReservation]) -> list[bool]:
        out = []
        for r in reservations:
            removed = False
            for key in cap_keys(NAMESPACE, r):
                log = self._logs.get(key)
                if log is not None and log.pop(r.id, None) is not None:
                    removed = True
            out.append(removed)
        return out

    def _count(self, c: WindowCounter, amount: int, now: int) -> int:
        key = NAMESPACE + "ctr:" + c.key
        if self._counter_expiry.at.get(key, now + 1) <= now:
            self._counters.pop(key, None)
        idx = now // c.bucket_us
        buckets = self._counters.get(key)
        if amount != 0:
            buckets = self._counters.setdefault(key, {})
            buckets[idx] = buckets.get(idx, 0) + amount
            self._counter_expiry.set(key, now + (c.bucket_us * (c.buckets + 1) // 1000 + 1000) * 1000)
        if buckets is None:
            return 0
        total = 0
        for b in list(buckets):
            if b > idx - c.buckets:
                total += buckets[b]
            elif amount != 0:
                del buckets[b]
        return total

    async def incr_counters(self, increments: Sequence[tuple[WindowCounter, int]]) -> list[int]:
        now = self._now_us()
        out = [self._count(c, amount, now) for c, amount in increments]
        self._tick(now, len(increments))
        return out

    async def read_counters(self, counters: Sequence[WindowCounter]) -> list[int]:
        now = self._now_us()
        return [self._count(c, 0, now) for c in counters]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

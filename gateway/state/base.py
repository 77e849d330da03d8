"""The State port: rate limits, frequency caps and short-lived counters shared by all workers.

Batch-first: a dispatcher claims jobs in batches and decides them with one call per batch,
because one Redis round trip per decision would dominate dispatch cost. Within a batch the
decisions are taken in order, each seeing the effects of the ones before it, exactly as if they
had been made one call at a time.

Two storages implement it with the same arithmetic (gateway.domain.limits):
`MemoryState` (one process, the embedded default) and `RedisState` (any number of processes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gateway.domain.limits import ALL_CHANNELS, US_PER_S, CapRule, emission_interval_us


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `rate` units per second on `key`, `burst` of them back to back from idle."""

    key: str
    rate: float
    burst: int = 1

    def __post_init__(self) -> None:
        emission_interval_us(self.rate)  # validates rate > 0
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst!r}")

    @property
    def interval_us(self) -> int:
        return emission_interval_us(self.rate)


@dataclass(frozen=True, slots=True)
class ThroughputRequest:
    """`cost` units against every limit in `limits` (e.g. provider, account and sender number):
    granted only if all allow, and then taken from all; refused ones take nothing. `costs`, when
    given, is one cost per limit, for limits counted in different units (a provider counting
    segments, a sender number counting messages)."""

    limits: tuple[RateLimit, ...]
    cost: int = 1
    costs: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.limits:
            raise ValueError("a throughput request needs at least one limit")
        if self.costs is not None and len(self.costs) != len(self.limits):
            raise ValueError("costs needs one cost per limit")
        if min(self.costs or (self.cost,)) < 1:
            raise ValueError(f"cost must be >= 1, got {self.costs or self.cost!r}")

    def cost_of(self, index: int) -> int:
        return self.cost if self.costs is None else self.costs[index]

    @classmethod
    def single(cls, key: str, rate: float, burst: int = 1, cost: int = 1) -> ThroughputRequest:
        return cls((RateLimit(key, rate, burst),), cost)


@dataclass(frozen=True, slots=True)
class ThroughputDecision:
    allowed: bool
    retry_after: float  # seconds to wait before asking again; 0.0 when allowed
    at: float  # the clock the decision was taken at (epoch seconds; Redis server time there)
    blocking: str | None = None  # the key of the limit that refused (the one to wait longest for)


@dataclass(frozen=True, slots=True)
class CapReservation:
    """Reserve one send to `subject` (see gateway.domain.limits.cap_subject) if `rules` allow.

    `id` names the reservation (e.g. the message id): reserving the same id again is a no-op
    that reports allowed, so a retried dispatch cannot count twice, and release_caps uses it.
    `retention` (seconds) is how long sends are remembered: CapTable.retention_seconds, the
    same for every reservation, so no rule set trims what another one still counts.
    """

    id: str
    subject: str
    category: str
    channel: str
    rules: tuple[CapRule, ...]
    retention: float

    def __post_init__(self) -> None:
        for rule in self.rules:
            if not rule.applies_to(self.channel):
                raise ValueError(f"cap rule {rule} does not apply to channel {self.channel!r}")
            if rule.period.seconds > self.retention:
                raise ValueError(f"retention {self.retention}s is shorter than the rule {rule}")


@dataclass(frozen=True, slots=True)
class CapDecision:
    allowed: bool
    rule: CapRule | None = None  # the rule that blocks (the one that frees up last)
    retry_at: float | None = None  # epoch seconds when the blocking rule lets one more through
    at: float = 0.0  # the clock the decision was taken at
    already_held: bool = False  # allowed because this reservation id was already held


@dataclass(frozen=True, slots=True)
class WindowCounter:
    """A sliding-window counter: the sum of the last `buckets` buckets of `window / buckets`
    seconds each, i.e. the count over the window to within one bucket."""

    key: str
    window: float
    buckets: int = 10

    def __post_init__(self) -> None:
        if self.buckets < 1 or self.window_us // self.buckets < 1:
            raise ValueError(f"window counter {self.key!r}: bad window/buckets")

    @property
    def window_us(self) -> int:
        return round(self.window * US_PER_S)

    @property
    def bucket_us(self) -> int:
        return self.window_us // self.buckets


@runtime_checkable
class State(Protocol):
    async def acquire_throughput(self, requests: Sequence[ThroughputRequest]) -> list[ThroughputDecision]:
        """One decision per request, in order; an allowed request has taken its units."""
        ...

    async def reserve_caps(self, reservations: Sequence[CapReservation]) -> list[CapDecision]:
        """Per reservation, atomically: either every window of the subject counts the send, or
        none does and the decision names the blocking rule and when it frees up."""
        ...

    async def release_caps(self, reservations: Sequence[CapReservation]) -> list[bool]:
        """Undo reservations whose send did not happen; True where something was released."""
        ...

    async def incr_counters(self, increments: Sequence[tuple[WindowCounter, int]]) -> list[int]:
        """Add to sliding-window counters; returns each counter's windowed total afterwards."""
        ...

    async def read_counters(self, counters: Sequence[WindowCounter]) -> list[int]: ...

    async def ping(self) -> bool:
        """Readiness: True when the storage answers."""
        ...

    async def close(self) -> None: ...


def open_state(url: str | None, *, clock: Callable[[], float] | None = None) -> State:
    """`None` / "memory://" -> MemoryState; "redis://..." / "rediss://..." / "unix://..." -> RedisState."""
    if url is None or url in ("", "memory://", "memory"):
        from gateway.state.memory import MemoryState

        return MemoryState(clock=clock) if clock is not None else MemoryState()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from gateway.state.redis import RedisState

        return RedisState.from_url(url, clock=clock)
    raise ValueError(f"state.url: {url!r} is not memory:// or redis://")


def to_us(seconds: float) -> int:
    """Epoch seconds -> whole µs, the unit both storages compute in."""
    return int(seconds * US_PER_S)


def cap_keys(namespace: str, r: CapReservation) -> tuple[str, str]:
    """The two sliding logs a send is recorded in: its channel's and all channels'. The subject
    is a hash tag so both keys of one reservation live in one Redis Cluster slot."""
    base = f"{namespace}cap:{{{r.subject}}}:{r.category}:"
    return base + r.channel, base + ALL_CHANNELS

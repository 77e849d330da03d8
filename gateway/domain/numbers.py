"""Sender number pools: health from evidence, the state machine, and which number a job gets.

Pure: no I/O. The service in gateway/number_pool.py gathers the evidence (counters in the State,
rows in the Store) and applies what this module decides.

States::

    active --evidence--> suspect --more evidence--> quarantined --cooldown--> probation --> active
       \\______________strong evidence / operator flag / reputation check____/      |
                                                                                     +--evidence--> quarantined
    any --operator--> retired (only an operator brings it back, with restore)

* active: in rotation.
* suspect: still in rotation (one filtered receipt may be the text, not the number), watched: the
  reputation checker looks at it on its next run instead of waiting for the schedule. It goes back
  to active when its window holds no evidence any more.
* quarantined: out of rotation until `cooldown_seconds` have passed.
* probation: back in rotation under `probation_daily_cap`; any evidence sends it straight back to
  quarantine; `probation_seconds` and `probation_deliveries` delivered messages later it is active.
* retired: out of rotation for good (manual).

Evidence is counted per number and per *epoch*: the epoch changes whenever a number enters
quarantine, probation or is restored, so what condemned it once does not condemn it again when it
returns, and probation is judged on what happened during probation alone.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DAY_SECONDS = 86_400.0

# Attributes an operator may change (API PATCH) and config sync refreshes; never the state.
EDITABLE = ("kind", "provider", "channel", "countries", "categories", "region", "daily_cap", "rate", "warmup")


class NumberState(enum.StrEnum):
    ACTIVE = "active"
    SUSPECT = "suspect"
    QUARANTINED = "quarantined"
    PROBATION = "probation"
    RETIRED = "retired"

    @property
    def usable(self) -> bool:
        return self in (NumberState.ACTIVE, NumberState.SUSPECT, NumberState.PROBATION)


class SenderKind(enum.StrEnum):
    NUMBER = "number"  # a long number in E.164
    SHORT_CODE = "short_code"
    ALPHANUMERIC = "alphanumeric"  # an alphanumeric sender id


class Signal(enum.StrEnum):
    """What one observation says about a number."""

    SENT = "sent"  # a provider took a message from it
    DELIVERED = "delivered"  # a receipt said delivered
    FAILED = "failed"  # a receipt said undelivered/failed (for any reason)
    FILTERED = "filtered"  # the carrier or handset filtered it as spam: the number's fault
    OPT_OUT = "opt_out"  # a recipient replied STOP to it


FINAL_RECEIPT_STATUSES = frozenset({"delivered", "undelivered", "failed"})


def receipt_signals(status: str, error_kind: str | None) -> list[Signal]:
    """What a receipt says about the number its message went out from: nothing until it is final;
    a filtered one (error kind `sender_flagged`) is the number's fault, any other failure may not be."""
    if status not in FINAL_RECEIPT_STATUSES:
        return []
    if status == "delivered":
        return [Signal.DELIVERED]
    if error_kind == "sender_flagged":
        return [Signal.FAILED, Signal.FILTERED]
    return [Signal.FAILED]


@dataclass(frozen=True, slots=True)
class Counts:
    """Evidence about one number (or a pool) within the sliding window."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    filtered: int = 0
    opt_out: int = 0

    @classmethod
    def of(cls, values: Mapping[Signal, int]) -> Counts:
        return cls(**{s.value: int(values.get(s, 0)) for s in Signal})

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def __sub__(self, other: Counts) -> Counts:
        return Counts(*(max(0, a - b) for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.sent, self.delivered, self.failed, self.filtered, self.opt_out)

    @property
    def settled(self) -> int:
        """Messages whose fate a receipt told (a filtered receipt is also a failed one)."""
        return self.delivered + self.failed

    @property
    def failure_rate(self) -> float:
        return self.failed / self.settled if self.settled else 0.0

    @property
    def reached(self) -> int:
        """Messages known to have gone out: sends are counted in batches, receipts at once, so a
        receipt can be counted before its send is."""
        return max(self.sent, self.settled)

    @property
    def opt_out_rate(self) -> float:
        return self.opt_out / self.reached if self.reached else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "filtered": self.filtered,
            "opt_out": self.opt_out,
            "failure_rate": round(self.failure_rate, 4),
        }


@dataclass(frozen=True)
class HealthPolicy:
    """The thresholds; docs/numbers.md explains each and the bound they give."""

    window_seconds: float = 3600.0
    # Carrier-filtered receipts (or sender-flagged send errors) in the window.
    filtered_to_suspect: int = 1
    filtered_to_quarantine: int = 3
    # Failure rate versus the rest of the pool, once a number has `min_sample` settled messages.
    min_sample: int = 20
    failure_ratio: float = 2.0  # suspect above ratio x baseline ...
    failure_margin: float = 0.10  # ... and above baseline + margin
    assumed_baseline: float = 0.05  # when the rest of the pool has too few settled messages
    quarantine_failure_rate: float = 0.5  # quarantined above this (and above the suspect threshold)
    opt_out_rate: float = 0.05  # suspect above this share of sends answered with STOP
    cooldown_seconds: float = 86_400.0
    probation_seconds: float = 3600.0
    probation_deliveries: int = 5
    probation_daily_cap: int = 100
    # Daily caps of a new number on its first days (warm-up); then its own daily cap.
    warmup_caps: tuple[int, ...] = (50, 100, 200, 400, 800)

    def __post_init__(self) -> None:
        if not 1 <= self.filtered_to_suspect <= self.filtered_to_quarantine:
            raise ValueError("filtered_to_suspect must be >= 1 and <= filtered_to_quarantine")
        if self.window_seconds <= 0 or self.cooldown_seconds < 0 or self.probation_seconds < 0:
            raise ValueError("window must be > 0; cooldown and probation >= 0")
        if self.min_sample < 1 or self.probation_daily_cap < 1 or any(c < 1 for c in self.warmup_caps):
            raise ValueError("min_sample, probation_daily_cap and warm-up caps must be >= 1")


@dataclass(frozen=True, slots=True)
class SenderNumber:
    """One sender identity in a pool, as stored."""

    id: str
    pool: str
    sender: str
    channel: str
    state: NumberState = NumberState.ACTIVE
    kind: SenderKind = SenderKind.NUMBER
    provider: str | None = None  # None: any provider serving the channel
    countries: frozenset[str] = frozenset()  # recipients' ISO countries; empty: any
    categories: frozenset[str] = frozenset()  # empty: any
    region: str | None = None  # a country code or a province the number is local to
    daily_cap: int | None = None
    rate: float | None = None  # messages per second; None: the throughput table's
    warmup: bool = False
    epoch: int = 0
    state_since: float = 0.0
    cooldown_until: float | None = None
    created_at: float = 0.0

    def serves(self, provider: str, channel: str, country: str | None, category: str) -> bool:
        return (
            self.channel == channel
            and (self.provider is None or self.provider == provider)
            and (not self.countries or (country is not None and country in self.countries))
            and (not self.categories or category in self.categories)
        )

    def local_to(self, country: str | None, province: str | None) -> bool:
        if self.region is None:
            return False
        wanted = self.region.casefold()
        return any(place is not None and place.casefold() == wanted for place in (country, province))


# ---------------------------------------------------------------------------------------------
# Health


@dataclass(frozen=True, slots=True)
class Transition:
    to: NumberState
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    cooldown_until: float | None = None
    new_epoch: bool = False  # evidence counted so far no longer applies

    @property
    def event(self) -> dict[str, Any]:
        return {"to": self.to.value, "reason": self.reason, "evidence": dict(self.evidence)}


def suspect_threshold(baseline: Counts, policy: HealthPolicy) -> float:
    """The failure rate above which a number looks worse than the rest of its pool."""
    base = baseline.failure_rate if baseline.settled >= policy.min_sample else policy.assumed_baseline
    return min(1.0, max(base * policy.failure_ratio, base + policy.failure_margin))


@dataclass(frozen=True, slots=True)
class Verdict:
    level: int  # 0 clean, 1 suspect, 2 quarantine
    reason: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)


CLEAN = Verdict(0)


def judge(counts: Counts, baseline: Counts, policy: HealthPolicy) -> Verdict:
    """What the evidence in the window says, strongest finding first."""
    evidence: dict[str, Any] = {"window": counts.as_dict(), "window_seconds": policy.window_seconds}
    threshold = suspect_threshold(baseline, policy)
    rate_known = counts.settled >= policy.min_sample
    if counts.filtered >= policy.filtered_to_quarantine:
        return Verdict(2, "evidence.filtered", {**evidence, "threshold": policy.filtered_to_quarantine})
    if rate_known and counts.failure_rate > threshold and counts.failure_rate >= policy.quarantine_failure_rate:
        return Verdict(
            2,
            "evidence.failure_rate",
            {**evidence, "threshold": policy.quarantine_failure_rate, "baseline": round(baseline.failure_rate, 4)},
        )
    if counts.filtered >= policy.filtered_to_suspect:
        return Verdict(1, "evidence.filtered", {**evidence, "threshold": policy.filtered_to_suspect})
    if rate_known and counts.failure_rate > threshold:
        return Verdict(
            1,
            "evidence.failure_rate",
            {**evidence, "threshold": round(threshold, 4), "baseline": round(baseline.failure_rate, 4)},
        )
    if counts.reached >= policy.min_sample and counts.opt_out_rate >= policy.opt_out_rate:
        return Verdict(1, "evidence.opt_out_rate", {**evidence, "threshold": policy.opt_out_rate})
    return CLEAN


def _quarantine(reason: str, evidence: Mapping[str, Any], now: float, policy: HealthPolicy) -> Transition:
    return Transition(
        NumberState.QUARANTINED, reason, evidence, cooldown_until=now + policy.cooldown_seconds, new_epoch=True
    )


def assess(
    number: SenderNumber, counts: Counts, baseline: Counts, policy: HealthPolicy, now: float
) -> Transition | None:
    """The change the evidence calls for now, if any (automatic transitions only).

    `counts` are the number's in its current epoch; `baseline` the rest of its pool's."""
    state = number.state
    if state is NumberState.RETIRED:
        return None
    if state is NumberState.QUARANTINED:
        if number.cooldown_until is None or now >= number.cooldown_until:
            return Transition(
                NumberState.PROBATION,
                "cooldown.elapsed",
                {"quarantined_since": number.state_since},
                new_epoch=True,
            )
        return None
    verdict = judge(counts, baseline, policy)
    if state is NumberState.PROBATION:
        if verdict.level >= 1:
            # On probation a number gets no benefit of the doubt.
            return _quarantine(f"probation.{verdict.reason}", verdict.evidence, now, policy)
        if now - number.state_since >= policy.probation_seconds and counts.delivered >= policy.probation_deliveries:
            return Transition(
                NumberState.ACTIVE,
                "probation.passed",
                {"window": counts.as_dict(), "probation_seconds": policy.probation_seconds},
                new_epoch=True,
            )
        return None
    if verdict.level == 2:
        return _quarantine(verdict.reason, verdict.evidence, now, policy)
    if verdict.level == 1 and state is NumberState.ACTIVE:
        return Transition(NumberState.SUSPECT, verdict.reason, verdict.evidence)
    if verdict.level == 0 and state is NumberState.SUSPECT:
        return Transition(NumberState.ACTIVE, "evidence.cleared", {"window": counts.as_dict()})
    return None


def flag(number: SenderNumber, reason: str, source: str, now: float, policy: HealthPolicy) -> Transition | None:
    """An operator or the reputation checker says the number is flagged: quarantine it."""
    if number.state in (NumberState.RETIRED, NumberState.QUARANTINED):
        return None
    return _quarantine(f"{source}.flagged", {"reason": reason}, now, policy)


def restore(number: SenderNumber, reason: str) -> Transition | None:
    if number.state is NumberState.ACTIVE:
        return None
    return Transition(
        NumberState.ACTIVE, "operator.restored", {"reason": reason, "from": number.state.value}, None, True
    )


def retire(number: SenderNumber, reason: str) -> Transition | None:
    if number.state is NumberState.RETIRED:
        return None
    return Transition(
        NumberState.RETIRED, "operator.retired", {"reason": reason, "from": number.state.value}, None, True
    )


# ---------------------------------------------------------------------------------------------
# Caps and selection


def daily_cap(number: SenderNumber, policy: HealthPolicy, now: float) -> int | None:
    """How many messages the number may send in any 24 hours now; None: no cap."""
    caps: list[int] = [] if number.daily_cap is None else [number.daily_cap]
    if number.state is NumberState.PROBATION:
        caps.append(policy.probation_daily_cap)
    if number.warmup:
        day = max(0, math.floor((now - number.created_at) / DAY_SECONDS))
        if day < len(policy.warmup_caps):
            caps.append(policy.warmup_caps[day])
    return min(caps) if caps else None


@dataclass(frozen=True, slots=True)
class Recipient:
    provider: str
    channel: str
    category: str
    country: str | None
    province: str | None


def serving(numbers: Iterable[SenderNumber], r: Recipient) -> list[SenderNumber]:
    return [n for n in numbers if n.serves(r.provider, r.channel, r.country, r.category)]


def candidates(
    numbers: Sequence[SenderNumber],
    r: Recipient,
    *,
    sticky: str | None = None,
    avoid: frozenset[str] = frozenset(),
    last_used: Mapping[str, float] | None = None,
) -> list[SenderNumber]:
    """The numbers to try for one job, best first.

    The recipient's sticky number comes first while it is usable (a familiar sender is trusted);
    then numbers local to the recipient's region, when the pool has any; within each group the
    least recently used first, so load spreads evenly. `avoid` holds numbers this job must not use
    again (one just failed with a sender-flagged error)."""
    used = last_used or {}
    usable = [n for n in serving(numbers, r) if n.state.usable and n.id not in avoid]
    usable.sort(key=lambda n: (not n.local_to(r.country, r.province), used.get(n.id, 0.0), n.id))
    for i, n in enumerate(usable):
        if n.id == sticky:
            return [n, *usable[:i], *usable[i + 1 :]]
    return usable


class Rotation:
    """`candidates` for a batch of jobs on one route, without sorting the pool for every job.

    Built once per batch from the last-used times; `take` gives one job's candidates and counts
    the first as used now (it moves to the back of its group), exactly as if `candidates` had
    been called with that number's last-used time set to a moment after every other's."""

    def __init__(self, numbers: Sequence[SenderNumber], r: Recipient, last_used: Mapping[str, float]) -> None:
        usable = [n for n in serving(numbers, r) if n.state.usable]
        usable.sort(key=lambda n: (last_used.get(n.id, 0.0), n.id))
        self._local = [n for n in usable if n.local_to(r.country, r.province)]
        self._rest = [n for n in usable if not n.local_to(r.country, r.province)]
        self._ids = {n.id for n in usable}
        self._local_ids = {n.id for n in self._local}

    def take(self, sticky: str | None = None, avoid: frozenset[str] = frozenset()) -> list[SenderNumber]:
        order = self._local + self._rest
        if avoid:
            order = [n for n in order if n.id not in avoid]
        if sticky is not None and sticky in self._ids and sticky not in avoid:
            first = next(n for n in order if n.id == sticky)
            order.remove(first)
            order.insert(0, first)
        if order:
            chosen = order[0]
            group = self._local if chosen.id in self._local_ids else self._rest
            group.remove(chosen)
            group.append(chosen)
        return order

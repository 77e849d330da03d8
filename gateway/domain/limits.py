"""Frequency caps, what to do when a job hits a limit, and the GCRA throughput math.

Pure: no I/O. Both State storages (process memory and Redis) run exactly the arithmetic written
here; the Redis Lua scripts in gateway/state/redis.py are a line-by-line transcription of
`gcra` and `cap_block`, and tests/integration/test_state_backends.py proves identical decisions.

Cap windows are **sliding** (rolling), not calendar windows aligned to the recipient's local day:

* A cap is keyed by `user_id` when the job has one, so one counter serves several addresses that
  may resolve to different (or several candidate) time zones. Calendar windows would need one
  zone per key; picking a different zone for the e-mail and the SMS of one user would split the
  count and let up to twice the cap through. A rolling window needs no zone at all.
* "1/day" then means "at most one in any 24 hours" - never two messages minutes apart across a
  local midnight, which is exactly the over-contact the cap exists to prevent.
* The decision "when does this free up?" is exact (the k-th newest send + the period), which is
  what a deferred job needs to be rescheduled to; calendar windows give the same answer only
  at the window edge.
* Cost: the storage keeps one timestamp per send instead of one counter per window, bounded by
  the largest cap count times retention / period; caps are small numbers, so this is a few
  dozen bytes per recipient.

A "month" is a rolling 30 days for the same reason.

Throughput uses GCRA (the generic cell rate algorithm): one timestamp per key (the theoretical
arrival time, TAT), O(1) per decision, smooth by construction (requests are spaced by 1/rate;
`burst` is how many may go back to back from idle) and with an exact `retry_after`. All times
are integer microseconds so that Python and Lua (doubles) compute bit-identical results.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gateway.domain.models import Category, Channel, Status

ALL_CHANNELS = "all"
US_PER_S = 1_000_000


class Period(enum.Enum):
    HOUR = ("hour", 3600)
    DAY = ("day", 86_400)
    WEEK = ("week", 7 * 86_400)
    MONTH = ("month", 30 * 86_400)

    def __init__(self, label: str, seconds: int) -> None:
        self.label = label
        self.seconds = seconds

    @property
    def us(self) -> int:
        return self.seconds * US_PER_S

    @classmethod
    def from_label(cls, label: str) -> Period:
        for period in cls:
            if period.label == label:
                return period
        raise ValueError(label)


@dataclass(frozen=True, slots=True)
class CapRule:
    """At most `count` sends in any rolling `period`, on channel `scope` (or "all" channels)."""

    scope: str
    count: int
    period: Period

    def __str__(self) -> str:
        return f"{self.scope} {self.count}/{self.period.label}"

    def applies_to(self, channel: str) -> bool:
        return self.scope == ALL_CHANNELS or self.scope == channel


class OnHit(enum.StrEnum):
    DEFER = "defer"
    DROP = "drop"


class HitReason(enum.StrEnum):
    CAP = "limit.cap"
    QUIET_HOURS = "limit.quiet_hours"


class HitAction(enum.StrEnum):
    DEFER = "defer"
    DROP = "drop"
    EXPIRE = "expire"

    @property
    def status(self) -> Status:
        return {HitAction.DEFER: Status.DEFERRED, HitAction.DROP: Status.SUPPRESSED, HitAction.EXPIRE: Status.EXPIRED}[
            self
        ]


@dataclass(frozen=True, slots=True)
class HitOutcome:
    """What the worker does with a job that hit a cap or a quiet window."""

    action: HitAction
    reason: HitReason
    until: float | None  # epoch seconds to reschedule to, only for DEFER

    @property
    def status(self) -> Status:
        return self.action.status


def resolve_hit(policy: OnHit, reason: HitReason, retry_at: float | None, expires_at: float | None) -> HitOutcome:
    """`retry_at` None means the limit never frees up (e.g. candidate zones share no send window)."""
    if policy is OnHit.DROP:
        return HitOutcome(HitAction.DROP, reason, None)
    if retry_at is None:
        return HitOutcome(HitAction.DROP, reason, None)
    # A job deferred past its expiry would only be picked up to be expired; say so now.
    if expires_at is not None and retry_at >= expires_at:
        return HitOutcome(HitAction.EXPIRE, reason, None)
    return HitOutcome(HitAction.DEFER, reason, retry_at)


# ---------------------------------------------------------------------------------------------
# The cap check (sliding log), as run by both storages.


def cap_block(entries_by_scope: Mapping[str, Sequence[int]], now_us: int, rules: Sequence[CapRule]) -> tuple[int, int]:
    """Which rule blocks a new send and when it frees up.

    `entries_by_scope` holds, per scope, the send timestamps (µs, ascending). Returns
    (index of the blocking rule, frees_at_us) or (-1, 0) when every rule allows one more send.
    When several rules block, the one that frees up last is reported: only then may the job go.
    """
    block, frees = -1, 0
    for index, rule in enumerate(rules):
        lo = now_us - rule.period.us
        window = [ts for ts in entries_by_scope.get(rule.scope, ()) if ts > lo]
        if len(window) >= rule.count:
            # After the oldest (len - count + 1) sends leave the window, one more fits.
            at = window[len(window) - rule.count] + rule.period.us
            if at > frees:
                block, frees = index, at
    return block, frees


def cap_subject(channel: str, to: str, user_id: str | None) -> str:
    """The key caps are counted under: the upstream user across addresses, else the address."""
    if user_id:
        return f"u:{user_id}"
    address = to.strip()
    if channel == Channel.EMAIL:
        address = address.lower()
    return f"{channel}:{address}"


# ---------------------------------------------------------------------------------------------
# GCRA


class GcraResult(NamedTuple):  # a tuple: half the cost of a frozen dataclass, once per accept and per click
    allowed: bool
    tat_us: int  # the TAT to store when allowed (unchanged when refused)
    retry_after_us: int


def emission_interval_us(rate: float) -> int:
    """1/rate in whole µs, so both storages do integer arithmetic. Rounded up (3 ppm slower at 3/s)
    so that rounding can never let one extra request into a second; the epsilon keeps an exact
    quotient such as 1e6/50 from being pushed up by float noise."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate!r}")
    return max(1, math.ceil(US_PER_S / rate - 1e-6))


def gcra(tat_us: int, now_us: int, interval_us: int, burst: int, cost: int) -> GcraResult:
    """One GCRA decision. `tat_us` is 0 for a key never seen (or expired).

    A request of `cost` units is allowed when, after adding it, the TAT is at most `burst`
    intervals ahead of now. A request dearer than the burst (a 3-segment SMS on a burst of 1)
    would otherwise never pass; it is allowed once the limiter is idle and then pays its full
    cost in spacing, so the long-run rate still holds.
    """
    base = max(tat_us, now_us)
    new_tat = base + cost * interval_us
    allow_at = new_tat - max(burst, cost) * interval_us
    if allow_at > now_us:
        return GcraResult(False, tat_us, allow_at - now_us)
    return GcraResult(True, new_tat, 0)


# ---------------------------------------------------------------------------------------------
# Configuration


_RULE_RE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")
_CATEGORIES = {c.value for c in Category}
_SCOPES = {c.value for c in Channel} | {ALL_CHANNELS}


class ThroughputUnit(enum.StrEnum):
    MESSAGE = "message"
    SEGMENT = "segment"


@dataclass(frozen=True, slots=True)
class ThroughputRule:
    rate: float  # units per second
    burst: int = 1
    per: ThroughputUnit = ThroughputUnit.MESSAGE

    def cost(self, segments: int = 1) -> int:
        return max(1, segments) if self.per is ThroughputUnit.SEGMENT else 1


THROUGHPUT_KINDS = ("provider", "account", "number")


@dataclass(frozen=True)
class ThroughputTable:
    """Per provider / provider account / sender number limits; "*" is the default of a kind."""

    rules: Mapping[str, Mapping[str, ThroughputRule]] = field(default_factory=dict)

    def lookup(self, kind: str, name: str) -> ThroughputRule | None:
        by_name = self.rules.get(kind, {})
        return by_name.get(name) or by_name.get("*")

    @staticmethod
    def key(kind: str, name: str) -> str:
        return f"{kind}:{name}"


@dataclass(frozen=True)
class CapTable:
    base: Mapping[str, tuple[CapRule, ...]] = field(default_factory=dict)
    campaigns: Mapping[str, Mapping[str, tuple[CapRule, ...]]] = field(default_factory=dict)

    def rules_for(self, category: str, channel: str, campaign: str | None = None) -> tuple[CapRule, ...]:
        """The rules a send must satisfy. A campaign's rules are added to the base rules (all must
        hold), so a campaign can only narrow; an unconfigured category (transactional by default)
        gets none."""
        rules = list(self.base.get(category, ()))
        if campaign is not None:
            rules.extend(self.campaigns.get(campaign, {}).get(category, ()))
        return tuple(r for r in rules if r.applies_to(channel))

    @property
    def retention_seconds(self) -> int:
        """How long a send must be remembered: the longest period any rule (of any campaign) looks
        back, so trimming for one campaign never forgets what another one's rules still count."""
        periods = [r.period.seconds for rules in self.base.values() for r in rules]
        periods += [r.period.seconds for cats in self.campaigns.values() for rules in cats.values() for r in rules]
        return max(periods, default=Period.DAY.seconds)


DEFAULT_ON_HIT: Mapping[str, OnHit] = {Category.MARKETING: OnHit.DEFER, Category.TRANSACTIONAL: OnHit.DEFER}


@dataclass(frozen=True)
class LimitsConfig:
    caps: CapTable = field(default_factory=CapTable)
    on_hit: Mapping[str, OnHit] = field(default_factory=lambda: dict(DEFAULT_ON_HIT))
    throughput: ThroughputTable = field(default_factory=ThroughputTable)
    sleeping: SleepingPolicy | None = None  # off unless configured

    def policy(self, category: str) -> OnHit:
        return self.on_hit.get(category, OnHit.DEFER)


@dataclass(frozen=True, slots=True)
class SleepingPolicy:
    """A recipient who got `after` marketing messages within `window_seconds` and never clicked or
    converted is left alone: marketing to them is suppressed until fewer than `after` unanswered
    messages remain in the window (the cooling-off ends by itself as old sends age out)."""

    after: int
    window_seconds: float


def is_sleeping(policy: SleepingPolicy, unanswered_sends: int, engaged: bool) -> bool:
    return not engaged and unanswered_sends >= policy.after


def parse_sleeping(value: Any, key: str) -> SleepingPolicy | None:
    if value is None:
        return None
    m = _mapping(value, key)
    unknown = set(m) - {"after", "window_days"}
    if unknown:
        raise ValueError(f"{key}.{sorted(unknown)[0]}: unknown key (known: after, window_days)")
    after, days = m.get("after"), m.get("window_days", 30)
    if isinstance(after, bool) or not isinstance(after, int) or after < 1:
        raise ValueError(f"{key}.after: {after!r} is not a whole number of messages >= 1")
    if isinstance(days, bool) or not isinstance(days, int | float) or days <= 0:
        raise ValueError(f"{key}.window_days: {days!r} is not a positive number of days")
    return SleepingPolicy(after, float(days) * 86400)


def parse_rule(value: Any, key: str) -> tuple[int, Period]:
    if isinstance(value, str):
        m = _RULE_RE.match(value.lower())
        if m:
            try:
                period = Period.from_label(m.group(2))
            except ValueError:
                pass
            else:
                if int(m.group(1)) < 1:
                    raise ValueError(f"{key}: {value!r} must allow at least 1 send")
                return int(m.group(1)), period
    raise ValueError(f"{key}: {value!r} is not <count>/<day|week|hour|month>")


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def _category(name: Any, key: str) -> str:
    if name not in _CATEGORIES:
        raise ValueError(f"{key}: unknown category {name!r} (known: {', '.join(sorted(_CATEGORIES))})")
    return str(name)


def parse_caps(value: Any, key: str = "limits.caps") -> dict[str, tuple[CapRule, ...]]:
    """`{"marketing": {"sms": ["1/day", "3/week"], "all": ["5/week"]}}` -> rules per category."""
    out: dict[str, tuple[CapRule, ...]] = {}
    for cat, scopes in _mapping(value, key).items():
        cat_key = f"{key}.{cat}"
        category = _category(cat, cat_key)
        rules: list[CapRule] = []
        for scope, specs in _mapping(scopes, cat_key).items():
            scope_key = f"{cat_key}.{scope}"
            if scope not in _SCOPES:
                known = ", ".join(sorted(_SCOPES))
                raise ValueError(f"{scope_key}: unknown channel {scope!r} (known: {known})")
            if isinstance(specs, str):
                specs = [specs]
            if not isinstance(specs, Sequence):
                raise ValueError(f"{scope_key}: expected a list of '<count>/<period>' rules")
            for i, spec in enumerate(specs):
                count, period = parse_rule(spec, f"{scope_key}[{i}]")
                rules.append(CapRule(str(scope), count, period))
        out[category] = tuple(rules)
    return out


def _check_narrows(
    base: Mapping[str, tuple[CapRule, ...]], campaign: Mapping[str, tuple[CapRule, ...]], key: str
) -> None:
    # Adding rules can only narrow, but a campaign rule looser than the base rule for the same
    # channel and period would read as a widening that silently does nothing: refuse it.
    for category, rules in campaign.items():
        for rule in rules:
            for b in base.get(category, ()):
                if (b.scope, b.period) == (rule.scope, rule.period) and rule.count > b.count:
                    raise ValueError(
                        f"{key}.{category}.{rule.scope}: {rule.count}/{rule.period.label} would widen "
                        f"the base cap {b.count}/{b.period.label}; a campaign may only narrow caps"
                    )


def parse_throughput(value: Any, key: str = "limits.throughput") -> ThroughputTable:
    """`{"provider": {"twilio": {"rate": 50, "burst": 1, "per": "segment"}}, "number": {"*": ...}}`."""
    table: dict[str, dict[str, ThroughputRule]] = {}
    for kind, by_name in _mapping(value, key).items():
        kind_key = f"{key}.{kind}"
        if kind not in THROUGHPUT_KINDS:
            raise ValueError(f"{kind_key}: unknown kind (known: {', '.join(THROUGHPUT_KINDS)})")
        table[kind] = {}
        for name, spec in _mapping(by_name, kind_key).items():
            k = f"{kind_key}.{name}"
            spec = _mapping(spec, k)
            unknown = set(spec) - {"rate", "burst", "per"}
            if unknown:
                raise ValueError(f"{k}.{sorted(unknown)[0]}: unknown key")
            rate = spec.get("rate")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
                raise ValueError(f"{k}.rate: {rate!r} is not a positive number of units per second")
            burst = spec.get("burst", 1)
            if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
                raise ValueError(f"{k}.burst: {burst!r} is not an integer >= 1")
            per = spec.get("per", "message")
            if per not in {u.value for u in ThroughputUnit}:
                raise ValueError(f"{k}.per: {per!r} is not 'message' or 'segment'")
            table[kind][str(name)] = ThroughputRule(float(rate), burst, ThroughputUnit(per))
    return ThroughputTable(table)


def parse_limits(value: Any, key: str = "limits") -> LimitsConfig:
    """Caps, campaign caps, hit policies and throughput. (Quiet hours and opt-out keywords have
    their own parsers in gateway.domain.quiet_hours and gateway.domain.optout.)"""
    if value is None:
        return LimitsConfig()
    m = _mapping(value, key)
    known = {"caps", "campaigns", "on_hit", "throughput", "quiet_hours", "opt_out", "sleeping"}
    for k in m:
        if k not in known:
            raise ValueError(f"{key}.{k}: unknown key (known: {', '.join(sorted(known))})")
    base = parse_caps(m.get("caps", {}), f"{key}.caps")
    campaigns: dict[str, Mapping[str, tuple[CapRule, ...]]] = {}
    for name, caps in _mapping(m.get("campaigns", {}), f"{key}.campaigns").items():
        ck = f"{key}.campaigns.{name}"
        parsed = parse_caps(caps, ck)
        _check_narrows(base, parsed, ck)
        campaigns[str(name)] = parsed
    on_hit = dict(DEFAULT_ON_HIT)
    for cat, action in _mapping(m.get("on_hit", {}), f"{key}.on_hit").items():
        ak = f"{key}.on_hit.{cat}"
        category = _category(cat, ak)
        if action not in {o.value for o in OnHit}:
            raise ValueError(f"{ak}: {action!r} is not 'defer' or 'drop'")
        on_hit[category] = OnHit(action)
    throughput = parse_throughput(m.get("throughput", {}), f"{key}.throughput")
    sleeping = parse_sleeping(m.get("sleeping"), f"{key}.sleeping")
    return LimitsConfig(CapTable(base, campaigns), on_hit, throughput, sleeping)

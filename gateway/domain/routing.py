"""Routing: which provider carries a job, which regions a channel must not be used for, and
when a provider is left alone (circuit breaker). Pure; the worker supplies providers, time and
the recipient's region."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gateway.domain.models import Channel, is_member
from gateway.domain.pricing import PriceTable, parse_prices
from gateway.domain.regions import CHINA_PROVINCES, Region

REGION_KEYS = ("country", "province", "city", "carrier")


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    sender: str | None = None


# What a rule does with a number whose region it cannot tell (a key it names is unknown for the
# number and no other key rules the number out):
#   deny      treat it as inside the region: the channel is not used (safe, the default)
#   fallback  move it to another channel when there is one, else use this channel after all
#   allow     treat it as outside the region: use the channel
UNKNOWN_REGION_POLICIES = ("deny", "fallback", "allow")


class Match(Enum):
    NO = "no"
    YES = "yes"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class RegionRule:
    """`voice: deny province=Xinjiang -> fallback sms`: every key in `deny` must match."""

    channel: str
    deny: Mapping[str, str]
    fallback: str | None = None
    unknown_region: str = "deny"

    def match(self, channel: str, region: Region) -> Match:
        """YES when every key matches, NO when the channel differs or a known key differs, else
        UNKNOWN: some key is not known for this number."""
        if channel != self.channel or not self.deny:
            return Match.NO
        unknown = False
        for key, wanted in self.deny.items():
            value = region.value(key)
            if value is None:
                unknown = True
            elif value.casefold() != wanted.casefold():
                return Match.NO
        return Match.UNKNOWN if unknown else Match.YES

    def __str__(self) -> str:
        deny = ", ".join(f"{k}={v}" for k, v in self.deny.items())
        return f"{self.channel}: deny {deny}" + (f" -> fallback {self.fallback}" if self.fallback else "")


@dataclass(frozen=True, slots=True)
class RegionDenial:
    """A rule keeps a job off its channel: `reason` is the event's reason, `unknown` the keys the
    rule could not tell for the number (empty when the number is known to be in the region)."""

    rule: RegionRule
    reason: str
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingConfig:
    # Per channel, the providers in order of preference; unset: every provider serving the channel.
    channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rules: tuple[RegionRule, ...] = ()
    circuit_failures: int = 5
    circuit_cooldown_seconds: float = 30.0
    # Per channel given as a weighted list, each provider's weight (`channels` keeps them as
    # written): each message gets its own order of preference, drawn from its id.
    weights: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # What one message costs on each channel, for jobs that ask for the cheapest channel first.
    costs: Mapping[str, float] = field(default_factory=dict)
    # Per channel, how long a sent message may wait for its delivery receipt before a job with a
    # fallback channel moves on to it (`fallback.no_receipt`).
    receipt_timeouts: Mapping[str, float] = field(default_factory=dict)
    # Per provider route, what an accepted attempt costs (domain/pricing): recorded on the attempt.
    prices: Mapping[str, PriceTable] = field(default_factory=dict)


def parse_routing(value: Any, key: str = "routing") -> RoutingConfig:
    """`{"channels": {"sms": ["twilio", "aliyun"]}, "rules": [{"channel": "voice",
    "deny": {"province": "Xinjiang"}, "fallback": "sms"}]}`; errors name the key."""
    if value is None:
        return RoutingConfig()
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a table")
    known = {"channels", "rules", "circuit_failures", "circuit_cooldown_seconds", "costs", "receipt_timeout", "prices"}
    for name in value:
        if name not in known:
            raise ValueError(f"{key}.{name}: unknown key (known: {', '.join(sorted(known))})")
    channels: dict[str, tuple[str, ...]] = {}
    weights: dict[str, dict[str, float]] = {}
    raw_channels = value.get("channels", {})
    if not isinstance(raw_channels, Mapping):
        raise ValueError(f"{key}.channels: expected a table of channel = [providers]")
    for channel, providers in raw_channels.items():
        if not is_member(channel, Channel):
            raise ValueError(f"{key}.channels.{channel}: not a channel")
        if isinstance(providers, list) and providers and all(isinstance(p, Mapping) for p in providers):
            weights[channel] = _parse_weighted(providers, f"{key}.channels.{channel}")
            channels[channel] = tuple(weights[channel])
            continue
        if not isinstance(providers, list) or not all(isinstance(p, str) and p for p in providers):
            raise ValueError(
                f'{key}.channels.{channel}: must be a list of provider names, or of {{name = "...", weight = N}} tables'
            )
        if len(set(providers)) != len(providers):
            raise ValueError(f"{key}.channels.{channel}: names a provider twice")
        channels[channel] = tuple(providers)
    rules = [_parse_rule(raw, f"{key}.rules[{index}]") for index, raw in enumerate(value.get("rules", []))]
    failures = value.get("circuit_failures", 5)
    cooldown = value.get("circuit_cooldown_seconds", 30.0)
    if not isinstance(failures, int) or failures < 1:
        raise ValueError(f"{key}.circuit_failures: must be an integer >= 1")
    if not isinstance(cooldown, int | float) or cooldown <= 0:
        raise ValueError(f"{key}.circuit_cooldown_seconds: must be a positive number")
    return RoutingConfig(
        channels,
        tuple(rules),
        failures,
        float(cooldown),
        weights=weights,
        costs=_parse_costs(value.get("costs"), key),
        receipt_timeouts=_parse_receipt_timeouts(value.get("receipt_timeout"), key),
        prices=parse_prices(value.get("prices"), f"{key}.prices"),
    )


_ENGLISH_PROVINCES = {name.casefold() for name in CHINA_PROVINCES.values()}


def _parse_rule(raw: Any, key: str) -> RegionRule:
    if not isinstance(raw, Mapping) or set(raw) - {"channel", "deny", "fallback", "unknown_region"}:
        raise ValueError(f"{key}: must be {{channel, deny, fallback?, unknown_region?}}")
    channel, deny, fallback = raw.get("channel"), raw.get("deny"), raw.get("fallback")
    unknown_region = raw.get("unknown_region", "deny")
    if not is_member(channel, Channel):
        raise ValueError(f"{key}.channel: {channel!r} is not a channel")
    if not isinstance(deny, Mapping) or not deny or set(deny) - set(REGION_KEYS):
        raise ValueError(f"{key}.deny: must map some of {', '.join(REGION_KEYS)} to a value")
    if fallback is not None and (not is_member(fallback, Channel) or fallback == channel):
        raise ValueError(f"{key}.fallback: {fallback!r} is not another channel")
    if unknown_region not in UNKNOWN_REGION_POLICIES:
        raise ValueError(f"{key}.unknown_region: {unknown_region!r} is not one of {', '.join(UNKNOWN_REGION_POLICIES)}")
    return RegionRule(str(channel), _scoped(deny), fallback, str(unknown_region))


def _scoped(deny: Mapping[Any, Any]) -> dict[str, str]:
    """A rule naming a Chinese province and no country is about Chinese numbers: a number from
    elsewhere, whose province nobody knows, is then outside it rather than of unknown region."""
    scoped = {str(k): str(v) for k, v in deny.items()}
    if "country" not in scoped and scoped.get("province", "").casefold() in _ENGLISH_PROVINCES:
        scoped = {"country": "CN", **scoped}
    return scoped


def _parse_receipt_timeouts(value: Any, key: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}.receipt_timeout: expected a table of channel = seconds")
    timeouts: dict[str, float] = {}
    for channel, seconds in value.items():
        if not is_member(channel, Channel):
            raise ValueError(f"{key}.receipt_timeout.{channel}: not a channel")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < math.inf:
            raise ValueError(f"{key}.receipt_timeout.{channel}: {seconds!r} is not a positive number of seconds")
        timeouts[str(channel)] = float(seconds)
    return timeouts


def _parse_costs(value: Any, key: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}.costs: expected a table of channel = cost per message")
    costs: dict[str, float] = {}
    for channel, cost in value.items():
        if not is_member(channel, Channel):
            raise ValueError(f"{key}.costs.{channel}: not a channel")
        if isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost) or cost < 0:
            raise ValueError(f"{key}.costs.{channel}: {cost!r} is not a cost (a number >= 0)")
        costs[str(channel)] = float(cost)
    return costs


def _parse_weighted(entries: list[Any], key: str) -> dict[str, float]:
    weighted: dict[str, float] = {}
    for index, entry in enumerate(entries):
        entry_key = f"{key}[{index}]"
        unknown = sorted(set(entry) - {"name", "weight"})
        if unknown:
            raise ValueError(f"{entry_key}.{unknown[0]}: unknown key (known: name, weight)")
        name, weight = entry.get("name"), entry.get("weight")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{entry_key}.name: must be a provider name")
        if name in weighted:
            raise ValueError(f"{entry_key}.name: {name!r} is listed twice")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"{entry_key}.weight: {weight!r} is not a positive number")
        weighted[name] = float(weight)
    return weighted


def _unit_draw(key: str, provider: str) -> float:
    """A number in (0, 1) fixed by the message and the provider: the same message draws the same
    order on every attempt and in every process."""
    digest = hashlib.blake2b(f"{key}\x00{provider}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 1) / (2**64 + 1)


def weighted_order(weights: Mapping[str, float], key: str) -> list[str]:
    """The providers in an order drawn for `key`: the first is provider p with probability
    weight(p) / sum(weights), and each next one likewise among those left (weighted sampling
    without replacement, by keys u ** (1 / weight))."""
    return sorted(weights, key=lambda p: math.log(_unit_draw(key, p)) / weights[p], reverse=True)


def region_denial(
    config: RoutingConfig, channel: str, region: Region, job_fallback: Sequence[str] = ()
) -> RegionDenial | None:
    """Whether a region rule keeps the job off `channel`. A rule the number is known to match wins
    over one that cannot tell; a number of unknown region gets the rule's `unknown_region` policy."""
    for rule in config.rules:
        if rule.match(channel, region) is Match.YES:
            return RegionDenial(rule, "route.region_denied")
    for rule in config.rules:
        if rule.match(channel, region) is not Match.UNKNOWN or rule.unknown_region == "allow":
            continue
        if rule.unknown_region == "fallback" and next_channel(rule, job_fallback, channel) is None:
            continue  # nowhere else to go: this channel, rather than no message
        unknown = tuple(k for k in rule.deny if region.value(k) is None)
        return RegionDenial(rule, "route.region_unknown", unknown)
    return None


# A job keeps its one address and content, so it can only move between channels that take both:
# a phone number and {text}.
INTERCHANGEABLE = {"sms": {"voice"}, "voice": {"sms"}}


def next_channel(
    rule: RegionRule | None, job_fallback: Sequence[str], tried: str, addressed: Collection[str] = ()
) -> str | None:
    """The channel to fall back to: the job's own list first (the campaign knows its user), then the
    operator's rule; only a channel the job's address and content suit, or one the job carries an
    address of its own for (`addressed`: a recipient's job, its addresses taken from the profile)."""
    candidates = [*job_fallback, *([rule.fallback] if rule is not None and rule.fallback else [])]
    for channel in candidates:
        if channel != tried and (channel in INTERCHANGEABLE.get(tried, set()) or channel in addressed):
            return channel
    return None


def receipt_deadline(
    config: RoutingConfig, channel: str, fallback: Sequence[str], sent_at: float, addressed: Collection[str] = ()
) -> float | None:
    """When a message sent now on `channel` must have its receipt, for a job that could still fall
    back (a receipt timeout for the channel and a fallback channel that takes the address); else None."""
    timeout = config.receipt_timeouts.get(channel)
    if timeout is None or next_channel(None, fallback, channel, addressed) is None:
        return None
    return sent_at + timeout


def cheapest_first(
    channel: str, fallback: Sequence[str], costs: Mapping[str, float], addressed: Collection[str] = ()
) -> tuple[str, tuple[str, ...]]:
    """A job's channel and fallback list, reordered cheapest first among the channels that can carry
    it: its own, those interchangeable with it, and those it has an address for (`addressed`). A priced
    channel comes before an unpriced one; equal costs and unpriced channels keep the job's order;
    channels that cannot take the address stay after, in the job's order."""
    listed = [channel, *fallback]
    adequate = [c for c in listed if c == channel or c in INTERCHANGEABLE.get(channel, set()) or c in addressed]
    ranked = sorted(adequate, key=lambda c: (c not in costs, costs.get(c, 0.0)))  # stable: ties keep order
    ordered = [*ranked, *(c for c in listed if c not in adequate)]
    return ordered[0], tuple(ordered[1:])


def candidate_providers(
    channel: str,
    providers_by_channel: Mapping[str, Sequence[str]],
    config: RoutingConfig | None = None,
    order: Sequence[str] | None = None,
) -> list[str]:
    """The providers a job on `channel` may go by, in order of preference: those the routing config
    lists (in `order` when a weighted list drew one) that serve the channel, else every one serving it."""
    serving = list(providers_by_channel.get(channel, ()))
    listed: Sequence[str] = order if order is not None else (config.channels.get(channel, ()) if config else ())
    return [p for p in listed if p in serving] or serving


def choose_route(
    channel: str,
    providers_by_channel: Mapping[str, Sequence[str]],
    config: RoutingConfig | None = None,
    *,
    unavailable: frozenset[str] = frozenset(),
    failed_last: str | None = None,
    key: str | None = None,
) -> Route | None:
    """The first preferred provider that serves the channel and whose circuit is closed. A retry
    after a transient failure starts after the provider that failed, so it fails over. For a
    weighted list the preference is drawn from `key` (the message id), so it is stable per message."""
    weights = config.weights.get(channel) if config else None
    order = weighted_order(weights, key) if weights and key is not None else None
    preferred = candidate_providers(channel, providers_by_channel, config, order)
    if failed_last in preferred and len(preferred) > 1:
        i = preferred.index(failed_last)
        preferred = preferred[i + 1 :] + preferred[: i + 1]
    for provider in preferred:
        if provider not in unavailable:
            return Route(provider)
    # Every circuit open: still try the first rather than hold every job (the breaker half-opens).
    return Route(preferred[0]) if preferred else None


@dataclass
class CircuitBreaker:
    """Closed -> open after `failures` consecutive failures -> half-open after `cooldown` (one trial
    at a time) -> closed on a success, open again on a failure."""

    failures: int = 5
    cooldown: float = 30.0
    consecutive: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False

    def available(self, now: float) -> bool:
        if self.opened_at is None:
            return True
        return now - self.opened_at >= self.cooldown and not self.trial_in_flight

    def begin(self, now: float) -> None:
        if self.opened_at is not None and now - self.opened_at >= self.cooldown:
            self.trial_in_flight = True

    def success(self) -> None:
        self.consecutive = 0
        self.opened_at = None
        self.trial_in_flight = False

    def failure(self, now: float) -> None:
        self.consecutive += 1
        if self.trial_in_flight or self.consecutive >= self.failures:
            self.opened_at = now
        self.trial_in_flight = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.trial_in_flight else "open"

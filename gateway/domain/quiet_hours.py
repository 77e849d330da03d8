"""Quiet hours in the recipient's own local time.

Configuration names the hours when sending is *allowed* ("marketing only 08:00-20:00"); quiet
hours are the rest of the day. Pure: time zones come from zoneinfo and phonenumbers' data, no I/O.

When the recipient's zone is uncertain (a Russian mobile number maps to 16 zones), a moment is
allowed only if it is allowed in every candidate zone: the strictest reading, because a message
at 03:00 is worse than one a few hours late.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

from gateway.domain.models import Category, Channel
from gateway.domain.phones import parse_international

_WINDOW_RE = re.compile(r"^\s*(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})\s*$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_DAY_S = 86_400
HORIZON = timedelta(days=8)
# DST and other offset changes are months apart; sampling every 3 hours and bisecting finds each.
_SCAN_STEP = timedelta(hours=3)


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """[start, end) in local minutes of the day; end < start wraps past midnight; end may be 1440."""

    start: int
    end: int

    def contains(self, second_of_day: float) -> bool:
        lo, hi = self.start * 60, self.end * 60
        if lo <= hi:
            return lo <= second_of_day < hi
        return second_of_day >= lo or second_of_day < hi

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass(frozen=True, slots=True)
class SendWindow:
    """The union of daily windows in which sending is allowed; empty means never."""

    windows: tuple[DailyWindow, ...]

    def contains(self, second_of_day: float) -> bool:
        return any(w.contains(second_of_day) for w in self.windows)

    def __str__(self) -> str:
        return ", ".join(str(w) for w in self.windows) or "never"


@dataclass(frozen=True)
class WindowRule:
    allowed: SendWindow | None = None
    countries: Mapping[str, SendWindow | None] = field(default_factory=dict)


@dataclass(frozen=True)
class CategoryRule:
    allowed: SendWindow | None = None
    countries: Mapping[str, SendWindow | None] = field(default_factory=dict)
    channels: Mapping[str, WindowRule] = field(default_factory=dict)


@dataclass(frozen=True)
class QuietHours:
    categories: Mapping[str, CategoryRule] = field(default_factory=dict)

    def governs(self, category: str) -> bool:
        """Whether any window can apply to this category: if not, where the recipient is changes
        nothing (window_for is None whatever the channel and country)."""
        return category in self.categories

    def window_for(self, category: str, channel: str, country: str | None) -> SendWindow | None:
        """The allowed window, or None when this send has no quiet hours (e.g. transactional).

        Most specific first: channel+country, country, channel, category. A country rule beats a
        channel rule because country windows usually encode law (US calls 08:00-21:00)."""
        rule = self.categories.get(category)
        if rule is None:
            return None
        ch = rule.channels.get(channel)
        if country is not None:
            if ch is not None and country in ch.countries:
                return ch.countries[country]
            if country in rule.countries:
                return rule.countries[country]
        if ch is not None:
            return ch.allowed
        return rule.allowed


DEFAULT_MARKETING_WINDOW = SendWindow((DailyWindow(8 * 60, 20 * 60),))
DEFAULT_QUIET_HOURS = QuietHours({Category.MARKETING: CategoryRule(allowed=DEFAULT_MARKETING_WINDOW)})


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_window(value: Any, key: str) -> SendWindow | None:
    """ "08:00-20:00", a list of such, or null (no quiet hours)."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise ValueError(f"{key}: {value!r} is not 'HH:MM-HH:MM' or a list of them")
    windows = []
    for i, item in enumerate(items):
        k = key if isinstance(value, str) else f"{key}[{i}]"
        m = _WINDOW_RE.match(item) if isinstance(item, str) else None
        if m is None:
            raise ValueError(f"{k}: {item!r} is not 'HH:MM-HH:MM'")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise ValueError(f"{k}: {item!r} has a time outside 00:00-24:00")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end:
            raise ValueError(f"{k}: {item!r} is empty; use '00:00-24:00' for always")
        windows.append(DailyWindow(start, end))
    return SendWindow(tuple(windows))


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def _countries(value: Any, key: str) -> dict[str, SendWindow | None]:
    out: dict[str, SendWindow | None] = {}
    for cc, window in _mapping(value, key).items():
        if not isinstance(cc, str) or not _COUNTRY_RE.match(cc.upper()):
            raise ValueError(f"{key}.{cc}: not an ISO 3166 alpha-2 country code")
        out[cc.upper()] = parse_window(window, f"{key}.{cc}")
    return out


def _unknown(m: Mapping[str, Any], allowed: set[str], key: str) -> None:
    for k in m:
        if k not in allowed:
            raise ValueError(f"{key}.{k}: unknown key (known: {', '.join(sorted(allowed))})")


def parse_quiet_hours(value: Any, key: str = "limits.quiet_hours") -> QuietHours:
    """Per category: `{"allowed": "08:00-20:00", "countries": {"US": "08:00-21:00"},
    "channels": {"voice": {"allowed": "09:00-20:00", "countries": {...}}}}` or just a window.
    Categories left out keep their defaults (marketing 08:00-20:00, transactional none)."""
    cats: dict[str, CategoryRule] = dict(DEFAULT_QUIET_HOURS.categories)
    if value is None:
        return QuietHours(cats)
    known_categories = {c.value for c in Category}
    known_channels = {c.value for c in Channel}
    for cat, spec in _mapping(value, key).items():
        ck = f"{key}.{cat}"
        if cat not in known_categories:
            raise ValueError(f"{ck}: unknown category (known: {', '.join(sorted(known_categories))})")
        if spec is None or isinstance(spec, str | list):
            cats[cat] = CategoryRule(allowed=parse_window(spec, ck))
            continue
        spec = _mapping(spec, ck)
        _unknown(spec, {"allowed", "countries", "channels"}, ck)
        default = cats.get(cat, CategoryRule())
        allowed = parse_window(spec["allowed"], f"{ck}.allowed") if "allowed" in spec else default.allowed
        channels: dict[str, WindowRule] = {}
        for ch, ch_spec in _mapping(spec.get("channels", {}), f"{ck}.channels").items():
            chk = f"{ck}.channels.{ch}"
            if ch not in known_channels:
                raise ValueError(f"{chk}: unknown channel (known: {', '.join(sorted(known_channels))})")
            if ch_spec is None or isinstance(ch_spec, str | list):
                channels[ch] = WindowRule(allowed=parse_window(ch_spec, chk))
                continue
            ch_spec = _mapping(ch_spec, chk)
            _unknown(ch_spec, {"allowed", "countries"}, chk)
            ch_allowed = allowed
            if "allowed" in ch_spec:
                ch_allowed = parse_window(ch_spec["allowed"], f"{chk}.allowed")
            channels[ch] = WindowRule(
                allowed=ch_allowed,
                countries=_countries(ch_spec.get("countries", {}), f"{chk}.countries"),
            )
        cats[cat] = CategoryRule(allowed, _countries(spec.get("countries", {}), f"{ck}.countries"), channels)
    return QuietHours(cats)


# ---------------------------------------------------------------------------------------------
# Time zones


def zone(name: str, key: str = "tz") -> ZoneInfo:
    """An IANA zone, or ValueError naming the field and the bad value."""
    unknown = ValueError(f"{key}: {name!r} is not an IANA time zone")
    if not isinstance(name, str) or not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        raise unknown
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise unknown from None


def _parse_number(to: str) -> phonenumbers.PhoneNumber | None:
    return parse_international(to)


def phone_zones(to: str | None) -> tuple[ZoneInfo, ...]:
    """The zones phonenumbers knows for an E.164 number (several for a country that spans them); none
    for anything else."""
    number = _parse_number(to) if to else None
    if number is None:
        return ()
    zones = []
    for name in pn_timezone.time_zones_for_number(number):
        if name == "Etc/Unknown":
            continue
        try:
            zones.append(ZoneInfo(name))
        except ZoneInfoNotFoundError:  # phonenumbers' data newer than the system tzdata
            continue
    return tuple(zones)


def candidate_zones(to: str | None, tz: str | None = None, *, fallback: str = "UTC") -> tuple[ZoneInfo, ...]:
    """The zones the recipient may be in: the job's explicit `tz` wins; else the zones
    phonenumbers knows for an E.164 number; else `fallback` (an e-mail, an unknown prefix)."""
    if tz is not None:
        return (zone(tz),)
    return phone_zones(to) or (zone(fallback, "limits.quiet_hours.fallback_tz"),)


class ZoneSource(enum.StrEnum):
    """Where the zone a send is timed in came from (written on the deferral event)."""

    JOB = "job"  # the job's own `tz`
    RECIPIENT = "recipient"  # the recipient profile's `tz`
    PHONE = "phone"  # the zones of the phone number (the strictest if it spans several)
    TENANT = "tenant_default"  # [tenants.<t>] time_zone
    UNCONFIGURED = "utc_unconfigured"  # nothing known and no tenant zone configured: UTC, said out loud


def local_zones(
    *, job_tz: str | None, recipient_tz: str | None, phone: str | None, tenant_tz: str | None
) -> tuple[tuple[ZoneInfo, ...], ZoneSource]:
    """The zones a recipient may be in and where they came from, most specific first: the job's `tz`,
    the recipient's `tz`, the phone number's zones, the tenant's default zone; UTC only when none of
    them is known, and then the source says so."""
    if job_tz is not None:
        return (zone(job_tz),), ZoneSource.JOB
    if recipient_tz is not None:
        return (zone(recipient_tz),), ZoneSource.RECIPIENT
    number_zones = phone_zones(phone)
    if number_zones:
        return number_zones, ZoneSource.PHONE
    if tenant_tz is not None:
        return (zone(tenant_tz),), ZoneSource.TENANT
    return (ZoneInfo("UTC"),), ZoneSource.UNCONFIGURED


def country_for(to: str | None) -> str | None:
    number = _parse_number(to) if to else None
    if number is None:
        return None
    region = phonenumbers.region_code_for_number(number)
    return region if region and region != "ZZ" else None


# ---------------------------------------------------------------------------------------------
# Decisions


def _second_of_day(t: datetime, z: ZoneInfo) -> float:
    local = t.astimezone(z)
    return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")
    return now.astimezone(UTC)


def is_allowed(now: datetime, window: SendWindow | None, zones: Iterable[ZoneInfo]) -> bool:
    if window is None:
        return True
    now = _require_aware(now)
    return all(window.contains(_second_of_day(now, z)) for z in zones)


def _offset_changes(z: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    changes = []
    # Whole seconds, so the bisection lands exactly on the (whole-second) transition.
    t = start.replace(microsecond=0)
    off = t.astimezone(z).utcoffset()
    while t < end:
        nxt = t + _SCAN_STEP
        nxt_off = nxt.astimezone(z).utcoffset()
        if nxt_off != off:
            lo, hi = t, nxt  # offset(lo) == off, offset(hi) != off
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid <= lo:
                    break
                if mid.astimezone(z).utcoffset() == off:
                    lo = mid
                else:
                    hi = mid
            changes.append(hi)
        t, off = nxt, nxt_off
    return changes


def next_allowed_time(
    now: datetime, window: SendWindow | None, zones: Sequence[ZoneInfo], horizon: timedelta = HORIZON
) -> datetime | None:
    """The earliest moment >= now that is inside `window` in every zone (UTC), or None when the
    zones share no allowed moment within `horizon`.

    The allowed set of one zone only starts at a local window start (either occurrence of an
    ambiguous local time) or at an offset change (a window start that falls in a spring-forward
    gap opens at the jump). The earliest moment allowed in all zones is one of those instants
    for some zone, so checking them in order gives the exact answer without scanning minutes.
    """
    now = _require_aware(now)
    if window is None or is_allowed(now, window, zones):
        return now
    if not window.windows:
        return None
    end = now + horizon
    candidates: set[datetime] = set()
    for z in zones:
        first_day = now.astimezone(z).date() - timedelta(days=1)
        for d in range(horizon.days + 2):
            day = first_day + timedelta(days=d)
            for w in window.windows:
                wall = datetime.combine(day, time(w.start // 60, w.start % 60), tzinfo=z)
                for fold in (0, 1):
                    candidates.add(wall.replace(fold=fold).astimezone(UTC))
        candidates.update(_offset_changes(z, now, end))
    for c in sorted(candidates):
        if now < c <= end and is_allowed(c, window, zones):
            return c
    return None


@dataclass(frozen=True, slots=True)
class QuietHoursDecision:
    allowed: bool
    next_allowed: datetime | None  # == now when allowed; None when never within the horizon
    window: SendWindow | None
    zones: tuple[str, ...]
    source: ZoneSource | None = None


def decide(
    rules: QuietHours,
    now: datetime,
    *,
    category: str,
    channel: str,
    zones: tuple[ZoneInfo, ...],
    source: ZoneSource,
    country: str | None,
) -> QuietHoursDecision:
    """May this send go now in the recipient's zones (from local_zones), and if not, when?"""
    window = rules.window_for(category, channel, country)
    nxt = next_allowed_time(now, window, zones)
    allowed = nxt is not None and nxt == _require_aware(now)
    return QuietHoursDecision(allowed, nxt, window, tuple(z.key for z in zones), source)


def check(
    rules: QuietHours,
    now: datetime,
    *,
    category: str,
    channel: str,
    to: str | None,
    tz: str | None = None,
    country: str | None = None,
    fallback_tz: str = "UTC",
) -> QuietHoursDecision:
    """The one call the worker makes: may this send go now, and if not, when?"""
    zones = candidate_zones(to, tz, fallback=fallback_tz)
    window = rules.window_for(category, channel, country or country_for(to))
    nxt = next_allowed_time(now, window, zones)
    return QuietHoursDecision(nxt is not None and nxt == _require_aware(now), nxt, window, tuple(z.key for z in zones))

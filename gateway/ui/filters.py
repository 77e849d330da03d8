"""Reading the console's query strings: time windows, report options, delivery-log filters, sorting.

Pure: each reader takes the query as a mapping and returns typed values plus the errors to show
next to the form, so a bad value is named on the page instead of failing the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.domain.failures import FAILURE_STATUSES
from gateway.domain.jobs import normalise_phone, parse_timestamp
from gateway.domain.models import Status

WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
DEFAULT_WINDOW = "24h"
_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


def parse_when(value: str) -> float | None:
    """RFC 3339 with an offset, or what a datetime-local input sends (read as UTC, as shown)."""
    value = value.strip()
    if _LOCAL.match(value):
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    return parse_timestamp(value)


def as_input(ts: float) -> str:
    """A time as a datetime-local input shows it (UTC, to the second)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True)
class Window:
    since: float
    until: float
    preset: str | None  # the named window when no explicit bounds were given

    def query(self) -> dict[str, str]:
        if self.preset is not None:
            return {"window": self.preset}
        return {"since": as_input(self.since), "until": as_input(self.until)}


def read_window(query: Mapping[str, str], now: float, errors: dict[str, str]) -> Window:
    """`since`/`until` when given (each defaults to the window's other end), else a named window."""
    preset = query.get("window") or DEFAULT_WINDOW
    if preset not in WINDOWS:
        errors["window"] = f"must be one of {', '.join(WINDOWS)}"
        preset = DEFAULT_WINDOW
    explicit = {}
    for name in ("since", "until"):
        raw = query.get(name, "").strip()
        if raw:
            parsed = parse_when(raw)
            if parsed is None:
                errors[name] = "must be a date and time, e.g. 2026-01-31T09:30:00 (UTC) or RFC 3339 with an offset"
            else:
                explicit[name] = parsed
    if not explicit:
        return Window(now - WINDOWS[preset], now, preset)
    until = explicit.get("until", now)
    since = explicit.get("since", until - WINDOWS[preset])
    if since >= until:
        errors["until"] = "must be after since"
        return Window(now - WINDOWS[preset], now, preset)
    return Window(since, until, None)


def read_choices(
    raw: str | None, allowed: Sequence[str], default: Sequence[str], name: str, errors: dict[str, str]
) -> tuple[str, ...]:
    """A comma-separated list of known names (as report APIs take them), or the default."""
    chosen = tuple(v for v in (raw or "").split(",") if v)
    if not chosen:
        return tuple(default)
    if any(v not in allowed for v in chosen):
        errors[name] = f"must be a comma-separated list of {', '.join(allowed)}"
        return tuple(default)
    return tuple(dict.fromkeys(chosen))


def failure_statuses(query: Mapping[str, str], errors: dict[str, str]) -> tuple[str, ...]:
    return read_choices(query.get("status"), FAILURE_STATUSES, FAILURE_STATUSES, "status", errors)


@dataclass(frozen=True, slots=True)
class Sort:
    key: str
    descending: bool

    def link(self, key: str) -> dict[str, str]:
        """The query that sorts by `key`: the other way round when it is the current key."""
        descending = not self.descending if key == self.key else key in ("count", "first_seen", "last_seen")
        return {"sort": key, "dir": "desc" if descending else "asc"}


def read_sort(query: Mapping[str, str], allowed: Sequence[str], default: str, errors: dict[str, str]) -> Sort:
    key = query.get("sort") or default
    if key not in allowed:
        errors["sort"] = f"must be one of {', '.join(allowed)}"
        key = default
    direction = query.get("dir") or ("desc" if key in ("count", "first_seen", "last_seen") else "asc")
    if direction not in ("asc", "desc"):
        errors["dir"] = "must be asc or desc"
        direction = "desc"
    return Sort(key, direction == "desc")


def sort_rows(rows: list[dict[str, Any]], sort: Sort) -> list[dict[str, Any]]:
    """Sorted by one column; empty values last whichever the direction."""
    present = [r for r in rows if r.get(sort.key) is not None]
    missing = [r for r in rows if r.get(sort.key) is None]
    return sorted(present, key=lambda r: r[sort.key], reverse=sort.descending) + missing


@dataclass(frozen=True, slots=True)
class LogFilter:
    """The delivery log's search form."""

    message_id: str | None = None
    to: str | None = None
    campaign: str | None = None
    user_id: str | None = None
    status: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    raw: dict[str, str] = field(default_factory=dict)  # what was typed, to fill the form again

    def query(self) -> dict[str, str]:
        return {k: v for k, v in self.raw.items() if v}


LOG_FIELDS = ("id", "to", "campaign", "user_id", "status", "since", "until")
STATUSES = tuple(s.value for s in Status)


def read_log_filter(query: Mapping[str, str], errors: dict[str, str]) -> LogFilter:
    raw = {name: query.get(name, "").strip() for name in LOG_FIELDS}
    bounds: dict[str, float | None] = {"since": None, "until": None}
    for name in bounds:
        if raw[name]:
            bounds[name] = parse_when(raw[name])
            if bounds[name] is None:
                errors[name] = "must be a date and time, e.g. 2026-01-31T09:30:00 (UTC) or RFC 3339 with an offset"
    status = read_choices(raw["status"], STATUSES, (), "status", errors) if raw["status"] else ()
    to = raw["to"] or None
    if to is not None and to.startswith("+"):
        to = normalise_phone(to) or to
    return LogFilter(
        message_id=raw["id"] or None,
        to=to,
        campaign=raw["campaign"] or None,
        user_id=raw["user_id"] or None,
        status=status,
        since=bounds["since"],
        until=bounds["until"],
        raw=raw,
    )

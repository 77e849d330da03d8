"""Routing: which provider carries a job. Pure; the worker supplies what providers exist."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    sender: str | None = None


def choose_route(channel: str, providers_by_channel: Mapping[str, Sequence[str]]) -> Route | None:
    """The first provider configured for the channel; None when the channel has none."""
    candidates = providers_by_channel.get(channel, ())
    return Route(candidates[0]) if candidates else None

"""Retry policy: what to do after an attempt failed. Pure: the caller supplies time and randomness."""

from __future__ import annotations

import random
from dataclasses import dataclass

# The reason code of a job whose expires_at came before it could go out.
REASON_EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 2.0
    max_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class Retry:
    at: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str


def backoff_ceiling(policy: RetryPolicy, attempt: int) -> float:
    """The upper bound of the wait after `attempt` failed attempts (exponential, capped)."""
    return float(min(policy.max_seconds, policy.base_seconds * 2 ** max(0, attempt - 1)))


def next_retry(
    policy: RetryPolicy,
    *,
    attempt: int,
    now: float,
    expires_at: float | None,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> Retry | GiveUp:
    """Full jitter (a uniform wait up to the exponential ceiling) spreads a fleet's retries after an
    outage instead of synchronising them; a provider's Retry-After is a floor, never shortened."""
    if attempt >= policy.max_attempts:
        return GiveUp("provider.transient.exhausted")
    wait = (rng or random).uniform(0, backoff_ceiling(policy, attempt))
    if retry_after is not None:
        wait = max(wait, retry_after)
    at = now + wait
    if expires_at is not None and at >= expires_at:
        return GiveUp(REASON_EXPIRED)
    return Retry(at)


@dataclass(frozen=True, slots=True)
class RetryBudgetPolicy:
    """Retries may be at most `ratio` of first attempts over the window, plus a small floor so a
    quiet provider can still retry: during an outage every send fails, and unbudgeted retries
    would multiply the load on the provider exactly when it can take least."""

    ratio: float = 0.2
    floor: int = 10
    window_seconds: float = 60.0


def retry_within_budget(policy: RetryBudgetPolicy, first_attempts: int, retries: int) -> bool:
    return retries < policy.floor + policy.ratio * first_attempts

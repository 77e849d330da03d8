"""Retry policy: full jitter within the exponential ceiling, bounded by attempts and expiry."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.retry import GiveUp, Retry, RetryPolicy, backoff_ceiling, next_retry

POLICY = RetryPolicy(max_attempts=6, base_seconds=2.0, max_seconds=60.0)


@given(st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=2**32))
def test_the_wait_is_within_the_jitter_bounds(attempt: int, seed: int) -> None:
    decision = next_retry(POLICY, attempt=attempt, now=1000.0, expires_at=None, rng=random.Random(seed))
    assert isinstance(decision, Retry)
    assert 1000.0 <= decision.at <= 1000.0 + min(60.0, 2.0 * 2 ** (attempt - 1))


def test_ceilings_double_then_cap() -> None:
    assert [backoff_ceiling(POLICY, n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_attempts_are_bounded() -> None:
    assert next_retry(POLICY, attempt=6, now=0, expires_at=None) == GiveUp("provider.transient.exhausted")


def test_a_retry_after_the_expiry_gives_up_as_expired() -> None:
    assert next_retry(POLICY, attempt=1, now=0, expires_at=1.0, retry_after=5.0) == GiveUp("expired")


def test_retry_after_is_a_floor() -> None:
    decision = next_retry(POLICY, attempt=1, now=0, expires_at=None, retry_after=30.0, rng=random.Random(1))
    assert isinstance(decision, Retry) and decision.at >= 30.0

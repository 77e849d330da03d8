"""Message ids: ULIDs, time-ordered so the delivery log pages by id."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.ids import CROCKFORD, message_id, message_id_floor, ulid


def _reference_ulid_time(text: str) -> int:
    value = 0
    for char in text:
        value = value * 32 + CROCKFORD.index(char)
    return value >> 80


@given(st.integers(min_value=0, max_value=2**48 - 1))
def test_the_first_48_bits_are_the_milliseconds(millis: int) -> None:
    text = ulid(millis / 1000)
    assert len(text) == 26 and set(text) <= set(CROCKFORD)
    assert abs(_reference_ulid_time(text) - millis) <= 1


@given(st.integers(min_value=0, max_value=2**47), st.integers(min_value=1, max_value=10**6))
def test_later_ids_sort_after_earlier_ones(millis: int, gap: int) -> None:
    assert message_id(millis / 1000) < message_id((millis + gap + 1) / 1000)


def test_ids_are_unique() -> None:
    assert len({message_id() for _ in range(10_000)}) == 10_000


def test_the_first_id_of_a_moment_bounds_the_ids_made_then_and_clamps_impossible_times() -> None:
    now = 1_795_442_736.417
    assert message_id(now - 0.001) < message_id_floor(now) <= message_id(now) < message_id_floor(now + 0.002)
    # A delivery-log window in the year 888 or 30000 is still a window (empty), not a crash.
    assert message_id_floor(-3e10) == "msg_" + "0" * 26
    assert message_id_floor(1e15) == "msg_7ZZZZZZZZZ" + "0" * 16

"""The duplicate-key check on request bodies, against JSON written every way the grammar allows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.bodies import _may_have_duplicate_keys, duplicate_key

# Characters that trip counting checks: quotes, colons, backslashes, braces, non-ASCII.
TRICKY = st.sampled_from(['"', ":", "\\", "{", "}", ",", "a", "b", "to", "é", "张", "\n", "/"])
KEYS = st.lists(TRICKY, min_size=0, max_size=4).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), KEYS)


@dataclass(frozen=True)
class Obj:
    pairs: tuple[tuple[str, Any], ...]  # as written, so a key may repeat


def _values() -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(tuple),
            st.lists(st.tuples(KEYS, inner), max_size=4).map(lambda pairs: Obj(tuple(pairs))),
            # A repeated key on purpose: the second copy of a key already in the object.
            st.lists(st.tuples(KEYS, inner), min_size=1, max_size=3).flatmap(
                lambda pairs: st.tuples(st.integers(0, len(pairs) - 1), inner, st.booleans()).map(
                    lambda extra: Obj(
                        (*pairs, (pairs[extra[0]][0], extra[1]))
                        if extra[2]
                        else ((pairs[extra[0]][0], extra[1]), *pairs)
                    )
                )
            ),
        ),
        max_leaves=12,
    )


def repeats_a_key(value: Any) -> bool:
    if isinstance(value, Obj):
        keys = [k for k, _ in value.pairs]
        return len(set(keys)) < len(keys) or any(repeats_a_key(v) for _, v in value.pairs)
    if isinstance(value, tuple):
        return any(repeats_a_key(v) for v in value)
    return False


def repeated_keys(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, Obj):
        keys = [k for k, _ in value.pairs]
        found |= {k for k in keys if keys.count(k) > 1}
        for _, v in value.pairs:
            found |= repeated_keys(v)
    elif isinstance(value, tuple):
        for v in value:
            found |= repeated_keys(v)
    return found


SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\n": "\\n"}


class Writer:
    """Writes a value as JSON text, choosing for each character and gap one of the spellings JSON allows."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def gap(self) -> str:
        return self.draw(st.sampled_from(["", "", " ", "\n", "\t ", "\r\n"]))

    def string(self, text: str) -> str:
        out = []
        for char in text:
            spellings = [f"\\u{ord(char):04x}", f"\\u{ord(char):04X}"]
            if char in SHORT_ESCAPES:
                spellings.append(SHORT_ESCAPES[char])
            if char not in '"\\' and ord(char) >= 0x20:
                spellings += [char, char]
            out.append(self.draw(st.sampled_from(spellings)))
        return '"' + "".join(out) + '"'

    def value(self, value: Any) -> str:
        if isinstance(value, Obj):
            members = [
                self.gap() + self.string(k) + self.gap() + ":" + self.gap() + self.value(v) for k, v in value.pairs
            ]
            return "{" + ",".join(members) + self.gap() + "}"
        if isinstance(value, tuple):
            return "[" + ",".join(self.gap() + self.value(v) for v in value) + self.gap() + "]"
        if isinstance(value, str):
            return self.string(value)
        return orjson.dumps(value).decode()


@st.composite
def written_bodies(draw: st.DrawFn) -> tuple[bytes, Any]:
    value = draw(_values())
    return Writer(draw).value(value).encode(), value


# Generating nested bodies is slow on a busy machine; the property, not the generator's speed, is under test.
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(written_bodies())
def test_the_check_finds_a_repeated_key_however_the_body_spells_it(body: tuple[bytes, Any]) -> None:
    raw, value = body
    parsed = orjson.loads(raw)
    if repeats_a_key(value):
        assert _may_have_duplicate_keys(raw, parsed), "the cheap screen must never clear a body that repeats a key"
        found = duplicate_key(raw, parsed)
        assert found is not None
        assert found[1:].replace("~1", "/").replace("~0", "~") in repeated_keys(value)
    else:
        assert duplicate_key(raw, parsed) is None


def test_an_escaped_quote_and_colon_in_a_string_no_longer_hide_a_repeated_key() -> None:
    raw = b'{"to":"+8613812345601","channel":"sms","content":{"text":"hi \\"\\u003a"},"to":"+8613812345604"}'
    parsed = orjson.loads(raw)
    assert parsed["to"] == "+8613812345604"
    assert duplicate_key(raw, parsed) == "/to"


def test_a_plain_job_is_cleared_by_the_screen_alone() -> None:
    raw = b'{"channel":"sms","to":"+8613812345678","content":{"text":"say \\u0022hi\\u0022 now"}}'
    assert not _may_have_duplicate_keys(raw, orjson.loads(raw))

"""Time-ordered identifiers, so the delivery log pages newest-first by id alone."""

from __future__ import annotations

import random
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two Crockford characters: a ULID is 13 lookups, no per-digit loop.
_PAIRS = tuple(high + low for high in CROCKFORD for low in CROCKFORD)


def _encode_130_bits(value: int) -> str:
    p = _PAIRS
    return (
        p[value >> 120]
        + p[(value >> 110) & 1023]
        + p[(value >> 100) & 1023]
        + p[(value >> 90) & 1023]
        + p[(value >> 80) & 1023]
        + p[(value >> 70) & 1023]
        + p[(value >> 60) & 1023]
        + p[(value >> 50) & 1023]
        + p[(value >> 40) & 1023]
        + p[(value >> 30) & 1023]
        + p[(value >> 20) & 1023]
        + p[(value >> 10) & 1023]
        + p[value & 1023]
    )


def ulid(now: float | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, 26 Crockford base32 characters."""
    millis = int((time.time() if now is None else now) * 1000) & (2**48 - 1)
    # The random part only has to make ids unique, not secret (reading a message needs its tenant's
    # key): the module-level generator, seeded from os.urandom and reseeded in forked children,
    # costs no system call per id, unlike os.urandom (a call the accept path paid per request).
    return _encode_130_bits((millis << 80) | random.getrandbits(80))


def message_id(now: float | None = None) -> str:
    return "msg_" + ulid(now)


def message_id_floor(at: float) -> str:
    """The smallest message id minted at `at`: every message created before it sorts below, every
    one created at or after it above (a range of creation times is a range of ids). Times outside
    what an id can hold are clamped."""
    millis = min(max(int(at * 1000), 0), 2**48 - 1)
    return "msg_" + _encode_130_bits(millis << 80)

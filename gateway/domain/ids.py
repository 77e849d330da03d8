"""Time-ordered identifiers, so the delivery log pages newest-first by id alone."""

from __future__ import annotations

import base64
import os
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD.encode())


def ulid(now: float | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, 26 Crockford base32 characters.

    Shifted into 160 bits so the C base32 encoder does the work (a Python loop over 26 digits cost
    more than the rest of building a row); the first 26 characters are the 130-bit ULID.
    """
    millis = int((time.time() if now is None else now) * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return base64.b32encode((value << 30).to_bytes(20, "big"))[:26].translate(_FROM_RFC4648).decode()


def message_id(now: float | None = None) -> str:
    return "msg_" + ulid(now)


def message_id_floor(at: float) -> str:
    """The smallest message id minted at `at`: every message created before it sorts below, every
    one created at or after it above (a range of creation times is a range of ids). Times outside
    what an id can hold are clamped."""
    millis = min(max(int(at * 1000), 0), 2**48 - 1)
    return "msg_" + base64.b32encode((millis << 110).to_bytes(20, "big"))[:26].translate(_FROM_RFC4648).decode()

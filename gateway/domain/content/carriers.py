"""Which carrier blocklist applies to a recipient, from phonenumbers' prefix-based carrier data.

The data knows the carrier that was allocated a number block; a number ported to another carrier
still maps to the original one. For filtering that is the best available guess without an HLR
lookup, and a wrong guess only means a different list is consulted.
"""

from __future__ import annotations

import re
from functools import lru_cache

from gateway.domain.content.words import CARRIER_SCOPE
from gateway.domain.phones import parse_international

_NOT_NAME_CHARS = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=65_536)
def carrier_name(e164: str) -> str | None:
    """A list-friendly carrier name ("china_mobile") for an E.164 number, None when unknown."""
    # phonenumbers' carrier tables are read on the first lookup (about 50 ms), not at import: the
    # commands that check no recipient skip them; the gateway reads them at start (regions.preload).
    from phonenumbers import carrier as carrier_data

    number = parse_international(e164)
    if number is None:
        return None
    name = carrier_data.name_for_number(number, "en")
    slug = _NOT_NAME_CHARS.sub("_", name.lower()).strip("_")
    return slug or None


def carrier_list_key(e164: str) -> str | None:
    """The key of the carrier's blocklist ("carrier:china_mobile"), None when the carrier is unknown."""
    name = carrier_name(e164)
    return f"{CARRIER_SCOPE}:{name}" if name else None

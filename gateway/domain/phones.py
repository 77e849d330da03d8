"""Phone numbers parsed once: validation, carrier lists and quiet-hours zones all need the same
parse, which costs more than the rest of judging a job, so parses are shared and remembered."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


@lru_cache(maxsize=65_536)
def parse_international(text: str) -> phonenumbers.PhoneNumber | None:
    """A number written with its country code ("+86 138 …"), or None. Callers must not mutate it."""
    if not text.startswith("+") or len(text) > 32:
        return None
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None

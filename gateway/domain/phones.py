"""Phone numbers parsed once: validation, carrier lists and quiet-hours zones all need the same
parse, which costs more than the rest of judging a job, so parses are shared and remembered."""

from __future__ import annotations

import re
from functools import cache, lru_cache

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

_MIN_NATIONAL_DIGITS, _MAX_NATIONAL_DIGITS = 2, 17  # phonenumbers refuses national numbers outside this


@lru_cache(maxsize=65_536)
def parse_international(text: str) -> phonenumbers.PhoneNumber | None:
    """A number written with its country code ("+86 138 …"), or None. Callers must not mutate it."""
    if not text.startswith("+") or len(text) > 32:
        return None
    digits = text[1:]
    if digits.isascii() and digits.isdigit():
        number = _plain_e164(digits)
        if number is not None:
            return number
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None


def _plain_e164(digits: str) -> phonenumbers.PhoneNumber | None:
    """The parse of "+<digits>" without phonenumbers' general text handling (most of its cost), or
    None to leave the number to the full parse: whenever its answer could differ from this one (a
    national part with a leading zero or starting with what the region strips as a national prefix).
    """
    for length in (1, 2, 3):  # country codes are prefix-free, so the first known one is the one
        country_code = int(digits[:length])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            national = digits[length:]
            break
    else:
        return None
    if not _MIN_NATIONAL_DIGITS <= len(national) <= _MAX_NATIONAL_DIGITS or national[0] == "0":
        return None
    if _strips_national_prefix(country_code, national):
        return None
    return phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))


def _strips_national_prefix(country_code: int, national: str) -> bool:
    pattern = _national_prefix_pattern(country_code)
    return pattern is not None and pattern.match(national) is not None


@cache
def _national_prefix_pattern(country_code: int) -> re.Pattern[str] | None:
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    prefix = metadata.national_prefix_for_parsing if metadata is not None else None
    return re.compile(prefix) if prefix else None

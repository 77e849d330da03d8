"""The shared parse of "+<digits>" numbers gives exactly what phonenumbers' full parse gives."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from gateway.domain.jobs import normalise_phone
from gateway.domain.phones import parse_international


def _full_parse(text: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None


def _e164_if_valid(number: phonenumbers.PhoneNumber | None) -> str | None:
    if number is None or not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _example_numbers() -> list[str]:
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in range(12):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                found.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    return found


def _random_numbers(count: int) -> list[str]:
    rng = random.Random(20261123)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    return [
        f"+{rng.choice(codes)}" + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 15)))
        for _ in range(count)
    ]


def test_every_example_number_and_its_neighbours_parse_as_phonenumbers_parses_them() -> None:
    examples = _example_numbers()
    inputs = examples + [e[:-1] for e in examples] + [e + "7" for e in examples] + _random_numbers(20_000)
    differences = []
    for text in inputs:
        ours, theirs = parse_international(text), _full_parse(text)
        expected = _e164_if_valid(theirs)
        if _e164_if_valid(ours) != expected or (expected is not None and ours != theirs):
            differences.append((text, ours, theirs))
    assert len(examples) > 1000
    assert differences == []


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("+8613812345678", "+8613812345678"),
        ("+112125551234", "+12125551234"),  # the NANP national prefix "1" written after the country code
        ("+390612345678", "+390612345678"),  # Italian numbers keep their leading zero
        ("+44 7911 123456", "+447911123456"),
        ("+447911123456", "+447911123456"),
        ("+4407911123456", "+447911123456"),  # the UK trunk "0" after the country code
    ],
)
def test_numbers_written_with_prefixes_normalise_like_phonenumbers(written: str, normalised: str) -> None:
    assert normalise_phone(written) == normalised
    assert _e164_if_valid(_full_parse(written)) == normalised


@pytest.mark.parametrize("written", ["+", "+0123456789", "+999123456789", "+86", "+8613812345678901234567"])
def test_what_is_not_a_number_is_refused(written: str) -> None:
    assert normalise_phone(written) is None

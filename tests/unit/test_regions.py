"""Where a number is: phonenumbers' geocoder, filled in by the number-segment (号段) data for
mainland China mobile blocks it has no province for."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.domain.regions import region_of

# Blocks the segment data puts in Xinjiang and phonenumbers has no province for (it answers "China").
XINJIANG_BLOCKS_PHONENUMBERS_MISSES = ["+8616609001234", "+8617184401234", "+8619909901234", "+8619009001234"]


@pytest.mark.parametrize("number", XINJIANG_BLOCKS_PHONENUMBERS_MISSES)
def test_xinjiang_numbers_in_blocks_phonenumbers_does_not_place_are_found(number: str) -> None:
    region = region_of(number)
    assert (region.country, region.province) == ("CN", "Xinjiang")
    assert region.carrier in {"China Mobile", "China Unicom", "China Telecom"}


def test_the_segment_data_beats_a_three_digit_default() -> None:
    # phonenumbers has no entry for the 173 0490 block and answers its 173 default, "Beijing".
    region = region_of("+8617304901234")
    assert region.province == "Xinjiang"
    assert region.city is None, "phonenumbers' city was for the province it guessed"


def test_both_sources_agreeing_keep_phonenumbers_city() -> None:
    region = region_of("+8613999123456")
    assert (region.province, region.city, region.carrier) == ("Xinjiang", "Urumchi", "China Mobile")


def test_a_number_nobody_places_has_no_province_rather_than_the_country_name() -> None:
    region = region_of("+8619900001234")  # a 199 block missing from both sources
    assert (region.country, region.province, region.city) == ("CN", None, None)
    assert region.carrier == "China Telecom"


def test_numbers_elsewhere_are_unchanged() -> None:
    new_york = region_of("+12125550101")
    assert (new_york.country, new_york.province, new_york.city) == ("US", "NY", "New York")
    assert region_of("not a number").country is None


def test_the_geocoder_tables_are_read_on_the_first_lookup_not_at_import() -> None:
    """The commands that place no number (`gateway keys`, `report`, `export`) import the store and the
    API's key helpers, which import this module: they must not pay for phonenumbers' geocoder and
    carrier tables (about 110 MB in memory, a third of a second)."""
    script = (
        "import sys, gateway.api.auth, gateway.store.store, gateway.domain.regions as r\n"
        "before = {m for m in ('phonenumbers.geocoder', 'phonenumbers.carrier') if m in sys.modules}\n"
        "region = r.region_of('+8613999123456')\n"
        "print(sorted(before), region.province, region.carrier, 'phonenumbers.geocoder' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "Xinjiang", "China", "Mobile", "True"]

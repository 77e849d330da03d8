"""How many mainland China mobile numbers get a province, and what a region lookup costs.

    .venv/bin/python bench/regions.py [--lookups 200000] [--runs 5] [--seed 7] [--cost-only]

Coverage: every 7-digit block 130 0000 .. 199 9999 that phonenumbers' metadata calls a mobile
number ("1xx xxxx" + "0000"); for each, whether phonenumbers' geocoder names a province (an answer
that is only "China" does not), whether the `phone` package's segment data does, and whether the
gateway's `region_of` does. Where both sources name one, whether they agree, split by how long the
prefix was that phonenumbers answered from (its data has 3-digit defaults such as 173 -> Beijing).

Cost: `region_of` without its cache over distinct random numbers from those blocks (every lookup a
miss, as for a campaign to new recipients), against phonenumbers' geocoder + carrier alone; medians
of --runs. Results go to docs/providers.md by hand.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

import phonenumbers
from phone import Phone
from phonenumbers import PhoneNumberType
from phonenumbers.geodata import GEOCODE_DATA

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.domain.phones import parse_international
from gateway.domain.regions import geocoded_region, region_of, segment_province

MOBILE = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


def mobile_blocks() -> list[int]:
    return [
        block
        for block in range(1_300_000, 2_000_000)
        if phonenumbers.number_type(phonenumbers.PhoneNumber(country_code=86, national_number=block * 10_000)) in MOBILE
    ]


def geocoder_prefix_length(block: int) -> int:
    """How many national digits the geocoder's answer for the block was keyed on."""
    digits = f"86{block}"
    for length in range(len(digits), 2, -1):
        if "en" in GEOCODE_DATA.get(digits[:length], {}):
            return length - 2
    return 0


def coverage(blocks: list[int]) -> None:
    total, by_pn, by_segments, by_gateway = Counter[int](), Counter[int](), Counter[int](), Counter[int]()
    agreement = Counter[tuple[int, bool]]()
    for block in blocks:
        number = phonenumbers.PhoneNumber(country_code=86, national_number=block * 10_000)
        prefix = block // 10_000
        pn, seg = geocoded_region(number).province, segment_province(number)
        total[prefix] += 1
        by_pn[prefix] += pn is not None
        by_segments[prefix] += seg is not None
        by_gateway[prefix] += region_of(f"+86{block}0000").province is not None
        if pn is not None and seg is not None:
            agreement[(geocoder_prefix_length(block), pn == seg)] += 1
    n = sum(total.values())
    print(f"mobile blocks: {n}")
    print("| prefix | blocks | phonenumbers | segment data | region_of |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for prefix in sorted(total):
        t = total[prefix]
        shares = " | ".join(f"{c[prefix] / t:.1%}" for c in (by_pn, by_segments, by_gateway))
        print(f"| {prefix} | {t} | {shares} |")
    print(
        f"| all | {n} | {sum(by_pn.values()) / n:.1%} | {sum(by_segments.values()) / n:.1%} |"
        f" {sum(by_gateway.values()) / n:.1%} |"
    )
    print("\nwhere both name a province: agree / disagree, by the geocoder's prefix length (national digits)")
    for length in sorted({length for length, _ in agreement}):
        print(f"  {length} digits: {agreement[(length, True)]} agree, {agreement[(length, False)]} disagree")


def per_lookup_us(blocks: list[int], lookups: int, runs: int, seed: int) -> None:
    rng = random.Random(seed)
    lookup = region_of.__wrapped__  # the work of a cache miss

    def phonenumbers_alone(e164: str) -> object:  # the lookup before the segment data
        number = parse_international(e164)
        return geocoded_region(number) if number is not None else None

    def segments_alone(e164: str) -> object:
        number = parse_international(e164)
        return segment_province(number) if number is not None else None

    candidates = {
        "phonenumbers geocoder + carrier": phonenumbers_alone,
        "parse + segment data": segments_alone,
        "region_of (uncached)": lookup,
    }
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(runs):  # interleaved, so a busy moment of the machine falls on all of them
        for name, fn in candidates.items():
            numbers = [f"+86{rng.choice(blocks)}{rng.randrange(10_000):04d}" for _ in range(lookups)]
            start = time.perf_counter()
            for e164 in numbers:
                fn(e164)
            samples[name].append((time.perf_counter() - start) / lookups * 1e6)
    for name, taken in samples.items():
        each = ", ".join(f"{s:.1f}" for s in taken)
        print(f"{name}: {statistics.median(taken):.1f} us per lookup (runs: {each})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cost-only", action="store_true", help="skip the coverage count (about 2 minutes)")
    args = parser.parse_args()
    data = Phone().version.decode()
    print(f"phonenumbers {phonenumbers.__version__}, phone {metadata.version('phone')} (segment data {data})")
    blocks = mobile_blocks()
    if not args.cost_only:
        coverage(blocks)
        print()
    per_lookup_us(blocks, args.lookups, args.runs, args.seed)


if __name__ == "__main__":
    main()

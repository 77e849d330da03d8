"""Where a phone number is: country, province, city and carrier from its prefix (phonenumbers'
data). Routing needs it because some regions cannot be reached on some channels (calls to
Xinjiang numbers, for one, do not connect)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from phonenumbers import carrier, geocoder, region_code_for_number

from gateway.domain.phones import parse_international


@dataclass(frozen=True, slots=True)
class Region:
    country: str | None  # ISO 3166 alpha-2
    province: str | None  # e.g. "Xinjiang", "Jiangsu"; for other countries the last part of the place
    city: str | None
    carrier: str | None  # e.g. "China Mobile"

    def value(self, key: str) -> str | None:
        return {"country": self.country, "province": self.province, "city": self.city, "carrier": self.carrier}.get(key)


UNKNOWN = Region(None, None, None, None)


@lru_cache(maxsize=65_536)
def region_of(e164: str) -> Region:
    number = parse_international(e164)
    if number is None:
        return UNKNOWN
    place = geocoder.description_for_number(number, "en")
    parts = [part.strip() for part in place.split(",") if part.strip()]
    return Region(
        country=region_code_for_number(number) or None,
        province=parts[-1] if parts else None,
        city=parts[0] if len(parts) > 1 else None,
        carrier=carrier.name_for_number(number, "en") or None,
    )

"""Where a phone number is: country, province, city and carrier from its prefix. Routing needs it
because some regions cannot be reached on some channels (calls to Xinjiang numbers, for one, do not
connect).

Two sources: phonenumbers' geocoder and, for mainland China mobile numbers, the `phone` package's
number-segment (号段) data, one record per 7-digit block. phonenumbers gives no province for a third
of those blocks (166, 171, 190-199 and most of 170/176/178) and answers others from a 3-digit
default (every 173 block it does not list is "Beijing"); the segment data knows 91.5% of the
blocks and agrees with phonenumbers on all but 8 of the 110,920 blocks phonenumbers lists one by
one (bench/regions.py, docs/providers.md). So the segment data decides a Chinese mobile number's province, phonenumbers
everything else. The data (4.5 MB) is read once, at import; a lookup is a binary search in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phone import Phone
from phonenumbers import region_code_for_number

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

# The segment data names provinces in Chinese; routing rules and number pools use phonenumbers'
# English names, so the two sources speak one language.
CHINA_PROVINCES = {
    "北京": "Beijing",
    "天津": "Tianjin",
    "河北": "Hebei",
    "山西": "Shanxi",
    "内蒙古": "Inner Mongolia",
    "辽宁": "Liaoning",
    "吉林": "Jilin",
    "黑龙江": "Heilongjiang",
    "上海": "Shanghai",
    "江苏": "Jiangsu",
    "浙江": "Zhejiang",
    "安徽": "Anhui",
    "福建": "Fujian",
    "江西": "Jiangxi",
    "山东": "Shandong",
    "河南": "Henan",
    "湖北": "Hubei",
    "湖南": "Hunan",
    "广东": "Guangdong",
    "广西": "Guangxi",
    "海南": "Hainan",
    "重庆": "Chongqing",
    "四川": "Sichuan",
    "贵州": "Guizhou",
    "云南": "Yunnan",
    "西藏": "Tibet",
    "陕西": "Shaanxi",
    "甘肃": "Gansu",
    "青海": "Qinghai",
    "宁夏": "Ningxia",
    "新疆": "Xinjiang",
}

_SEGMENTS = Phone()  # reads the package's phone.dat once; find() searches it in memory


def segment_province(number: phonenumbers.PhoneNumber) -> str | None:
    """The province of a mainland China mobile number's 7-digit block in the segment data, or None."""
    national = str(number.national_number)
    if number.country_code != 86 or len(national) != 11 or national[0] != "1":
        return None
    record = _SEGMENTS.find(national[:7])
    return CHINA_PROVINCES.get(record["province"]) if record else None


def preload() -> None:
    """Reads phonenumbers' geocoder and carrier tables now, so that the first lookup does not wait on them."""
    from phonenumbers import carrier, geocoder  # noqa: F401 - imported for their tables


def geocoded_region(number: phonenumbers.PhoneNumber) -> Region:
    """The region as phonenumbers alone tells it. A place that is only the country's name (its
    answer for a block it has no place for) is no province."""
    from phonenumbers import carrier, geocoder

    place = geocoder.description_for_number(number, "en")
    if place == geocoder.country_name_for_number(number, "en"):
        place = ""
    parts = [part.strip() for part in place.split(",") if part.strip()]
    return Region(
        country=region_code_for_number(number) or None,
        province=parts[-1] if parts else None,
        city=parts[0] if len(parts) > 1 else None,
        carrier=carrier.name_for_number(number, "en") or None,
    )


@lru_cache(maxsize=65_536)
def region_of(e164: str) -> Region:
    number = parse_international(e164)
    if number is None:
        return UNKNOWN
    geocoded = geocoded_region(number)
    province = segment_province(number)
    if province is None or province == geocoded.province:
        return geocoded
    # phonenumbers' city belongs to the province it named, not to this one.
    return Region(geocoded.country, province, None, geocoded.carrier)

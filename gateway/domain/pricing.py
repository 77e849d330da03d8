"""What an attempt costs: price tables per provider route, read from `[routing.prices.<provider>]`.

A table prices one message, or one SMS segment, in one currency; a price for the recipient's
carrier wins over one for their country, which wins over the table's default. Pure: the carrier
and country come from the number (domain/regions), the segments from the content (domain/content).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# ISO 4217 codes in use (2026). A typo such as "RMB" or "usd" must not price a campaign in nothing.
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
    CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
    GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
    LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR
    NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP
    STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG
    XOF XPF YER ZAR ZMW ZWG
    """.split()  # noqa: SIM905 - the codes read as a table
)

Unit = Literal["message", "segment"]
UNITS: tuple[Unit, ...] = ("message", "segment")
_TABLE_KEYS = ("currency", "per", "default", "countries", "carriers")


@dataclass(frozen=True, slots=True)
class Cost:
    amount: float
    currency: str


@dataclass(frozen=True, slots=True)
class PriceTable:
    currency: str
    per: Unit = "message"
    default: float | None = None
    countries: Mapping[str, float] = field(default_factory=dict)  # ISO 3166 alpha-2 -> price
    carriers: Mapping[str, float] = field(default_factory=dict)  # carrier name (domain/regions) -> price

    def unit_price(self, country: str | None, carrier: str | None) -> float | None:
        if carrier is not None and carrier in self.carriers:
            return self.carriers[carrier]
        if country is not None and country in self.countries:
            return self.countries[country]
        return self.default


def price_of(table: PriceTable | None, country: str | None, carrier: str | None, segments: int) -> Cost | None:
    """What one accepted attempt costs on this route, or None when the route has no price for it."""
    if table is None:
        return None
    unit = table.unit_price(country, carrier)
    if unit is None:
        return None
    count = max(1, segments) if table.per == "segment" else 1
    return Cost(round(unit * count, 6), table.currency)


def parse_prices(value: Any, key: str) -> dict[str, PriceTable]:
    """`{"twilio": {"currency": "USD", "per": "segment", "default": 0.0079, "countries": {"CN": 0.05}}}`;
    a bad price or currency raises ValueError naming its key."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a table of provider = {{currency, per, default, countries, carriers}}")
    return {str(provider): _parse_table(table, f"{key}.{provider}") for provider, table in value.items()}


def _parse_table(value: Any, key: str) -> PriceTable:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a table of currency, per, default, countries, carriers")
    for name in value:
        if name not in _TABLE_KEYS:
            raise ValueError(f"{key}.{name}: unknown key (known: {', '.join(_TABLE_KEYS)})")
    currency = value.get("currency")
    if currency not in CURRENCIES:
        raise ValueError(f"{key}.currency: {currency!r} is not an ISO 4217 currency code (e.g. USD, CNY, EUR)")
    per = value.get("per", "message")
    if per not in UNITS:
        raise ValueError(f"{key}.per: {per!r} is not one of {', '.join(UNITS)}")
    default = value.get("default")
    if default is not None:
        default = _price(default, f"{key}.default")
    countries = _prices(value.get("countries"), f"{key}.countries")
    for country in countries:
        if len(country) != 2 or not country.isascii() or not country.isupper():
            raise ValueError(f"{key}.countries.{country}: not an ISO 3166 alpha-2 country code (e.g. CN)")
    carriers = _prices(value.get("carriers"), f"{key}.carriers")
    if default is None and not countries and not carriers:
        raise ValueError(f"{key}: names no price (give default, countries or carriers)")
    return PriceTable(str(currency), per, default, countries, carriers)


def _prices(value: Any, key: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a table of name = price")
    return {str(name): _price(price, f"{key}.{name}") for name, price in value.items()}


def _price(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{key}: {value!r} is not a price (a number >= 0)")
    return float(value)


def cheapest_channel_costs(
    prices: Mapping[str, PriceTable], providers_by_channel: Mapping[str, tuple[str, ...]]
) -> dict[str, float]:
    """Per channel, the default price of its first priced provider: what `channel_order: "cost"`
    ranks channels by when `routing.costs` does not say."""
    costs: dict[str, float] = {}
    for channel, providers in providers_by_channel.items():
        for provider in providers:
            table = prices.get(provider)
            if table is not None and table.default is not None:
                costs[channel] = table.default
                break
    return costs

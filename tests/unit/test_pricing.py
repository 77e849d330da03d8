"""Price tables: parsing (errors name the key) and what an attempt costs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.domain.pricing import Cost, PriceTable, cheapest_channel_costs, parse_prices, price_of
from gateway.settings import SettingsError, load_settings

ALIYUN = {
    "currency": "CNY",
    "per": "segment",
    "default": 0.05,
    "countries": {"CN": 0.045},
    "carriers": {"China Mobile": 0.04},
}


def test_the_carrier_wins_over_the_country_over_the_default() -> None:
    table = parse_prices({"aliyun": ALIYUN}, "routing.prices")["aliyun"]
    assert price_of(table, "CN", "China Mobile", 2) == Cost(0.08, "CNY")
    assert price_of(table, "CN", "China Unicom", 1) == Cost(0.045, "CNY")
    assert price_of(table, "US", None, 3) == Cost(0.15, "CNY")


def test_a_per_message_price_ignores_segments_and_no_price_is_none() -> None:
    table = PriceTable("USD", "message", None, {"US": 0.01})
    assert price_of(table, "US", None, 4) == Cost(0.01, "USD")
    assert price_of(table, "CN", None, 1) is None
    assert price_of(None, "US", None, 1) is None


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({**ALIYUN, "currency": "RMB"}, "routing.prices.aliyun.currency"),
        ({**ALIYUN, "currency": "usd"}, "routing.prices.aliyun.currency"),
        ({**ALIYUN, "default": -0.01}, "routing.prices.aliyun.default"),
        ({**ALIYUN, "countries": {"CN": -1}}, "routing.prices.aliyun.countries.CN"),
        ({**ALIYUN, "countries": {"China": 0.1}}, "routing.prices.aliyun.countries.China"),
        ({**ALIYUN, "carriers": {"China Mobile": "cheap"}}, "routing.prices.aliyun.carriers.China Mobile"),
        ({**ALIYUN, "per": "call"}, "routing.prices.aliyun.per"),
        ({**ALIYUN, "price": 1}, "routing.prices.aliyun.price"),
        ({"currency": "CNY"}, "routing.prices.aliyun"),
    ],
)
def test_a_bad_price_table_is_a_config_error_naming_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"GATEWAY_ROUTING": orjson.dumps({"prices": {"aliyun": table}}).decode()})
    message = str(caught.value)  # the loader names a key in the setting, or after the setting holding it
    assert message.startswith(f"setting {key} (") or f": {key}: " in message, message


def test_channel_order_cost_ranks_by_the_first_priced_provider() -> None:
    prices = parse_prices(
        {"twilio": {"currency": "USD", "default": 0.2}, "smtp": {"currency": "USD", "default": 0.001}}, "p"
    )
    assert cheapest_channel_costs(prices, {"sms": ("aliyun", "twilio"), "email": ("smtp",)}) == {
        "sms": 0.2,
        "email": 0.001,
    }

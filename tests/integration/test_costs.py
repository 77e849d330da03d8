"""Each attempt a provider took records its cost, by the route's price table (both stores)."""

from __future__ import annotations

import orjson

from tests.harness import SMS, GatewayStarter

PRICES = {
    "sandbox": {
        "currency": "CNY",
        "per": "segment",
        "default": 0.05,
        "countries": {"CN": 0.045},
        "carriers": {"China Mobile": 0.04},
    }
}
ROUTING = {"GATEWAY_ROUTING": orjson.dumps({"prices": PRICES}).decode()}


async def test_an_accepted_attempt_records_its_price_by_carrier_and_segments(start_gateway: GatewayStarter) -> None:
    async with start_gateway(ROUTING) as gw:
        long_text = "Your order has shipped. " * 8  # 192 GSM characters: two segments
        short = await (await gw.post("/v1/messages", {**SMS, "campaign": "c1"})).json()
        long = await (await gw.post("/v1/messages", {**SMS, "campaign": "c1", "content": {"text": long_text}})).json()
        email = await (
            await gw.post(
                "/v1/messages", {"channel": "email", "to": "li@example.com", "content": {"subject": "s", "text": "t"}}
            )
        ).json()
        done = {"sent", "delivered"}
        short_attempt = (await gw.wait_status(short["id"], done))["attempts"][0]
        long_attempt = (await gw.wait_status(long["id"], done))["attempts"][0]
        email_attempt = (await gw.wait_status(email["id"], done))["attempts"][0]
        assert (short_attempt["cost"], short_attempt["currency"]) == (0.04, "CNY")  # 138: China Mobile
        assert (long_attempt["cost"], long_attempt["currency"]) == (0.08, "CNY")
        assert (email_attempt["cost"], email_attempt["currency"]) == (0.05, "CNY")  # not a phone: the default


async def test_without_a_price_table_nothing_is_priced(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        sent = await (await gw.post("/v1/messages", SMS)).json()
        attempt = (await gw.wait_status(sent["id"], {"sent", "delivered"}))["attempts"][0]
        assert (attempt["cost"], attempt["currency"]) == (None, None)

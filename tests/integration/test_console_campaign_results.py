"""The console's campaign page shows cost, the experiment's arms with lift and interval, and the
per-rule table. Both stores."""

from __future__ import annotations

import orjson

from tests.console import Console
from tests.harness import SMS, GatewayStarter

PRICES = {"sandbox": {"currency": "CNY", "default": 0.05}}
ENV = {"GATEWAY_ROUTING": orjson.dumps({"prices": PRICES}).decode()}


async def test_the_campaign_page_shows_cost_arms_and_rules(start_gateway: GatewayStarter) -> None:
    async with start_gateway(ENV) as gw, Console(gw) as console:
        declared = await gw.session.put(
            gw.url + "/v1/campaigns/recall", json={"variants": {"A": 50, "B": 30}, "holdout": 20}, headers=gw.headers
        )
        assert declared.status == 201
        ids = []
        for n in range(30):
            rule = "cart" if n % 2 else "lapsed"
            job = {**SMS, "to": f"+86139{n:08d}", "user_id": f"u-{n}", "campaign": "recall", "variant": "auto"}
            answer = await (await gw.post("/v1/messages", {**job, "metadata": {"rule": rule}})).json()
            ids.append((answer["id"], answer["variant"]))
        for message_id, variant in ids:
            if variant != "holdout":
                await gw.wait_status(message_id, {"sent", "delivered"})
        for message_id, _ in ids[:6]:
            assert (await gw.post("/v1/conversions", {"message_id": message_id, "event": "purchase"})).status == 201
        report = await (await gw.get("/v1/reports/campaigns/recall")).json()
        cost = report["totals"]["cost"]["CNY"]

        await console.sign_in()
        status, page = await console.get("/ui/campaigns/recall")
        assert status == 200
        assert f"CNY {cost:,.2f}" in page and 'id="campaign-cost"' in page
        assert 'id="campaign-arms"' in page and "95% interval" in page and "two-proportion z-test" in page
        arms = {arm["variant"]: arm for arm in report["experiment"]["arms"]}
        assert f"{arms['A']['lift_low']:+.2f} to {arms['A']['lift_high']:+.2f}" in page
        assert 'id="campaign-rules"' in page and "<td>cart</td>" in page and "<td>lapsed</td>" in page

        status, by_rule = await console.get("/ui/campaigns/recall", params={"group_by": "metadata.rule"})
        assert status == 200 and "<td>cart</td>" in by_rule

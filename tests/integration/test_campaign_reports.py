"""The campaign report by rule (metadata.<key>) and recipient state, with cost, suppressions and
deferrals by reason; the campaign list with its cursor; CSV downloads. Both stores."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from tests.harness import SMS, GatewayStarter, Running

PRICES = {"sandbox": {"currency": "CNY", "default": 0.05}}
LIMITS = {
    "quiet_hours": {"marketing": "00:00-24:00"},
    "caps": {"marketing": {"sms": ["1/day"]}, "transactional": {"sms": ["1/day"]}},
    "on_hit": {"marketing": "drop", "transactional": "defer"},
}
ENV = {"GATEWAY_ROUTING": orjson.dumps({"prices": PRICES}).decode(), "GATEWAY_LIMITS": orjson.dumps(LIMITS).decode()}
DONE = {"sent", "delivered", "suppressed", "deferred"}


async def send(gw: Running, to: str, rule: str, **extra: Any) -> str:
    job = {**SMS, "to": to, "campaign": "recall", "metadata": {"rule": rule, "step": 1}, **extra}
    answer = await gw.post("/v1/messages", job)
    assert answer.status == 202, await answer.text()
    message_id: str = (await answer.json())["id"]
    await gw.wait_status(message_id, DONE)
    return message_id


async def test_the_report_by_rule_shows_cost_suppressions_and_deferrals_by_reason(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway(ENV) as gw:
        first = await send(gw, "+8613900000001", "cart", user_id="u-1")
        await send(gw, "+8613900000002", "cart")
        await send(gw, "+8613900000001", "cart", user_id="u-1")  # the day's cap: dropped (limit.cap)
        assert (await gw.post("/v1/suppressions", {"address": "+8613900000003"})).status == 201
        await send(gw, "+8613900000003", "lapsed")  # opted out
        await send(gw, "+8613900000004", "lapsed", category="transactional")
        await send(gw, "+8613900000004", "lapsed", category="transactional")  # over the cap: deferred
        bought = await gw.post("/v1/conversions", {"message_id": first, "event": "purchase", "value": 20})
        assert bought.status == 201

        answer = await gw.get("/v1/reports/campaigns/recall", params={"group_by": "metadata.rule"})
        assert answer.status == 200, await answer.text()
        report = await answer.json()
        groups = {g["metadata"]["rule"]: g for g in report["groups"]}
        cart, lapsed = groups["cart"], groups["lapsed"]
        assert (cart["messages"], cart["sent"], cart["suppressed"], cart["conversions"]) == (3, 2, 1, 1)
        assert cart["cost"] == {"CNY": 0.1} and cart["cost_per_conversion"] == {"CNY": 0.1}
        assert cart["suppressed_by_reason"] == {"limit.cap": 1}
        assert lapsed["suppressed_by_reason"] == {"suppressed.opt_out": 1}
        assert lapsed["deferred_by_reason"] == {"limit.cap": 1}
        assert lapsed["cost"] == {"CNY": 0.05}
        totals = report["totals"]
        assert totals["cost"] == {"CNY": 0.15} and totals["messages"] == 6
        assert totals["suppressed_by_reason"] == {"limit.cap": 1, "suppressed.opt_out": 1}
        assert report["experiment"] is None

        by_state = await (await gw.get("/v1/reports/campaigns/recall", params={"group_by": "recipient_state"})).json()
        states = {g["recipient_state"]: g["messages"] for g in by_state["groups"]}
        assert states == {"awake": 2, None: 4}

        both = await gw.get("/v1/reports/campaigns/recall", params={"group_by": "channel,metadata.rule,metadata.step"})
        found = {(g["channel"], g["metadata"]["rule"], g["metadata"]["step"]) for g in (await both.json())["groups"]}
        assert found == {
            ("sms", "cart", "1"),
            ("sms", "lapsed", "1"),
        }

        as_csv = await gw.get("/v1/reports/campaigns/recall", params={"group_by": "metadata.rule", "format": "csv"})
        assert as_csv.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(await as_csv.text())))
        assert [(r["metadata.rule"], r["messages"], r["cost.CNY"]) for r in rows] == [
            ("cart", "3", "0.1"),
            ("lapsed", "3", "0.05"),
        ]
        by_accept = await gw.get("/v1/reports/campaigns/recall", headers={"Accept": "text/csv"})
        assert (await by_accept.text()).startswith("variant,messages,")


async def test_the_campaign_list_pages_by_name_with_totals(start_gateway: GatewayStarter) -> None:
    async with start_gateway(ENV) as gw:
        for n, campaign in enumerate(("autumn", "spring", "winter", "spring")):
            job = {**SMS, "to": f"+861390000010{n}", "campaign": campaign}
            sent = await (await gw.post("/v1/messages", job)).json()
            await gw.wait_status(sent["id"], {"sent", "delivered"})
        first = await (await gw.get("/v1/reports/campaigns", params={"limit": "2"})).json()
        assert [(c["campaign"], c["messages"], c["cost"]) for c in first["data"]] == [
            ("autumn", 1, {"CNY": 0.05}),
            ("spring", 2, {"CNY": 0.1}),
        ]
        assert first["next_cursor"] == "spring"
        rest = await (await gw.get("/v1/reports/campaigns", params={"limit": "2", "cursor": "spring"})).json()
        assert [c["campaign"] for c in rest["data"]] == ["winter"] and rest["next_cursor"] is None
        listed = await gw.get("/v1/reports/campaigns", headers={"Accept": "text/csv"})
        rows = list(csv.DictReader(io.StringIO(await listed.text())))
        assert [(r["campaign"], r["messages"]) for r in rows] == [("autumn", "1"), ("spring", "2"), ("winter", "1")]


async def test_a_bad_grouping_or_page_is_a_400_naming_the_parameter(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        for path, params, field in (
            ("/v1/reports/campaigns/recall", {"group_by": "metadata."}, "group_by"),
            ("/v1/reports/campaigns/recall", {"group_by": "variant,colour"}, "group_by"),
            ("/v1/reports/campaigns/recall", {"format": "xml"}, "format"),
            ("/v1/reports/campaigns", {"limit": "0"}, "limit"),
            ("/v1/reports/campaigns", {"limit": "201"}, "limit"),
        ):
            answer = await gw.get(path, params=params)
            assert answer.status == 400, (params, await answer.text())
            problem = await answer.json()
            assert answer.headers["Content-Type"].startswith("application/problem+json")
            assert [e["field"] for e in problem["errors"]] == [field], problem


async def test_conversion_values_at_their_bounds_sum_and_beyond_them_are_refused(start_gateway: GatewayStarter) -> None:
    async with start_gateway(ENV) as gw:
        first = await send(gw, "+8613900000001", "cart", category="transactional")
        for n, value in enumerate((1e12, 1e12, -1e12, 1e12)):
            bought = {"message_id": first, "event": "purchase", "value": value, "event_id": f"order-{n}"}
            assert (await gw.post("/v1/conversions", bought)).status == 201
        answer = await gw.get("/v1/reports/campaigns/recall")
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["totals"]["value"] == 2e12
        assert (await gw.get("/v1/reports/campaigns")).status == 200
        for value in (1e13, -1.5e12, 1e300):
            refused = await gw.post("/v1/conversions", {"message_id": first, "event": "purchase", "value": value})
            assert refused.status == 422
            assert [e["field"] for e in (await refused.json())["errors"]] == ["/value"]
        assert await gw.count("conversions") == 4

"""Sleeping recipients as data: listed by GET /v1/recipients?sleeping=, counted per campaign, and woken by
a reply or a conversion (the count of unanswered sends starts again)."""

from __future__ import annotations

import json
from typing import Any

from providers.sandbox import SIGNATURE_HEADER, sign_inbound
from tests.harness import SMS, GatewayStarter, Running

SLEEPING = {"GATEWAY_LIMITS": json.dumps({"quiet_hours": {"marketing": "00:00-24:00"}, "sleeping": {"after": 2}})}


async def send(gw: Running, user_id: str, to: str, final: set[str]) -> dict[str, Any]:
    body = {**SMS, "to": to, "user_id": user_id, "campaign": "recall"}
    response = await gw.post("/v1/messages", body)
    assert response.status == 202, await response.text()
    return await gw.wait_status((await response.json())["id"], final)


async def listed(gw: Running, sleeping: str) -> list[str]:
    page = await (await gw.get(f"/v1/recipients?sleeping={sleeping}")).json()
    return [r["user_id"] for r in page["data"]]


async def test_sleepers_are_listed_counted_per_campaign_and_woken_by_a_reply_or_a_conversion(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway(SLEEPING) as gw:
        people = {"u-1": "+8613800000001", "u-2": "+8613800000002", "u-3": "+8613800000003"}
        for user_id, phone in people.items():
            answer = await gw.session.put(
                f"{gw.url}/v1/recipients/{user_id}", json={"phone": phone}, headers=gw.headers
            )
            assert answer.status == 201
        for user_id in ("u-1", "u-3"):
            for _ in range(2):
                await send(gw, user_id, people[user_id], {"delivered"})
        assert await listed(gw, "true") == ["u-1", "u-3"]
        assert await listed(gw, "false") == ["u-2"]

        held = await send(gw, "u-1", people["u-1"], {"suppressed"})
        assert held["reason"] == "suppressed.sleeping"
        report = await (await gw.get("/v1/reports/campaigns/recall")).json()
        assert (report["totals"]["suppressed"], report["totals"]["sleeping"]) == (1, 1)

        secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
        body, signature = sign_inbound(secret, [{"from": people["u-1"], "to": "+10000000000", "text": "好的，谢谢"}])
        replied = await gw.session.post(
            gw.url + "/v1/inbound/sandbox",
            data=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )
        assert replied.status == 200
        last = (await (await gw.get("/v1/messages?user_id=u-3")).json())["data"][0]
        assert (await gw.post("/v1/conversions", {"message_id": last["id"], "event": "visit"})).status == 201
        assert await listed(gw, "true") == []
        await send(gw, "u-1", people["u-1"], {"delivered"})
        await send(gw, "u-3", people["u-3"], {"delivered"})


async def test_without_a_sleeping_policy_nobody_sleeps_and_everyone_is_awake(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        put = await gw.session.put(gw.url + "/v1/recipients/u-1", json={"phone": "+8613812345678"}, headers=gw.headers)
        assert put.status == 201
        awake = await gw.get("/v1/recipients", params={"sleeping": "false"})
        assert awake.status == 200, await awake.text()
        assert [r["user_id"] for r in (await awake.json())["data"]] == ["u-1"]
        asleep = await gw.get("/v1/recipients", params={"sleeping": "true"})
        assert asleep.status == 200 and (await asleep.json())["data"] == []

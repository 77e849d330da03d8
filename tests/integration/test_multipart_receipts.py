"""Long SMS whose provider reports each segment on its own: the receipts are combined per message."""

from __future__ import annotations

import time

import orjson

from providers.sandbox import SIGNATURE_HEADER, sign
from tests.harness import SMS, GatewayStarter, Running

LONG_TEXT = "Your parcel is on its way. " * 12  # 324 GSM-7 characters: 3 segments of 153
PER_SEGMENT = {"GATEWAY_SANDBOX__RECEIPTS_PER_SEGMENT": "true"}


async def _post(gw: Running, receipts: list[dict[str, object]]) -> dict[str, int]:
    secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
    body = orjson.dumps({"receipts": receipts})
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, int(time.time()), body)}
    response = await gw.session.post(gw.url + "/v1/receipts/sandbox", data=body, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def _status(gw: Running, message_id: str) -> str:
    return (await (await gw.get(f"/v1/messages/{message_id}")).json())["status"]


async def test_a_long_sms_is_delivered_when_every_segment_is(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__RECEIPTS": "false"}) as gw:
        response = await gw.post("/v1/messages", {**SMS, "content": {"text": LONG_TEXT}})
        message = await gw.wait_status((await response.json())["id"], {"sent"})
        sid = message["provider_message_id"]

        def part(n: int, status: str = "delivered") -> dict[str, object]:
            return {"sid": sid, "status": status, "part": n, "parts": 3}

        await _post(gw, [part(3)])  # segments report in any order
        assert await _status(gw, message["id"]) == "sent"
        await _post(gw, [part(1), part(3)])  # and more than once
        assert await _status(gw, message["id"]) == "sent"
        await _post(gw, [part(2)])
        detail = await (await gw.get(f"/v1/messages/{message['id']}")).json()
        assert detail["status"] == "delivered"
        assert [e["status"] for e in detail["events"]].count("delivered") == 1
        assert await gw.count("receipts") == 3


async def test_one_lost_segment_makes_the_message_undelivered(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__RECEIPTS": "false"}) as gw:
        response = await gw.post("/v1/messages", {**SMS, "content": {"text": LONG_TEXT}})
        message = await gw.wait_status((await response.json())["id"], {"sent"})
        sid = message["provider_message_id"]
        await _post(gw, [{"sid": sid, "status": "delivered", "part": 1, "parts": 2}])
        await _post(gw, [{"sid": sid, "status": "undelivered", "error_code": "SBX-30003", "part": 2, "parts": 2}])
        detail = await (await gw.get(f"/v1/messages/{message['id']}")).json()
        assert (detail["status"], detail["error_code"]) == ("undelivered", "SBX-30003")


async def test_the_sandbox_sends_a_receipt_per_segment_and_the_gateway_combines_them(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway({**PER_SEGMENT, "GATEWAY_SANDBOX__RECEIPT_DELAY_MS": "50"}) as gw:
        short = await gw.post("/v1/messages", SMS)
        long = await gw.post("/v1/messages", {**SMS, "content": {"text": LONG_TEXT}})
        for response in (short, long):
            await gw.wait_status((await response.json())["id"], {"delivered"})
        assert await gw.count("receipts") == 1 + 3


async def test_malformed_segment_numbers_are_refused_and_nothing_is_recorded(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__RECEIPTS": "false"}) as gw:
        secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
        for bad in ({"part": 3, "parts": 2}, {"part": 1}, {"part": "1", "parts": 2}, {"part": 0, "parts": 2}):
            body = orjson.dumps({"receipts": [{"sid": "SBX1", "status": "delivered", **bad}]})
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, int(time.time()), body)}
            response = await gw.session.post(gw.url + "/v1/receipts/sandbox", data=body, headers=headers)
            assert response.status == 400, bad
            assert (await response.json())["type"] == "/problems/malformed-receipt"
        assert await gw.count("receipts") == 0

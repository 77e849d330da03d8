"""Everyday Chinese refusals ("不要再发了", "别发了", "拒收") sent back to the gateway suppress the sender."""

from __future__ import annotations

import json

import pytest

from providers.sandbox import SIGNATURE_HEADER, sign_inbound
from tests.harness import SMS, GatewayStarter, Running

NO_QUIET_HOURS = {"quiet_hours": {"marketing": "00:00-24:00"}}


async def _reply(gw: Running, text: str) -> dict[str, int]:
    secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
    body, signature = sign_inbound(secret, [{"from": SMS["to"], "to": "+10000000000", "text": text}])
    response = await gw.session.post(
        gw.url + "/v1/inbound/sandbox",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
    )
    assert response.status == 200
    return dict(await response.json())


async def _send(gw: Running) -> str:
    response = await gw.post("/v1/messages", SMS)
    assert response.status == 202, await response.text()
    return str((await response.json())["id"])


@pytest.mark.parametrize("text", ["不要再发了", "别发了！", "拒收"])
async def test_a_chinese_refusal_suppresses_the_sender(start_gateway: GatewayStarter, text: str) -> None:
    async with start_gateway({"GATEWAY_LIMITS": json.dumps(NO_QUIET_HOURS)}) as gw:
        await gw.wait_status(await _send(gw), {"delivered"})
        assert await _reply(gw, text) == {"opted_out": 1, "opted_in": 0, "other": 0, "unmatched": 0}
        stopped = await gw.wait_status(await _send(gw), {"suppressed"})
        assert stopped["reason"] == "suppressed.opt_out"
        assert stopped["attempts"] == []


async def test_an_operator_who_narrows_the_phrases_keeps_the_reply_as_other(start_gateway: GatewayStarter) -> None:
    limits = {**NO_QUIET_HOURS, "opt_out": {"contains": ["退订"]}}
    async with start_gateway({"GATEWAY_LIMITS": json.dumps(limits)}) as gw:
        await gw.wait_status(await _send(gw), {"delivered"})
        assert await _reply(gw, "不要再发了") == {"opted_out": 0, "opted_in": 0, "other": 1, "unmatched": 0}
        assert await gw.count("suppressions") == 0

"""An opt-out reply reaches only the tenant whose message it answered, and only its marketing; every reply
is kept as an `inbound.reply` event; the scope is written on the suppression and shown by the API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.api.auth import SCOPES, key_row
from providers.sandbox import SIGNATURE_HEADER, sign_inbound
from tests.harness import SMS, GatewayStarter, Running

PERSON = "+8613812345678"
B_KEY = "tenant-b-key-0123456789abcdef"
POOL = "+14155550101"


async def tenant_b(gw: Running) -> dict[str, str]:
    await gw.gateway.store.ensure_tenant("tenant-b")
    await gw.gateway.store.add_api_key(key_row(B_KEY, "kb0000000001", "tenant-b", "b", SCOPES))
    return {"Authorization": f"Bearer {B_KEY}"}


async def send(gw: Running, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    response = await gw.post("/v1/messages", body, headers=headers or {})
    assert response.status == 202, await response.text()
    return str((await response.json())["id"])


async def final(gw: Running, message_id: str, headers: dict[str, str] | None) -> str:
    async def status() -> str | None:
        message = await (await gw.get(f"/v1/messages/{message_id}", headers=headers or {})).json()
        return message["status"] if message["status"] in ("delivered", "suppressed") else None

    return str(await gw.wait_for(status))


async def delivered(gw: Running, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    message_id = await send(gw, body, headers)
    assert await final(gw, message_id, headers) == "delivered"
    return message_id


async def status_of(gw: Running, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    return await final(gw, await send(gw, body, headers), headers)


async def reply(gw: Running, text: str, sender: str = PERSON, to: str = "+10000000000") -> dict[str, int]:
    secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
    body, signature = sign_inbound(secret, [{"from": sender, "to": to, "text": text}])
    response = await gw.session.post(
        gw.url + "/v1/inbound/sandbox",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
    )
    assert response.status == 200
    return dict(await response.json())


async def suppressions(gw: Running, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    response = await gw.get("/v1/suppressions", headers=headers or {})
    return list((await response.json())["data"])


async def replies(gw: Running, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    response = await gw.get("/v1/events?type=inbound.reply", headers=headers or {})
    return [json.loads(line) for line in (await response.text()).splitlines()]


async def test_stop_to_tenant_a_marketing_keeps_b_marketing_and_a_codes_flowing(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        b = await tenant_b(gw)
        await delivered(gw, {**SMS, "to": PERSON}, b)
        answered = await delivered(gw, {**SMS, "to": PERSON})  # A's is the message the reply answers
        assert await reply(gw, "TD") == {"opted_out": 1, "opted_in": 0, "other": 0, "unmatched": 0}

        assert await status_of(gw, {**SMS, "to": PERSON}) == "suppressed"
        code = {**SMS, "to": PERSON, "category": "transactional", "content": {"text": "Your code is 123456"}}
        assert await status_of(gw, code) == "delivered"
        assert await status_of(gw, {**SMS, "to": PERSON}, b) == "delivered"

        [listed] = await suppressions(gw)
        assert (listed["address"], listed["scope"], listed["pool"], listed["source"]) == (
            PERSON,
            "marketing",
            None,
            "inbound:sandbox",
        )
        assert await suppressions(gw, b) == []
        [event] = await replies(gw)
        assert event["message_id"] == answered
        assert event["detail"]["matched_by"] == "message"
        assert await replies(gw, b) == []


async def test_a_reply_that_is_no_keyword_is_kept_as_an_event_and_suppresses_nothing(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway() as gw:
        answered = await delivered(gw, {**SMS, "to": PERSON})
        assert await reply(gw, "你们是哪家公司？") == {"opted_out": 0, "opted_in": 0, "other": 1, "unmatched": 0}
        [event] = await replies(gw)
        detail = event["detail"]
        assert (event["message_id"], event["reason"], detail["text"], detail["from"]) == (
            answered,
            "none",
            "你们是哪家公司？",
            PERSON,
        )
        assert await suppressions(gw) == []


async def test_a_reply_matching_no_message_applies_to_the_tenants_that_configured_the_number(
    start_gateway: GatewayStarter,
) -> None:
    env = {"GATEWAY_TENANTS": json.dumps({"tenant-b": {"inbound_numbers": ["+10000000001"]}})}
    async with start_gateway(env) as gw:
        b = await tenant_b(gw)
        assert (await reply(gw, "STOP", to="+10000000001"))["opted_out"] == 1
        assert (await reply(gw, "STOP", sender="+8613900000001", to="+10000000002"))["unmatched"] == 1
        assert [(s["address"], s["scope"]) for s in await suppressions(gw, b)] == [(PERSON, "marketing")]
        assert await suppressions(gw) == []
        assert (await replies(gw, b))[0]["detail"]["matched_by"] == "inbound_number"


@pytest.mark.parametrize(("scope", "b_status"), [("tenant", "delivered"), ("tenant_and_pool", "suppressed")])
async def test_the_pool_scope_reaches_the_tenants_that_sent_from_the_same_pool(
    start_gateway: GatewayStarter, scope: str, b_status: str
) -> None:
    env = {
        "GATEWAY_NUMBERS": json.dumps({"pools": {"us": {"provider": "sandbox", "senders": [POOL]}}}),
        "GATEWAY_TENANTS": json.dumps({"default": {"opt_out_scope": scope}}),
    }
    async with start_gateway(env) as gw:
        b = await tenant_b(gw)
        await delivered(gw, {**SMS, "to": PERSON}, b)
        await delivered(gw, {**SMS, "to": PERSON})
        assert (await reply(gw, "STOP", to=POOL))["opted_out"] == 1
        assert await status_of(gw, {**SMS, "to": PERSON}) == "suppressed"
        assert await status_of(gw, {**SMS, "to": PERSON}, b) == b_status
        assert [s["pool"] for s in await suppressions(gw)] == ["us" if scope == "tenant_and_pool" else None]

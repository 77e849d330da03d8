"""Number health from every kind of evidence, with the embedded sandbox: its simulated carrier
filtering a sender, recipients replying STOP to a number, a reputation hook or entry point."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from providers.sandbox import SIGNATURE_HEADER, sign_inbound
from tests.fakes.http import FakeHttpService, Recorded
from tests.harness import GatewayStarter, Running

POOL = ["+14155550101", "+14155550102", "+14155550103"]
FINAL = {"delivered", "undelivered", "failed"}


def env(numbers: dict[str, Any], **extra: str) -> dict[str, str]:
    settings = {"tick_seconds": 0.1, "pools": {"us": {"provider": "sandbox", "senders": POOL}}, **numbers}
    return {"GATEWAY_NUMBERS": json.dumps(settings), **extra}


async def send(gw: Running, to: str, text: str = "Your order shipped") -> dict[str, Any]:
    response = await gw.post("/v1/messages", {"channel": "sms", "to": to, "content": {"text": text}})
    assert response.status == 202
    return await gw.wait_status((await response.json())["id"], FINAL)


async def numbers(gw: Running) -> dict[str, dict[str, Any]]:
    return {n["sender"]: n for n in (await (await gw.get("/v1/numbers")).json())["data"]}


async def events(gw: Running, number_id: str) -> list[dict[str, Any]]:
    return list(reversed((await (await gw.get(f"/v1/numbers/{number_id}")).json())["events"]))


async def test_the_sandbox_can_simulate_a_filtered_sender(start_gateway: GatewayStarter) -> None:
    async with start_gateway(env({}, GATEWAY_SANDBOX__FILTERED_SENDERS=json.dumps([POOL[1]]))) as gw:
        for n in range(12):
            message = await send(gw, f"+1202555{n:04d}")
            if message["sender"] == POOL[1]:
                assert (message["status"], message["error_code"]) == ("undelivered", "SBX-30007")
            else:
                assert message["status"] == "delivered"
        bad = (await numbers(gw))[POOL[1]]
        assert bad["state"] == "quarantined" and bad["reason"] == "evidence.filtered"
        assert [e["to"] for e in await events(gw, bad["id"])] == ["active", "suspect", "quarantined"]
        metrics = await (await gw.get("/metrics")).text()
        change = 'gateway_number_state_changes_total{pool="us",reason="evidence.filtered",to_state="quarantined"}'
        assert f"{change} 1.0" in metrics

        async def counted() -> bool:
            text = await (await gw.get("/metrics")).text()
            return 'gateway_numbers{pool="us",state="quarantined"} 1.0' in text

        await gw.wait_for(counted)


async def test_stop_replies_to_a_number_make_it_suspect(start_gateway: GatewayStarter) -> None:
    settings = {"min_sample": 2, "opt_out_rate": 0.5, "pools": {"us": {"provider": "sandbox", "senders": POOL[:1]}}}
    async with start_gateway(env(settings)) as gw:
        recipients = ["+12025550001", "+12025550002"]
        for to in recipients:
            assert (await send(gw, to))["sender"] == POOL[0]
        secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
        body, signature = sign_inbound(secret, [{"from": to, "to": POOL[0], "text": "STOP"} for to in recipients])
        response = await gw.session.post(
            gw.url + "/v1/inbound/sandbox",
            data=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )
        assert (await response.json())["opted_out"] == 2
        number = (await numbers(gw))[POOL[0]]
        assert (number["state"], number["reason"]) == ("suspect", "evidence.opt_out_rate")
        assert number["health"]["opt_out"] == 2
        [_, suspected] = await events(gw, number["id"])
        assert suspected["evidence"]["threshold"] == 0.5


class ReputationHook(FakeHttpService):
    """A reputation service: says which of the numbers it is asked about are flagged."""

    def __init__(self, flagged: dict[str, str]) -> None:
        super().__init__()
        self.flagged = flagged

    async def answer(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        asked = recorded.json()["numbers"]
        listed = [
            {"sender": n["sender"], "reason": self.flagged[n["sender"]]} for n in asked if n["sender"] in self.flagged
        ]
        return web.json_response({"flagged": listed})


async def test_a_reputation_hook_flags_numbers_on_its_schedule(start_gateway: GatewayStarter) -> None:
    async with ReputationHook({POOL[2]: "listed as harassment by a handset vendor"}) as hook:
        settings = {"reputation": {"url": hook.url + "/check", "interval_seconds": 3600}}
        async with start_gateway(env(settings)) as gw:

            async def flagged() -> bool:
                return (await numbers(gw))[POOL[2]]["state"] == "quarantined"

            await gw.wait_for(flagged)
            found = await numbers(gw)
            assert {s: n["state"] for s, n in found.items()} == {
                POOL[0]: "active",
                POOL[1]: "active",
                POOL[2]: "quarantined",
            }
            assert all(n["checked_at"] is not None for n in found.values())
            assert found[POOL[2]]["reason"] == "reputation.flagged"
            last = (await events(gw, found[POOL[2]]["id"]))[-1]
            assert (last["actor"], last["evidence"]) == (
                "reputation",
                {"reason": "listed as harassment by a handset vendor"},
            )
            asked = hook.requests[0].json()["numbers"]
            assert sorted(n["sender"] for n in asked) == POOL
            # Checked once per interval, not on every tick.
            assert len(hook.requests) == 1
            # Its messages go out from the others meanwhile.
            assert (await send(gw, "+12025550009"))["sender"] != POOL[2]


def flag_the_first(numbers: list[dict[str, Any]]) -> list[dict[str, str]]:
    """A reputation check as a Python entry point (named in the test's settings)."""
    first = min(numbers, key=lambda n: n["sender"])
    return [{"id": first["id"], "reason": "found on a spam list"}]


async def test_a_reputation_entry_point_flags_numbers(start_gateway: GatewayStarter) -> None:
    settings = {"reputation": {"entry_point": "tests.integration.test_number_health:flag_the_first"}}
    async with start_gateway(env(settings)) as gw:

        async def flagged() -> bool:
            return (await numbers(gw))[POOL[0]]["state"] == "quarantined"

        await gw.wait_for(flagged)
        assert (await numbers(gw))[POOL[0]]["reason"] == "reputation.flagged"


async def test_daily_and_warm_up_caps_defer_what_the_pool_cannot_send_today(start_gateway: GatewayStarter) -> None:
    pools = {
        "us": {
            "provider": "sandbox",
            "daily_cap": 2,
            "senders": [POOL[0], {"sender": POOL[1], "warmup": True}],
        }
    }
    async with start_gateway(env({"warmup_caps": [1], "pools": pools})) as gw:
        found = await numbers(gw)
        assert (found[POOL[0]]["daily_cap_now"], found[POOL[1]]["daily_cap_now"]) == (2, 1)
        sent = [await send(gw, f"+1202555{n:04d}") for n in range(3)]
        assert sorted(m["sender"] for m in sent) == [POOL[0], POOL[0], POOL[1]]
        response = await gw.post("/v1/messages", {"channel": "sms", "to": "+12025550100", "content": {"text": "x"}})
        deferred = await gw.wait_status((await response.json())["id"], {"deferred"})
        assert deferred["reason"] == "number.daily_cap"
        assert deferred["attempts"] == []
        waited = deferred["events"][-1]["detail"]
        assert waited["pools"] == ["us"] and waited["numbers"] == 2

"""Routing: region rules with channel fallback, provider failover with a circuit breaker."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import orjson

from gateway.domain.routing import weighted_order
from providers.sandbox import SIGNATURE_HEADER, sign
from tests.fakes.twilio import FakeTwilio
from tests.harness import GatewayStarter, Running

XINJIANG = "+8613999123456"  # China Mobile, Urumqi
SMS_JOB = {
    "channel": "sms",
    "to": "+8613812345678",
    "content": {"text": "您的验证码是 123456"},
    "category": "transactional",
}


async def test_a_voice_job_to_xinjiang_is_denied_and_delivered_by_sms(start_gateway: GatewayStarter) -> None:
    routing = {"rules": [{"channel": "voice", "deny": {"province": "Xinjiang"}, "fallback": "sms"}]}
    async with start_gateway({"GATEWAY_ROUTING": json.dumps(routing)}) as gw:
        job = {
            "channel": "voice",
            "to": XINJIANG,
            "content": {"text": "您的验证码是 123456"},
            "category": "transactional",
        }
        response = await gw.post("/v1/messages", job)
        delivered = await gw.wait_status((await response.json())["id"], {"delivered"})
        assert delivered["channel"] == "sms"
        steps = [(e["status"], e["reason"]) for e in delivered["events"]]
        assert steps[:2] == [("queued", "accepted"), ("queued", "route.region_denied")]
        denied = delivered["events"][1]["detail"]
        assert denied["from"] == "voice" and denied["to"] == "sms" and denied["province"] == "Xinjiang"
        assert [a["channel"] for a in delivered["attempts"]] == ["sms"]
        elsewhere = await gw.post("/v1/messages", {**job, "to": "+8613812345678"})
        kept = await gw.wait_status((await elsewhere.json())["id"], {"delivered"})
        assert kept["channel"] == "voice"


async def test_a_region_rule_without_a_fallback_fails_with_the_reason(start_gateway: GatewayStarter) -> None:
    routing = {"rules": [{"channel": "voice", "deny": {"province": "Xinjiang"}}]}
    async with start_gateway({"GATEWAY_ROUTING": json.dumps(routing)}) as gw:
        response = await gw.post(
            "/v1/messages", {"channel": "voice", "to": XINJIANG, "content": {"text": "hi"}, "category": "transactional"}
        )
        failed = await gw.wait_status((await response.json())["id"], {"failed"})
        assert failed["reason"] == "route.region_denied"
        assert failed["attempts"] == []


XINJIANG_PHONENUMBERS_MISSES = "+8616609001234"  # a 166 block phonenumbers has no province for
PROVINCE_UNKNOWN = "+8619900001234"  # a 199 block no source places


def voice_job(to: str) -> dict[str, Any]:
    return {"channel": "voice", "to": to, "content": {"text": "您的验证码是 123456"}, "category": "transactional"}


async def test_voice_to_xinjiang_blocks_phonenumbers_misses_and_to_unknown_ones_goes_by_sms(
    start_gateway: GatewayStarter,
) -> None:
    routing = {"rules": [{"channel": "voice", "deny": {"province": "Xinjiang"}, "fallback": "sms"}]}
    async with start_gateway({"GATEWAY_ROUTING": json.dumps(routing)}) as gw:
        xinjiang = await gw.post("/v1/messages", voice_job(XINJIANG_PHONENUMBERS_MISSES))
        unknown = await gw.post("/v1/messages", voice_job(PROVINCE_UNKNOWN))
        for response, reason in ((xinjiang, "route.region_denied"), (unknown, "route.region_unknown")):
            delivered = await gw.wait_status((await response.json())["id"], {"delivered"})
            assert delivered["channel"] == "sms"
            assert [a["channel"] for a in delivered["attempts"]] == ["sms"], "no call was placed"
            moved = delivered["events"][1]
            assert (moved["status"], moved["reason"]) == ("queued", reason)
            assert (moved["detail"]["from"], moved["detail"]["to"]) == ("voice", "sms")
        assert moved["detail"]["unknown"] == ["province"] and moved["detail"]["country"] == "CN"


async def test_unknown_region_allow_places_the_call(start_gateway: GatewayStarter) -> None:
    rule = {"channel": "voice", "deny": {"province": "Xinjiang"}, "fallback": "sms", "unknown_region": "allow"}
    async with start_gateway({"GATEWAY_ROUTING": json.dumps({"rules": [rule]})}) as gw:
        response = await gw.post("/v1/messages", voice_job(PROVINCE_UNKNOWN))
        delivered = await gw.wait_status((await response.json())["id"], {"delivered"})
        assert delivered["channel"] == "voice"
        assert [e["reason"] for e in delivered["events"]][:2] == ["accepted", "attempt 1"]


async def test_jobs_fail_over_when_the_first_provider_breaks_and_come_back_after(
    start_gateway: GatewayStarter,
) -> None:
    async with FakeTwilio() as first, FakeTwilio() as second:

        def account(fake: FakeTwilio) -> dict[str, object]:
            return {
                "type": "twilio",
                "account_sid": fake.account_sid,
                "auth_token": fake.auth_token,
                "from_number": "+14155550100",
                "api_base_url": fake.url,
                "timeout": 0.5,
                "connect_timeout": 0.5,
            }

        env = {
            "GATEWAY_PROVIDERS": json.dumps({"first": account(first), "second": account(second)}),
            "GATEWAY_ROUTING": json.dumps(
                {"channels": {"sms": ["first", "second"]}, "circuit_failures": 3, "circuit_cooldown_seconds": 1.5}
            ),
            "GATEWAY_SANDBOX__ENABLED": "false",
            "GATEWAY_WORKER__BACKOFF_BASE_SECONDS": "0.05",
            "GATEWAY_WORKER__BACKOFF_MAX_SECONDS": "0.1",
            "GATEWAY_WORKER__CONCURRENCY": "4",
            "GATEWAY_WORKER__BATCH_SIZE": "4",
        }
        first.fail_next(4, 503)
        first.hang_next(100, 2.0)
        async with start_gateway(env) as gw:
            jobs, finals = await send_codes(gw, 20)
            assert {m["provider"] for m in finals} == {"second"}, "every job failed over, none was lost"
            assert len(second.created) == 20
            breaker = gw.gateway.worker.breakers["first"] if gw.gateway.worker else None
            assert breaker is not None and breaker.state in ("open", "half-open")
            requests_while_open = len(first.requests)
            assert requests_while_open < 20, "the open circuit kept jobs away from the broken provider"

            first._script.clear()  # the first provider recovers
            await asyncio.sleep(2.0)
            later = await gw.post("/v1/messages", {**jobs[0], "to": "+8613900000999"})
            back = await gw.wait_status((await later.json())["id"], {"sent", "delivered"}, within=20)
            assert back["provider"] == "first"
            assert breaker.state == "closed"


async def send_codes(gw: Running, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` transactional SMS in one batch, and each one's record once it has been handed off."""
    jobs: list[dict[str, Any]] = [
        {"channel": "sms", "to": f"+86139{n:08d}", "content": {"text": f"code {n}"}, "category": "transactional"}
        for n in range(count)
    ]
    response = await gw.post("/v1/messages/batch", {"messages": jobs})
    ids = [r["id"] for r in (await response.json())["results"]]
    return jobs, [await gw.wait_status(i, {"sent", "delivered"}, within=30) for i in ids]


def twilio_account(fake: FakeTwilio) -> dict[str, object]:
    return {
        "type": "twilio",
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "from_number": "+14155550100",
        "api_base_url": fake.url,
        "timeout": 0.5,
        "connect_timeout": 0.5,
    }


async def test_a_weighted_list_splits_jobs_by_message_id_and_fails_over(start_gateway: GatewayStarter) -> None:
    async with FakeTwilio() as big, FakeTwilio() as small:
        weights = {"big": 3.0, "small": 1.0}
        env = {
            "GATEWAY_PROVIDERS": json.dumps(
                {"big": {**twilio_account(big), "timeout": 5.0}, "small": {**twilio_account(small), "timeout": 5.0}}
            ),
            "GATEWAY_ROUTING": json.dumps(
                {"channels": {"sms": [{"name": n, "weight": w} for n, w in weights.items()]}, "circuit_failures": 100}
            ),
            "GATEWAY_SANDBOX__ENABLED": "false",
            "GATEWAY_WORKER__BACKOFF_BASE_SECONDS": "0.05",
            "GATEWAY_WORKER__BACKOFF_MAX_SECONDS": "0.1",
            "GATEWAY_WORKER__RETRY_BUDGET_FLOOR": "1000",
        }
        async with start_gateway(env) as gw:
            jobs, finals = await send_codes(gw, 200)
            ids = [m["id"] for m in finals]
            chosen = {m["id"]: m["provider"] for m in finals}
            assert all(chosen[i] == weighted_order(weights, i)[0] for i in ids), "the message id decides"
            assert 120 <= sum(p == "big" for p in chosen.values()) <= 180, "about 3 in 4 (150 expected)"
            assert len(big.created) + len(small.created) == 200

            big.fail_next(1000, 503)  # the heavier provider breaks: its share fails over, nothing is lost
            more = [{**job, "to": f"+86138{n:08d}"} for n, job in enumerate(jobs[:40])]
            response = await gw.post("/v1/messages/batch", {"messages": more})
            again = [r["id"] for r in (await response.json())["results"]]
            moved = [await gw.wait_status(i, {"sent", "delivered"}, within=30) for i in again]
            assert {m["provider"] for m in moved} == {"small"}
            first_choice_big = [m for m in moved if weighted_order(weights, m["id"])[0] == "big"]
            assert first_choice_big, "some of them drew the broken provider first"
            assert all([a["provider"] for a in m["attempts"]] == ["big", "small"] for m in first_choice_big), (
                "one try on the drawn provider, then the remaining one"
            )


async def test_a_job_that_asks_for_it_goes_by_its_cheapest_adequate_channel_first(
    start_gateway: GatewayStarter,
) -> None:
    routing = {"costs": {"sms": 0.0075, "voice": 0.013, "email": 0.0001}}
    async with start_gateway({"GATEWAY_ROUTING": json.dumps(routing)}) as gw:
        job = {
            "channel": "voice",
            "to": "+8613812345678",
            "content": {"text": "您的验证码是 123456"},
            "category": "transactional",
            "fallback": ["sms"],
            "channel_order": "cost",
        }
        response = await gw.post("/v1/messages", job)
        assert response.status == 202
        accepted = await response.json()
        assert accepted["channel"] == "sms"
        delivered = await gw.wait_status(accepted["id"], {"delivered"})
        assert delivered["fallback"] == ["voice"]
        assert [a["channel"] for a in delivered["attempts"]] == ["sms"]

        listed = await gw.post("/v1/messages", {**job, "channel_order": "listed"})
        assert (await listed.json())["channel"] == "voice", "without it the job's own order holds"

        before = await gw.count()
        refused = await gw.post("/v1/messages", {**job, "channel_order": "cheap"})
        assert refused.status == 422 and refused.content_type == "application/problem+json"
        assert (await refused.json())["errors"] == [{"field": "/channel_order", "message": "must be listed or cost"}]
        assert await gw.count() == before, "nothing was written"


NO_RECEIPT_IN_A_SECOND = {
    "GATEWAY_ROUTING": json.dumps({"receipt_timeout": {"sms": 1}}),
    "GATEWAY_SANDBOX__RECEIPTS": "false",  # the provider never reports delivery
    "GATEWAY_WORKER__LEASE_SECONDS": "1.5",  # the recovery loop looks every 0.5 s
}


async def _post_sandbox_receipt(gw: Running, sid: str, status: str, reference: str | None = None) -> dict[str, int]:
    secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
    receipt = {"sid": sid, "status": status, **({"reference": reference} if reference else {})}
    body = orjson.dumps({"receipts": [receipt]})
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, int(time.time()), body)}
    response = await gw.session.post(gw.url + "/v1/receipts/sandbox", data=body, headers=headers)
    assert response.status == 200, await response.text()
    summary: dict[str, int] = await response.json()
    return summary


async def test_no_receipt_in_time_moves_the_job_to_its_fallback_channel(start_gateway: GatewayStarter) -> None:
    async with start_gateway(NO_RECEIPT_IN_A_SECOND) as gw:
        job = {**SMS_JOB, "fallback": ["voice"]}
        message_id = (await (await gw.post("/v1/messages", job)).json())["id"]
        first = await gw.wait_status(message_id, {"sent"})
        assert first["channel"] == "sms"
        sms_sid = first["provider_message_id"]

        async def on_voice() -> dict[str, Any] | None:
            body: dict[str, Any] = await (await gw.get(f"/v1/messages/{message_id}")).json()
            return body if body["status"] == "sent" and body["channel"] == "voice" else None

        moved = await gw.wait_for(on_voice, within=15)
        assert [(a["channel"], a["outcome"]) for a in moved["attempts"]] == [("sms", "sent"), ("voice", "sent")]
        fallen = [e for e in moved["events"] if e["reason"] == "fallback.no_receipt"]
        assert len(fallen) == 1 and fallen[0]["status"] == "queued"
        assert fallen[0]["detail"]["from"] == "sms" and fallen[0]["detail"]["to"] == "voice"
        assert fallen[0]["detail"]["waited_seconds"] >= 1
        assert moved["fallback"] == []

        # The SMS was delivered after all, late: kept and shown, but the status is the call's.
        late_sms = await _post_sandbox_receipt(gw, sms_sid, "delivered", reference=message_id)
        assert late_sms == {"applied": 1, "duplicate": 0, "held": 0}
        late = await (await gw.get(f"/v1/messages/{message_id}")).json()
        assert (late["status"], late["channel"]) == ("sent", "voice")
        assert [r["provider_message_id"] for r in late["receipts"]] == [sms_sid]
        [earlier] = [e for e in late["events"] if e["type"] == "receipt.earlier_channel"]
        assert earlier["reason"] == "receipt.delivered" and earlier["detail"]["channel"] == "sms"
        assert earlier["status"] is None
        # Without our id (the message now carries the call's provider id) it is found through the
        # SMS attempt, and changes nothing either.
        failed_sms = await _post_sandbox_receipt(gw, sms_sid, "failed")
        assert failed_sms == {"applied": 1, "duplicate": 0, "held": 0}
        after = await (await gw.get(f"/v1/messages/{message_id}")).json()
        assert after["status"] == "sent"
        assert [e["reason"] for e in after["events"] if e["type"] == "receipt.earlier_channel"] == [
            "receipt.delivered",
            "receipt.failed",
        ]

        # The call's own receipt still moves it.
        await _post_sandbox_receipt(gw, moved["provider_message_id"], "delivered")
        delivered = await gw.wait_status(message_id, {"delivered"})
        assert delivered["channel"] == "voice"
        await asyncio.sleep(1.5)  # a voice call has no fallback left: nothing moves it again
        again = await (await gw.get(f"/v1/messages/{message_id}")).json()
        assert again["status"] == "delivered" and len(again["attempts"]) == 2


async def test_a_receipt_in_time_or_no_usable_fallback_keeps_the_channel(start_gateway: GatewayStarter) -> None:
    async with start_gateway(NO_RECEIPT_IN_A_SECOND) as gw:
        in_time = (await (await gw.post("/v1/messages", {**SMS_JOB, "fallback": ["voice"]})).json())["id"]
        no_fallback = (await (await gw.post("/v1/messages", {**SMS_JOB, "to": "+8613812345679"})).json())["id"]
        sent = await gw.wait_status(in_time, {"sent"})
        await _post_sandbox_receipt(gw, sent["provider_message_id"], "delivered")
        await gw.wait_status(no_fallback, {"sent"})
        await asyncio.sleep(2.5)
        for message_id, status in ((in_time, "delivered"), (no_fallback, "sent")):
            body = await (await gw.get(f"/v1/messages/{message_id}")).json()
            assert (body["status"], body["channel"], len(body["attempts"])) == (status, "sms", 1), message_id
            assert all(e["reason"] != "fallback.no_receipt" for e in body["events"])


async def test_two_workers_move_an_unreceipted_job_once(start_gateway: GatewayStarter) -> None:
    async with start_gateway(NO_RECEIPT_IN_A_SECOND) as gw:
        message_id = (await (await gw.post("/v1/messages", {**SMS_JOB, "fallback": ["voice"]})).json())["id"]
        await gw.wait_status(message_id, {"sent"})
        worker = gw.gateway.worker
        assert worker is not None
        await asyncio.sleep(1.1)
        # Another process's worker loop runs at the same moment as this one's.
        moved = await asyncio.gather(worker.recovery.fall_back_unreceipted(), worker.recovery.fall_back_unreceipted())
        body = await gw.wait_status(message_id, {"sent"})
        events = [e for e in body["events"] if e["reason"] == "fallback.no_receipt"]
        assert sum(moved) <= 1 and len(events) == 1

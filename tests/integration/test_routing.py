"""Routing: region rules with channel fallback, provider failover with a circuit breaker."""

from __future__ import annotations

import asyncio
import json

from gateway.domain.routing import weighted_order
from tests.fakes.twilio import FakeTwilio
from tests.harness import GatewayStarter

XINJIANG = "+8613999123456"  # China Mobile, Urumqi


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
            jobs = [
                {
                    "channel": "sms",
                    "to": f"+86139{n:08d}",
                    "content": {"text": f"code {n}"},
                    "category": "transactional",
                }
                for n in range(20)
            ]
            response = await gw.post("/v1/messages/batch", {"messages": jobs})
            ids = [r["id"] for r in (await response.json())["results"]]
            finals = [await gw.wait_status(i, {"sent", "delivered"}, within=30) for i in ids]
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
            "GATEWAY_PROVIDERS": json.dumps({"big": twilio_account(big), "small": twilio_account(small)}),
            "GATEWAY_ROUTING": json.dumps(
                {"channels": {"sms": [{"name": n, "weight": w} for n, w in weights.items()]}, "circuit_failures": 100}
            ),
            "GATEWAY_SANDBOX__ENABLED": "false",
            "GATEWAY_WORKER__BACKOFF_BASE_SECONDS": "0.05",
            "GATEWAY_WORKER__BACKOFF_MAX_SECONDS": "0.1",
            "GATEWAY_WORKER__RETRY_BUDGET_FLOOR": "1000",
        }
        async with start_gateway(env) as gw:
            jobs = [
                {
                    "channel": "sms",
                    "to": f"+86139{n:08d}",
                    "content": {"text": f"code {n}"},
                    "category": "transactional",
                }
                for n in range(200)
            ]
            response = await gw.post("/v1/messages/batch", {"messages": jobs})
            ids = [r["id"] for r in (await response.json())["results"]]
            finals = [await gw.wait_status(i, {"sent", "delivered"}, within=30) for i in ids]
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
            "fallback": ["email", "sms"],
            "channel_order": "cost",
        }
        response = await gw.post("/v1/messages", job)
        assert response.status == 202
        accepted = await response.json()
        assert accepted["channel"] == "sms"
        delivered = await gw.wait_status(accepted["id"], {"delivered"})
        assert delivered["fallback"] == ["voice", "email"], "email is cheaper but cannot take a number"
        assert [a["channel"] for a in delivered["attempts"]] == ["sms"]

        listed = await gw.post("/v1/messages", {**job, "channel_order": "listed"})
        assert (await listed.json())["channel"] == "voice", "without it the job's own order holds"

        before = await gw.count()
        refused = await gw.post("/v1/messages", {**job, "channel_order": "cheap"})
        assert refused.status == 422 and refused.content_type == "application/problem+json"
        assert (await refused.json())["errors"] == [{"field": "/channel_order", "message": "must be listed or cost"}]
        assert await gw.count() == before, "nothing was written"

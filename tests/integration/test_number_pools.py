"""Sender number pools in the running gateway, against a fake Twilio that sends real signed status
callbacks: a number the carrier starts filtering is quarantined, rotation carries on without it,
and it comes back after cooldown and probation once the filtering stops.

The bound: a filtered number is quarantined by its `filtered_to_quarantine`-th (3rd) filtered
receipt; with the campaign sent a round at a time (nothing in flight when a receipt lands) exactly
3 messages go through it after the carrier starts filtering, and none after the quarantine."""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from typing import Any

from tests.fakes.twilio import FakeTwilio
from tests.harness import GatewayStarter, Running

POOL = ["+14155550101", "+14155550102", "+14155550103", "+14155550104", "+14155550105"]
BAD = POOL[2]
FINAL = {"delivered", "undelivered", "failed"}
QUARANTINE_AFTER = 3  # filtered receipts (numbers.filtered_to_quarantine)


def twilio_env(fake: FakeTwilio, numbers: dict[str, Any], **extra: str) -> dict[str, str]:
    providers = {
        "twilio": {
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "from_number": "+14155559999",  # never used while the pool has a number
            "api_base_url": fake.url,
        }
    }
    return {
        "GATEWAY_PROVIDERS": json.dumps(providers),
        "GATEWAY_SANDBOX__ENABLED": "false",
        "GATEWAY_NUMBERS": json.dumps(numbers),
        **extra,
    }


def pool_settings(**overrides: Any) -> dict[str, Any]:
    return {
        "filtered_to_quarantine": QUARANTINE_AFTER,
        "cooldown_seconds": 1.5,
        "probation_seconds": 0.5,
        "probation_deliveries": 2,
        "tick_seconds": 0.1,
        "pools": {"us-sms": {"provider": "twilio", "channel": "sms", "countries": ["US"], "senders": POOL}},
        **overrides,
    }


class Campaign:
    """Sends rounds of messages to fresh recipients and waits for every receipt of the round."""

    def __init__(self, gw: Running) -> None:
        self.gw = gw
        self.sent = 0

    async def round(self, size: int = len(POOL)) -> list[dict[str, Any]]:
        ids = []
        for _ in range(size):
            self.sent += 1
            body = {"channel": "sms", "to": f"+1202555{self.sent:04d}", "content": {"text": "Your code is ready"}}
            response = await self.gw.post("/v1/messages", {**body, "campaign": "recall"})
            assert response.status == 202, await response.text()
            ids.append((await response.json())["id"])
        return [await self.gw.wait_status(i, FINAL, within=15) for i in ids]


async def number_by_sender(gw: Running, sender: str) -> dict[str, Any]:
    response = await gw.get("/v1/numbers", params={"pool": "us-sms"})
    assert response.status == 200
    [found] = [n for n in (await response.json())["data"] if n["sender"] == sender]
    return found


async def health_shows(gw: Running, filtered: int) -> bool:
    number = await number_by_sender(gw, BAD)
    return bool(number["state"] == "suspect" and number["health"]["filtered"] == filtered)


async def wait_state(gw: Running, sender: str, state: str, within: float = 10.0) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        number = await number_by_sender(gw, sender)
        return number if number["state"] == state else None

    result: dict[str, Any] = await gw.wait_for(check, within)
    return result


async def test_a_filtered_number_is_quarantined_rotated_out_and_returns_after_probation(
    start_gateway: GatewayStarter,
) -> None:
    async with FakeTwilio() as fake:
        fake.auto_receipts = True
        async with start_gateway(twilio_env(fake, pool_settings())) as gw:
            campaign = Campaign(gw)
            first = await campaign.round()
            # Least recently used first: one round uses every number of the pool once.
            assert sorted(m["sender"] for m in first) == POOL
            assert all(m["status"] == "delivered" for m in first)

            fake.start_filtering(BAD)
            through_bad = 0
            while through_bad < QUARANTINE_AFTER:
                messages = await campaign.round()
                through_bad += sum(m["sender"] == BAD for m in messages)
                for m in messages:
                    expected = "undelivered" if m["sender"] == BAD else "delivered"
                    assert m["status"] == expected, m
                if through_bad < QUARANTINE_AFTER:
                    # The receipt handler counts the evidence just after it records the status.
                    await gw.wait_for(functools.partial(health_shows, gw, through_bad), within=5)
            quarantined = await wait_state(gw, BAD, "quarantined", within=5)
            # The bound: with sends one round at a time (nothing in flight when a receipt lands),
            # the number carried exactly `filtered_to_quarantine` messages after filtering began.
            assert through_bad == QUARANTINE_AFTER
            assert quarantined["health"]["filtered"] == 0  # evidence of the old epoch no longer counts
            assert quarantined["reason"] == "evidence.filtered"

            # Rotation without it: every message is delivered from the other four.
            for _ in range(2):
                messages = await campaign.round()
                assert BAD not in {m["sender"] for m in messages}
                assert all(m["status"] == "delivered" for m in messages)

            # The carrier stops filtering; after cooldown the number is on probation, then back.
            fake.stop_filtering(BAD)
            await wait_state(gw, BAD, "probation", within=10)
            used_again = []
            for _ in range(6):
                messages = await campaign.round()
                assert all(m["status"] == "delivered" for m in messages)
                used_again += [m for m in messages if m["sender"] == BAD]
                if (await number_by_sender(gw, BAD))["state"] == "active":
                    break
                await asyncio.sleep(0.2)
            await wait_state(gw, BAD, "active", within=10)
            assert len(used_again) >= 2  # probation_deliveries

            response = await gw.get(f"/v1/numbers/{quarantined['id']}")
            events = list(reversed((await response.json())["events"]))
            assert [(e["from"], e["to"]) for e in events] == [
                (None, "active"),
                ("active", "suspect"),
                ("suspect", "quarantined"),
                ("quarantined", "probation"),
                ("probation", "active"),
            ]
            assert [e["reason"] for e in events[1:]] == [
                "evidence.filtered",
                "evidence.filtered",
                "cooldown.elapsed",
                "probation.passed",
            ]
            assert events[2]["evidence"]["window"]["filtered"] == QUARANTINE_AFTER
            assert events[2]["actor"] == "health"

            # The other numbers never left active.
            for sender in POOL:
                if sender != BAD:
                    assert (await number_by_sender(gw, sender))["state"] == "active"


async def test_a_send_refused_for_its_sender_is_retried_on_another_number(start_gateway: GatewayStarter) -> None:
    async with FakeTwilio() as fake:
        fake.auto_receipts = True
        fake.refuse_sender(POOL[0])
        settings = pool_settings(pools={"us-sms": {"provider": "twilio", "senders": POOL[:2]}})
        env = twilio_env(fake, settings, GATEWAY_WORKER__BACKOFF_BASE_SECONDS="0.05")
        async with start_gateway(env) as gw:
            campaign = Campaign(gw)
            messages = await campaign.round(4)
            assert all(m["status"] == "delivered" for m in messages)
            assert {m["sender"] for m in messages} == {POOL[1]}
            retried = [m for m in messages if len(m["attempts"]) > 1]
            assert retried, "the refused number was never tried"
            for m in retried:
                assert [a["sender"] for a in m["attempts"]] == [POOL[0], POOL[1]]
                assert m["attempts"][0]["error_code"] == "21212"


async def test_an_empty_pool_fails_with_a_reason_in_the_failure_report(start_gateway: GatewayStarter) -> None:
    async with FakeTwilio() as fake:
        fake.auto_receipts = True
        settings = pool_settings(pools={"us-sms": {"provider": "twilio", "senders": POOL[:1]}})
        async with start_gateway(twilio_env(fake, settings)) as gw:
            number = await number_by_sender(gw, POOL[0])
            response = await gw.post(f"/v1/numbers/{number['id']}/flag", {"reason": "reported by a handset vendor"})
            assert response.status == 200
            assert (await response.json())["state"] == "quarantined"

            job = {"channel": "sms", "to": "+12025550199", "content": {"text": "hi"}}
            response = await gw.post("/v1/messages", job)
            failed = await gw.wait_status((await response.json())["id"], {"failed"})
            assert failed["reason"] == "number.pool_exhausted"
            assert failed["attempts"] == []
            assert not fake.created  # nothing reached the provider

            report = await (await gw.get("/v1/reports/failures", params={"group_by": "reason"})).json()
            [group] = [g for g in report["groups"] if g["reason"] == "number.pool_exhausted"]
            assert group["count"] == 1
            assert group["retry_helps"] is True
            assert "GET /v1/numbers" in group["action"]

            # Restored, a requeued job goes out from it.
            response = await gw.post(f"/v1/numbers/{number['id']}/restore", {"reason": "vendor cleared it"})
            assert (await response.json())["state"] == "active"
            response = await gw.post(f"/v1/messages/{failed['id']}/retry", {})
            assert response.status in (200, 202), await response.text()
            delivered = await gw.wait_status(failed["id"], {"delivered"})
            assert delivered["sender"] == POOL[0]


async def test_sticky_sender_and_region_preference(start_gateway: GatewayStarter) -> None:
    async with FakeTwilio() as fake:
        fake.auto_receipts = True
        pools = {
            "us-sms": {
                "provider": "twilio",
                "senders": [POOL[0], POOL[1], {"sender": POOL[2], "region": "NY"}],
            }
        }
        async with start_gateway(twilio_env(fake, pool_settings(pools=pools))) as gw:
            senders: Counter[str] = Counter()
            for _ in range(4):
                response = await gw.post(
                    "/v1/messages", {"channel": "sms", "to": "+12025550111", "content": {"text": "hello again"}}
                )
                message = await gw.wait_status((await response.json())["id"], FINAL)
                senders[message["sender"]] += 1
            # The same recipient keeps the same number.
            assert len(senders) == 1
            # A New York recipient gets the number local to New York while it is healthy.
            response = await gw.post(
                "/v1/messages", {"channel": "sms", "to": "+12125551234", "content": {"text": "hello"}}
            )
            message = await gw.wait_status((await response.json())["id"], FINAL)
            assert message["sender"] == POOL[2]

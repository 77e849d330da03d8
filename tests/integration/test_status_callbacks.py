"""Status callbacks delivered per Standard Webhooks: verified by the `standardwebhooks` package at a
real receiver, in order per message, retried with a stable webhook-id, then dead-lettered."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from providers.sandbox import SIGNATURE_HEADER, sign_inbound
from tests.fakes.campaign_receiver import CampaignReceiver
from tests.harness import SMS, GatewayStarter, Running
from tests.integration.callback_helpers import callback_env, send, subscribe


async def _is(found: Any, expected: Any) -> bool:
    return bool(await found == expected)


async def reply(gw: Running, sender: str, text: str) -> None:
    secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
    body, signature = sign_inbound(secret, [{"from": sender, "to": "+10000000000", "text": text}])
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
    response = await gw.session.post(gw.url + "/v1/inbound/sandbox", data=body, headers=headers)
    assert response.status == 200


@pytest.fixture
async def receiver() -> AsyncIterator[CampaignReceiver]:
    async with CampaignReceiver() as fake:
        yield fake


async def test_every_status_change_arrives_signed_in_order(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    async with start_gateway(callback_env()) as gw:
        await subscribe(gw, receiver, ["*"])
        message_id = await send(gw)
        await gw.wait_status(message_id, {"delivered"})
        await gw.wait_for(lambda: len(receiver.events) >= 3)
        mine = [e for e in receiver.events if e.data.get("message_id") == message_id]
        assert [e.type for e in mine] == ["message.queued", "message.sent", "message.delivered"]
        assert all(e.data["channel"] == "sms" for e in mine)
        assert receiver.refused == 0


async def test_only_the_chosen_event_types_are_delivered(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    async with start_gateway(callback_env()) as gw:
        await subscribe(gw, receiver, ["message.delivered"])
        first, second = await send(gw), await send(gw, to="+8613812345679")
        await gw.wait_for(lambda: len(receiver.events) >= 2)
        await asyncio.sleep(0.3)
        assert sorted((e.type, e.data["message_id"]) for e in receiver.events) == sorted(
            [("message.delivered", first), ("message.delivered", second)]
        )


async def test_replies_and_opt_outs_are_delivered(start_gateway: GatewayStarter, receiver: CampaignReceiver) -> None:
    async with start_gateway(callback_env()) as gw:
        await subscribe(gw, receiver, ["inbound", "opt_out"])
        await gw.wait_status(await send(gw), {"delivered"})
        await reply(gw, SMS["to"], "thanks!")
        await reply(gw, SMS["to"], "STOP")
        await gw.wait_for(lambda: len(receiver.events) >= 2)
        inbound, opt_out = receiver.events
        assert (inbound.type, inbound.data["detail"]["text"], inbound.data["detail"]["provider"]) == (
            "inbound",
            "thanks!",
            "sandbox",
        )
        assert inbound.data["reason"] == "none"  # the reply's intent: no keyword
        assert (opt_out.type, opt_out.data["reason"], opt_out.data["detail"]["source"]) == (
            "opt_out",
            "opt_out.reply",
            "inbound:sandbox",
        )


async def test_both_secrets_sign_during_a_rotation_and_only_the_new_one_after(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    async with start_gateway(callback_env()) as gw:
        created = await subscribe(gw, receiver, ["message.delivered"])
        old = created["secret"]
        rotated = await (await gw.post(f"/v1/webhooks/{created['id']}/rotate-secret", {"grace_seconds": 3600})).json()
        new = rotated["secret"]
        assert new != old and rotated["secret_rotated_until"] is not None
        receiver.secrets = [old, new]  # a receiver half-way through its own switch
        await gw.wait_status(await send(gw), {"delivered"})
        await gw.wait_for(lambda: len(receiver.events) == 1)
        assert receiver.events[0].verified_by == [old, new]

        ended = await gw.post(f"/v1/webhooks/{created['id']}/rotate-secret", {"grace_seconds": 0})
        newest = (await ended.json())["secret"]
        receiver.secrets = [new, newest]
        await gw.wait_status(await send(gw, to="+8613812345679"), {"delivered"})
        await gw.wait_for(lambda: len(receiver.events) == 2)
        assert receiver.events[1].verified_by == [newest]


async def test_a_receiver_down_then_back_gets_each_event_once_in_order_with_a_stable_id(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    receiver.down_status, receiver.down_headers = 503, {"Retry-After": "1"}
    async with start_gateway(callback_env()) as gw:
        await subscribe(gw, receiver, ["*"])
        sent = [await send(gw, to=f"+86138123456{n:02d}") for n in range(6)]
        for message_id in sent:
            await gw.wait_status(message_id, {"delivered"})
        await asyncio.sleep(1.5)
        receiver.down_status = None
        await gw.wait_for(lambda: len(receiver.unique()) >= 3 * len(sent), within=20)

        events = receiver.unique()
        assert len(events) == len(receiver.events) == 3 * len(sent)  # acknowledged once each
        for message_id in sent:
            mine = [e.type for e in events if e.data["message_id"] == message_id]
            assert mine == ["message.queued", "message.sent", "message.delivered"]
        # Each refused try and its later success carried the same webhook-id, Retry-After apart.
        tries: dict[str, list[float]] = {}
        for recorded in receiver.requests:
            tries.setdefault(recorded.headers["webhook-id"], []).append(recorded.at)
        retried = [times for times in tries.values() if len(times) > 1]
        assert retried and set(tries) == {e.webhook_id for e in events}
        assert all(later - earlier >= 0.95 for times in retried for earlier, later in itertools.pairwise(times))


async def test_a_receiver_gone_for_30_seconds_gets_every_event_once_in_order_when_it_is_back(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    # The receiver's host is gone (connection refused, not an error status) for 30 s while the
    # gateway keeps accepting and delivering messages; the backoff is shortened so the test ends soon
    # after, but every attempt still fails against a closed port until then.
    async with start_gateway(callback_env(GATEWAY_WEBHOOKS__RETRY_MAX_SECONDS="2")) as gw:
        created = await subscribe(gw, receiver, ["*"])
        await receiver.go_down()
        outage_ends = asyncio.get_running_loop().time() + 30
        sent: list[str] = []
        while asyncio.get_running_loop().time() < outage_ends:
            sent.append(await send(gw, to=f"+861381234{len(sent):04d}"))
            await asyncio.sleep(0.5)
        for message_id in sent:
            await gw.wait_status(message_id, {"delivered"})
        assert receiver.requests == []  # nothing reached it while it was gone
        waiting = (await (await gw.get(f"/v1/webhooks/{created['id']}/deliveries")).json())["data"]
        assert waiting and {d["state"] for d in waiting} == {"pending"}
        assert max(d["attempts"] for d in waiting) >= 3 and all(d["last_error"] for d in waiting if d["attempts"])
        await receiver.come_back()
        await gw.wait_for(lambda: len(receiver.unique()) >= 3 * len(sent), within=30)

        events = receiver.unique()
        assert receiver.refused == 0  # each request verified by standardwebhooks
        assert len(events) == 3 * len(sent) >= 3 * 55
        assert len({(e.data["message_id"], e.type) for e in events}) == len(events)  # one webhook-id per event
        for message_id in sent:
            mine = [e.type for e in events if e.data["message_id"] == message_id]
            assert mine == ["message.queued", "message.sent", "message.delivered"]


async def test_after_the_horizon_a_delivery_is_dead_lettered_and_replay_sends_it(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    receiver.down_status = 500
    async with start_gateway(callback_env(GATEWAY_WEBHOOKS__RETRY_HORIZON_SECONDS="0.5")) as gw:
        created = await subscribe(gw, receiver, ["message.delivered"])
        message_id = await send(gw)
        path = f"/v1/webhooks/{created['id']}"

        async def dead() -> list[dict[str, Any]]:
            page = await (await gw.get(path + "/deliveries", params={"state": "dead"})).json()
            return list(page["data"])

        [letter] = await gw.wait_for(dead)
        assert (letter["type"], letter["message_id"], letter["last_status_code"]) == (
            "message.delivered",
            message_id,
            500,
        )
        assert letter["attempts"] >= 2 and letter["last_error"] == "receiver answered 500"
        tried = len(receiver.requests)
        await asyncio.sleep(0.3)
        assert len(receiver.requests) == tried  # the dead letter is not tried again
        health = (await (await gw.get(path)).json())["health"]
        assert (health["dead"], health["delivered"], health["success_rate"]) == (1, 0, 0.0)

        receiver.down_status = None
        replayed = await gw.post(path + "/replay", {"since": "2020-01-01T00:00:00Z"})
        assert (await replayed.json()) == {"replayed": 1}
        await gw.wait_for(lambda: len(receiver.events) == 1)
        assert receiver.events[0].webhook_id == letter["webhook_id"]

        async def states() -> list[str]:
            page = await (await gw.get(path + "/deliveries")).json()
            return [d["state"] for d in page["data"]]

        await gw.wait_for(lambda: _is(states(), ["delivered"]))


async def test_a_receiver_that_keeps_failing_is_paused_until_resumed(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    receiver.down_status = 500
    env = callback_env(GATEWAY_WEBHOOKS__PAUSE_AFTER_FAILURES="3", GATEWAY_WEBHOOKS__PAUSE_AFTER_SECONDS="0")
    async with start_gateway(env) as gw:
        created = await subscribe(gw, receiver, ["message.delivered"])
        path = f"/v1/webhooks/{created['id']}"
        await send(gw)

        async def paused() -> dict[str, Any] | None:
            found: dict[str, Any] = await (await gw.get(path)).json()
            return found if found["state"] == "paused" else None

        endpoint = await gw.wait_for(paused)
        assert endpoint["paused_reason"].startswith("3 failed deliveries in a row since ")
        assert endpoint["health"]["pending"] == 1
        tried = len(receiver.requests)
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == tried == 3

        receiver.down_status = None
        resumed = await (await gw.post(path + "/resume", None)).json()
        assert (resumed["state"], resumed["paused_reason"]) == ("active", None)
        await gw.wait_for(lambda: len(receiver.events) == 1)
        assert receiver.events[0].type == "message.delivered"


async def test_lag_and_failures_per_endpoint_are_metrics(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    receiver.down_status = 503
    async with start_gateway(callback_env()) as gw:
        created = await subscribe(gw, receiver, ["message.queued"])
        await send(gw)
        label = f'endpoint="{created["id"]}"'

        async def lagging() -> str | None:
            metrics = await (await gw.get("/metrics")).text()
            lag = re.search(rf"^gateway_webhook_lag_seconds\{{{label}\}} (\S+)$", metrics, re.M)
            return metrics if lag and float(lag.group(1)) > 0 else None

        metrics = await gw.wait_for(lagging, within=15)
        retries = re.search(rf'^gateway_webhook_deliveries_total\{{{label},outcome="retry"\}} (\S+)$', metrics, re.M)
        assert retries and float(retries.group(1)) >= 1
        assert re.search(rf"^gateway_webhook_paused\{{{label}\}} 0.0$", metrics, re.M)

        receiver.down_status = None
        await gw.wait_for(lambda: len(receiver.events) == 1)
        delivered = await (await gw.get("/metrics")).text()
        assert re.search(rf'^gateway_webhook_deliveries_total\{{{label},outcome="delivered"\}} 1.0$', delivered, re.M)


async def test_a_receiver_that_is_behind_gets_events_in_batches_when_batching_is_on(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    receiver.down_status = 503
    env = callback_env(
        GATEWAY_WEBHOOKS__MAX_EVENTS_PER_REQUEST="4",
        GATEWAY_WEBHOOKS__BATCH_AFTER_LAG_SECONDS="0.5",
    )
    async with start_gateway(env) as gw:
        await subscribe(gw, receiver, ["*"])
        sent = [await send(gw, to=f"+86138123456{n:02d}") for n in range(6)]
        for message_id in sent:
            await gw.wait_status(message_id, {"delivered"})
        await asyncio.sleep(1.0)
        receiver.down_status = None
        await gw.wait_for(lambda: len(receiver.unique()) >= 3 * len(sent), within=20)

        assert receiver.batches and all(b.startswith("batch_") for b in receiver.batches)
        assert receiver.refused == 0  # every batch verified by standardwebhooks
        events = receiver.unique()
        assert len(events) == len(receiver.events) == 3 * len(sent)  # each acknowledged once
        for message_id in sent:
            assert [e.type for e in events if e.data["message_id"] == message_id] == [
                "message.queued",
                "message.sent",
                "message.delivered",
            ]


async def test_batching_is_off_by_default(start_gateway: GatewayStarter, receiver: CampaignReceiver) -> None:
    receiver.down_status = 503
    async with start_gateway(callback_env()) as gw:
        await subscribe(gw, receiver, ["message.queued"])
        for n in range(4):
            await send(gw, to=f"+86138123456{n:02d}")
        await asyncio.sleep(2.5)  # behind by more than batch_after_lag_seconds
        receiver.down_status = None
        await gw.wait_for(lambda: len(receiver.unique()) == 4)
        assert receiver.batches == []

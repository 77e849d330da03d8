"""The console's callbacks page: health, pause and dead letters as the API reports them, and the
replay and resume buttons doing what the API's replay and resume do."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.console import Console
from tests.fakes.campaign_receiver import CampaignReceiver
from tests.harness import GatewayStarter
from tests.integration.callback_helpers import callback_env, send, subscribe


async def _dead(found: Any) -> bool:
    return bool((await found)["health"]["dead"] >= 1)


async def _paused(found: Any) -> bool:
    return bool((await found)["state"] == "paused")


@pytest.fixture
async def receiver() -> AsyncIterator[CampaignReceiver]:
    async with CampaignReceiver() as fake:
        yield fake


async def test_the_page_shows_health_and_dead_letters_and_its_buttons_replay_and_resume(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    receiver.down_status = 500
    env = callback_env(
        GATEWAY_WEBHOOKS__RETRY_HORIZON_SECONDS="0.3",
        GATEWAY_WEBHOOKS__PAUSE_AFTER_FAILURES="3",
        GATEWAY_WEBHOOKS__PAUSE_AFTER_SECONDS="0.5",
    )
    async with start_gateway(env) as gw, Console(gw) as console:
        created = await subscribe(gw, receiver, ["message.delivered"])
        path = f"/v1/webhooks/{created['id']}"
        sent = [await send(gw, to=f"+861381234567{n}") for n in range(3)]

        async def health() -> dict[str, Any]:
            found: dict[str, Any] = await (await gw.get(path)).json()
            return found

        # The first three die at the 0.3 s horizon; one more, failing after 0.5 s of failures, pauses it.
        await gw.wait_for(lambda: _dead(health()))
        await asyncio.sleep(0.5)
        sent.append(await send(gw, to="+8613812345679"))
        await gw.wait_for(lambda: _paused(health()))
        await console.sign_in()
        status, page = await console.get("/ui/webhooks")
        assert status == 200
        assert f"<code>{receiver.url}/events</code>" in page
        assert '<span class="status w-paused">paused</span>' in page and "failed deliveries in a row since" in page
        assert f'id="dead-{created["id"]}"' in page and any(message_id in page for message_id in sent)
        assert html.escape("receiver answered 500") in page and "0.0%" in page

        receiver.down_status = None
        status, _, page = await console.post(f"/ui/webhooks/{created['id']}/replay", {"since": "2020-01-01T00:00:00Z"})
        assert re.search(r"[1-4] deliveries to ", page)
        status, _, page = await console.post(f"/ui/webhooks/{created['id']}/resume", {})
        assert "is delivering again" in page and '<span class="status w-active">active</span>' in page
        await gw.wait_for(lambda: len(receiver.events) == 4)
        assert sorted(e.data["message_id"] for e in receiver.events) == sorted(sent)

        status, _, page = await console.post(f"/ui/webhooks/{created['id']}/replay", {"since": "yesterday"})
        assert "is not a time with a zone offset" in page

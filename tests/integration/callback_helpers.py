"""What the status-callback tests share: a gateway whose callbacks may reach a loopback receiver and
retry quickly, and a subscription made through the API."""

from __future__ import annotations

from typing import Any

from tests.fakes.campaign_receiver import CampaignReceiver
from tests.harness import SMS, Running


def callback_env(**extra: str) -> dict[str, str]:
    return {
        "GATEWAY_WEBHOOKS__ALLOW_PRIVATE_NETWORKS": "true",  # the receiver listens on loopback
        "GATEWAY_WEBHOOKS__ALLOW_HTTP": "true",
        "GATEWAY_WEBHOOKS__POLL_INTERVAL_MS": "20",
        "GATEWAY_WEBHOOKS__RETRY_BASE_SECONDS": "0.05",
        "GATEWAY_WEBHOOKS__RETRY_MAX_SECONDS": "0.2",
        "GATEWAY_WEBHOOKS__TIMEOUT_SECONDS": "2",
        **extra,
    }


async def subscribe(gw: Running, receiver: CampaignReceiver, events: list[str], **more: Any) -> dict[str, Any]:
    response = await gw.post("/v1/webhooks", {"url": receiver.url + "/events", "events": events, **more})
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    receiver.secrets = [created["secret"]]
    return created


async def send(gw: Running, **job: Any) -> str:
    response = await gw.post("/v1/messages", {**SMS, "category": "transactional", **job})
    assert response.status == 202, await response.text()
    return str((await response.json())["id"])

"""What the status-callback tests share: a gateway whose callbacks may reach a loopback receiver and
retry quickly, and a subscription made through the API."""

from __future__ import annotations

from typing import Any

from tests.fakes.campaign_receiver import CampaignReceiver
from tests.harness import SMS, Running


def endpoint_row(now: float, endpoint_id: str = "whk_01J0000000000000000000OUTB") -> dict[str, Any]:
    """A subscription as the store keeps it, for tests that write one straight to a store."""
    return {
        "id": endpoint_id,
        "tenant_id": "t1",
        "url": "https://93.184.215.14/hooks",
        "events": ["opt_out"],
        "description": None,
        "secret": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "state": "active",
        "created_at": now,
        "updated_at": now,
    }


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

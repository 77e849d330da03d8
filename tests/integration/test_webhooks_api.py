"""The subscription API: what it answers, every bad input refused with its exact problem and
nothing stored, and the SSRF guard at subscription time and again at connect time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.fakes.campaign_receiver import CampaignReceiver
from tests.harness import GatewayStarter, Running
from tests.integration.callback_helpers import callback_env, send, subscribe

PUBLIC = "https://93.184.215.14/hooks"  # an IP literal on the public internet: no DNS lookup needed


@pytest.fixture
async def receiver() -> AsyncIterator[CampaignReceiver]:
    async with CampaignReceiver() as fake:
        yield fake


async def problem(gw: Running, body: Any, status: int = 422) -> dict[str, Any]:
    response = await gw.post("/v1/webhooks", body)
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    answer: dict[str, Any] = await response.json()
    return answer


async def test_create_list_get_delete_and_the_secret_shown_once(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.post("/v1/webhooks", {"url": PUBLIC, "events": ["message.delivered", "click"]})
        assert response.status == 201
        created = await response.json()
        assert created["secret"].startswith("whsec_") and Webhook(created["secret"])
        assert response.headers["Location"] == f"/v1/webhooks/{created['id']}"
        assert (created["state"], created["events"], created["url"]) == (
            "active",
            ["message.delivered", "click"],
            PUBLIC,
        )
        assert created["health"]["success_rate"] is None and created["health"]["lag_seconds"] == 0.0

        got = await (await gw.get(f"/v1/webhooks/{created['id']}")).json()
        listed = await (await gw.get("/v1/webhooks")).json()
        assert "secret" not in got and [w["id"] for w in listed["data"]] == [created["id"]]
        assert "secret" not in listed["data"][0]

        gone = await gw.session.delete(f"{gw.url}/v1/webhooks/{created['id']}", headers=gw.headers)
        assert gone.status == 204
        missing = await gw.get(f"/v1/webhooks/{created['id']}")
        assert missing.status == 404 and (await missing.json())["type"] == "/problems/not-found"
        assert await gw.count("webhook_endpoints") == 0


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"url": PUBLIC, "events": ["message.opened"]}, "/events/0", "must be one of"),
        ({"url": PUBLIC, "events": []}, "/events", "must hold at least 1 item"),
        ({"url": "https://user:pw@93.184.215.14/h", "events": ["*"]}, "/url", "without credentials"),
        ({"url": "https://93.184.215.14/h#top", "events": ["*"]}, "/url", "or a fragment"),
        ({"url": "http://93.184.215.14/h", "events": ["*"]}, "/url", "must be https (plain http needs"),
        ({"url": "https://127.0.0.1/h", "events": ["*"]}, "/url", "resolves to the loopback address 127.0.0.1"),
        ({"url": "https://localhost/h", "events": ["*"]}, "/url", "resolves to the loopback address"),
        ({"url": "https://10.1.2.3/h", "events": ["*"]}, "/url", "resolves to the private address 10.1.2.3"),
        ({"url": "https://[::1]/h", "events": ["*"]}, "/url", "resolves to the loopback address ::1"),
        (
            {"url": "https://169.254.169.254/latest/meta-data", "events": ["*"]},
            "/url",
            "resolves to the link-local address 169.254.169.254",
        ),
        ({"url": "https://192.168.0.10/h", "events": ["*"]}, "/url", "resolves to the private address"),
        ({"url": PUBLIC, "events": ["*"], "secret": "mine"}, "/secret", "is not a known field"),
        ({"events": ["*"]}, "/url", "is required"),
    ],
)
async def test_bad_subscriptions_are_refused_by_field_and_nothing_is_stored(
    start_gateway: GatewayStarter, body: dict[str, Any], field: str, message: str
) -> None:
    async with start_gateway() as gw:
        answer = await problem(gw, body)
        assert answer["type"] == "/problems/validation"
        assert [e["field"] for e in answer["errors"]] == [field]
        assert message in answer["errors"][0]["message"]
        assert await gw.count("webhook_endpoints") == 0


async def test_the_switches_let_loopback_and_http_through(start_gateway: GatewayStarter) -> None:
    async with start_gateway(callback_env()) as gw:
        response = await gw.post("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["*"]})
        assert response.status == 201, await response.text()


async def test_more_subscriptions_than_the_maximum_are_refused(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_WEBHOOKS__MAX_ENDPOINTS_PER_TENANT": "2"}) as gw:
        for _ in range(2):
            assert (await gw.post("/v1/webhooks", {"url": PUBLIC, "events": ["*"]})).status == 201
        answer = await problem(gw, {"url": PUBLIC, "events": ["*"]}, 409)
        assert answer["type"] == "/problems/too-many-webhooks"
        assert "holds 2 subscriptions" in answer["detail"]
        assert await gw.count("webhook_endpoints") == 2


async def test_bad_replays_and_rotations_are_refused_by_field(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        created = await (await gw.post("/v1/webhooks", {"url": PUBLIC, "events": ["*"]})).json()
        path = f"/v1/webhooks/{created['id']}"
        bad_since = await gw.post(path + "/replay", {"since": "yesterday"})
        assert bad_since.status == 422
        assert [e["field"] for e in (await bad_since.json())["errors"]] == ["/since"]
        bad_grace = await gw.post(path + "/rotate-secret", {"grace_seconds": -1})
        assert [e["field"] for e in (await bad_grace.json())["errors"]] == ["/grace_seconds"]
        listed = await (await gw.get(path)).json()
        assert listed["secret_rotated_until"] is None
        bad_state = await gw.get(path + "/deliveries", params={"state": "lost"})
        assert bad_state.status == 400 and [e["field"] for e in (await bad_state.json())["errors"]] == ["state"]
        unknown = await gw.post("/v1/webhooks/whk_00000000000000000000000000/replay", {"since": "2026-01-01T00:00:00Z"})
        assert unknown.status == 404


async def test_the_test_ping_is_signed_and_reports_the_answer(
    start_gateway: GatewayStarter, receiver: CampaignReceiver
) -> None:
    async with start_gateway(callback_env()) as gw:
        created = await subscribe(gw, receiver, ["message.failed"])
        answer = await (await gw.post(f"/v1/webhooks/{created['id']}/test", None)).json()
        assert answer == {"delivered": True, "status_code": 204, "error": None}
        assert [(e.type, e.data["test"]) for e in receiver.events] == [("webhook.test", True)]
        receiver.down_status = 503
        answer = await (await gw.post(f"/v1/webhooks/{created['id']}/test", None)).json()
        assert answer == {"delivered": False, "status_code": 503, "error": "receiver answered 503"}


async def _subscribe_behind_the_guard(gw: Running, url: str) -> str:
    """A subscription made while its host resolved to a public address (written as the API would)."""
    now = time.time()
    row = {
        "id": "whk_01J00000000000000000000REB",
        "tenant_id": "default",
        "url": url,
        "events": ["*"],
        "description": None,
        "secret": "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "state": "active",
        "created_at": now,
        "updated_at": now,
    }
    assert await gw.gateway.store.create_webhook(row, 10) is not None
    return str(row["id"])


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_the_address_is_checked_again_at_connect_time(
    start_gateway: GatewayStarter, receiver: CampaignReceiver, host: str
) -> None:
    """DNS rebinding: a name that now resolves to loopback (or an address literal) is refused on
    connecting, and the receiver behind it gets nothing."""
    env = callback_env(GATEWAY_WEBHOOKS__ALLOW_PRIVATE_NETWORKS="false")
    async with start_gateway(env) as gw:
        endpoint = await _subscribe_behind_the_guard(gw, receiver.url.replace("127.0.0.1", host) + "/events")
        await send(gw)

        async def refused() -> list[dict[str, Any]]:
            page = await (await gw.get(f"/v1/webhooks/{endpoint}/deliveries")).json()
            return [d for d in page["data"] if d["attempts"] >= 1]

        tried = await gw.wait_for(refused)
        assert "loopback address 127.0.0.1" in tried[0]["last_error"]
        assert tried[0]["last_status_code"] is None
        assert receiver.requests == []

"""The send pipeline through the real HTTP API, store and sandbox provider, in one process."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from tests.harness import SMS, GatewayStarter


async def test_an_sms_is_accepted_sent_and_delivered_with_its_history(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.post("/v1/messages", {**SMS, "campaign": "spring", "user_id": "u1"})
        assert response.status == 202
        accepted = await response.json()
        assert accepted["status"] == "queued"
        assert response.headers["Location"] == f"/v1/messages/{accepted['id']}"

        detail = await gw.wait_status(accepted["id"], {"delivered"})
        assert [e["status"] for e in detail["events"]] == ["queued", "sending", "sent", "delivered"]
        assert detail["provider"] == "sandbox"
        assert detail["attempts"][0]["outcome"] == "sent"
        assert detail["receipts"][0]["status"] == "delivered"
        assert detail["provider_message_id"] == detail["receipts"][0]["provider_message_id"]


async def test_replaying_a_key_returns_the_first_answer_and_sends_once(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        first = await gw.post("/v1/messages", SMS, key="order-42")
        # Same JSON value with another key order and spacing is the same body.
        reordered = {"content": SMS["content"], "to": SMS["to"], "channel": "sms"}
        again = await gw.post("/v1/messages", reordered, key="order-42")
        assert first.status == again.status == 202
        assert again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert await again.json() == await first.json()
        assert again.headers["Location"] == first.headers["Location"]
        assert await gw.count() == 1


async def test_a_key_reused_with_another_body_is_refused(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        first = await gw.post("/v1/messages", SMS, key="order-43")
        other = await gw.post("/v1/messages", {**SMS, "content": {"text": "something else"}}, key="order-43")
        assert first.status == 202
        assert other.status == 422
        assert other.content_type == "application/problem+json"
        problem = await other.json()
        assert problem["type"] == "/problems/idempotency-key-reused"
        assert problem["errors"] == [{"field": "Idempotency-Key", "message": "already used with a different body"}]
        assert await gw.count() == 1


async def test_fifty_concurrent_requests_with_one_key_make_one_message(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        responses = await asyncio.gather(*(gw.post("/v1/messages", SMS, key="burst-1") for _ in range(50)))
        statuses = sorted(r.status for r in responses)
        assert set(statuses) <= {202, 409}
        accepted_ids = {(await r.json())["id"] for r in responses if r.status == 202}
        assert len(accepted_ids) == 1
        for r in responses:
            if r.status == 409:
                assert r.headers["Retry-After"] == "1"
        assert await gw.count() == 1
        assert sum(1 for r in responses if r.status == 202 and "Idempotent-Replayed" not in r.headers) == 1


async def test_keys_are_scoped_to_the_tenant(start_gateway: GatewayStarter) -> None:
    from gateway.api.auth import key_row, new_key

    async with start_gateway() as gw:
        other_key, key_id = new_key()
        await gw.gateway.store.add_api_key(key_row(other_key, key_id, "acme", "t", ("send", "read")))
        mine = await gw.post("/v1/messages", SMS, key="shared-key")
        theirs = await gw.session.post(
            gw.url + "/v1/messages",
            json=SMS,
            headers={"Authorization": f"Bearer {other_key}", "Idempotency-Key": "shared-key"},
        )
        assert mine.status == theirs.status == 202
        assert (await theirs.json())["id"] != (await mine.json())["id"]
        peek = await gw.session.get(
            gw.url + f"/v1/messages/{(await mine.json())['id']}", headers={"Authorization": f"Bearer {other_key}"}
        )
        assert peek.status == 404
        assert await gw.count() == 2


async def test_a_batch_judges_each_item_on_its_own(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        await gw.post("/v1/messages", SMS, key="earlier")
        batch = {
            "messages": [
                {**SMS, "idempotency_key": "b-0"},
                {**SMS, "to": "12345", "idempotency_key": "b-1"},
                {**SMS, "idempotency_key": "b-0"},
                {**SMS, "content": {"text": "other"}, "idempotency_key": "b-0"},
                {**SMS, "idempotency_key": "earlier"},
                {**SMS, "content": {"text": "changed"}, "idempotency_key": "earlier"},
                {"channel": "email", "to": "ann@example.com", "content": {"subject": "Hi", "text": "Hello"}},
            ]
        }
        response = await gw.post("/v1/messages/batch", batch)
        assert response.status == 200
        body = await response.json()
        results = body["results"]
        assert [r["index"] for r in results] == list(range(7))
        assert [r["status"] for r in results] == [202, 422, 202, 422, 202, 422, 202]
        assert results[1]["problem"]["errors"][0]["field"] == "/messages/1/to"
        assert results[2]["id"] == results[0]["id"] and results[2]["replayed"] is True
        assert results[3]["problem"]["type"] == "/problems/idempotency-key-reused"
        assert results[4]["replayed"] is True
        assert body["accepted"] == 2
        assert await gw.count() == 3


async def test_the_delivery_log_filters_and_pages_newest_first(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}) as gw:
        ids = []
        for i in range(7):
            r = await gw.post("/v1/messages", {**SMS, "campaign": "a" if i % 2 else "b", "user_id": f"u{i}"})
            ids.append((await r.json())["id"])
        page1 = await (await gw.get("/v1/messages?campaign=a&limit=2")).json()
        assert [m["id"] for m in page1["data"]] == [ids[5], ids[3]]
        page2 = await (await gw.get(f"/v1/messages?campaign=a&limit=2&cursor={page1['next_cursor']}")).json()
        assert [m["id"] for m in page2["data"]] == [ids[1]]
        assert page2["next_cursor"] is None
        by_user = await (await gw.get("/v1/messages?user_id=u4")).json()
        assert [m["id"] for m in by_user["data"]] == [ids[4]]
        by_to = await (await gw.get("/v1/messages", params={"to": "+86 138 1234 5678", "limit": "500"})).json()
        assert len(by_to["data"]) == 7


async def test_a_job_waits_for_send_at_and_an_expired_job_is_not_sent(start_gateway: GatewayStarter) -> None:
    async with start_gateway(role="api") as gw:
        later = await gw.post("/v1/messages", {**SMS, "send_at": "2999-01-01T00:00:00Z"})
        soon = datetime.fromtimestamp(time.time() + 1.0, UTC).isoformat()
        gone = await gw.post("/v1/messages", {**SMS, "expires_at": soon})
        assert gone.status == 202
        await asyncio.sleep(1.2)  # no worker yet: the job expires in the queue
        async with start_gateway(role="worker"):
            expired = await gw.wait_status((await gone.json())["id"], {"expired"})
        assert expired["reason"] == "expired"
        assert expired["attempts"] == []
        waiting = await (await gw.get(f"/v1/messages/{(await later.json())['id']}")).json()
        assert waiting["status"] == "queued"
        assert waiting["next_attempt_at"] == "2999-01-01T00:00:00.000Z"


async def test_transient_failures_are_retried_then_fail_with_a_reason(start_gateway: GatewayStarter) -> None:
    env = {
        "GATEWAY_SANDBOX__FAILURE_RATE": "1",
        "GATEWAY_WORKER__MAX_ATTEMPTS": "3",
        "GATEWAY_WORKER__BACKOFF_BASE_SECONDS": "0.05",
        "GATEWAY_WORKER__BACKOFF_MAX_SECONDS": "0.1",
        "GATEWAY_SANDBOX__ERRORS": '[{"code": "SBX-503", "kind": "transient"}]',
    }
    async with start_gateway(env) as gw:
        r = await gw.post("/v1/messages", SMS)
        detail = await gw.wait_status((await r.json())["id"], {"failed"})
        assert detail["reason"] == "provider.transient.exhausted"
        assert [a["outcome"] for a in detail["attempts"]] == ["transient"] * 3
        assert detail["error_code"] == "SBX-503"


async def test_a_permanent_error_fails_at_once(start_gateway: GatewayStarter) -> None:
    env = {
        "GATEWAY_SANDBOX__FAILURE_RATE": "1",
        "GATEWAY_SANDBOX__ERRORS": '[{"code": "SBX-21211", "kind": "recipient_invalid", "message": "bad To"}]',
    }
    async with start_gateway(env) as gw:
        r = await gw.post("/v1/messages", SMS)
        detail = await gw.wait_status((await r.json())["id"], {"failed"})
        assert detail["reason"] == "provider.permanent.recipient_invalid"
        assert len(detail["attempts"]) == 1
        assert detail["attempts"][0]["error_message"] == "bad To"
        metrics = await (await gw.get("/metrics")).text()
        failed = 'channel="sms",provider="sandbox",reason="provider.permanent.recipient_invalid"'
        assert f"gateway_messages_failed_total{{{failed}}} 1.0" in metrics


async def test_health_readiness_and_metrics(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        assert (await gw.get("/healthz")).status == 200
        ready = await gw.get("/readyz")
        assert ready.status == 200 and (await ready.json())["checks"]["database"] == "ok"
        r = await gw.post("/v1/messages", SMS)
        await gw.wait_status((await r.json())["id"], {"delivered"})
        metrics = await (await gw.get("/metrics")).text()
        assert 'gateway_messages_accepted_total{channel="sms"} 1.0' in metrics
        assert 'gateway_messages_dispatched_total{channel="sms",outcome="sent",provider="sandbox"} 1.0' in metrics
        assert "gateway_dispatch_latency_seconds_bucket" in metrics
        assert "gateway_queue_depth" in metrics


async def test_key_use_is_recorded_in_the_audit_log(start_gateway: GatewayStarter) -> None:
    from gateway.api.auth import provisioned_key_id
    from tests.harness import API_KEY

    async with start_gateway({"GATEWAY_API__KEY_USE_AUDIT_SECONDS": "0.2"}) as gw:
        for _ in range(3):
            assert (await gw.get("/v1/messages?limit=1")).status == 200
        await asyncio.sleep(0.5)
        lines = (await (await gw.get("/v1/events?type=api_key.used")).text()).splitlines()
        used = [json.loads(line) for line in lines]
        assert sum(u["detail"]["requests"] for u in used) >= 3
        assert {u["reason"] for u in used} == {provisioned_key_id(API_KEY)}

"""kill -9 of the gateway while it delivers status callbacks loses none and invents none: after a
restart the receiver holds, once per webhook-id, exactly the events the record holds, in order per
message, each verified with standardwebhooks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.fakes.campaign_receiver import CampaignReceiver
from tests.harness import API_KEY
from tests.processes import GatewayProcess

pytestmark = pytest.mark.slow
MESSAGES = 30
ENV = {
    "GATEWAY_WEBHOOKS__ALLOW_PRIVATE_NETWORKS": "true",
    "GATEWAY_WEBHOOKS__ALLOW_HTTP": "true",
    "GATEWAY_WEBHOOKS__POLL_INTERVAL_MS": "20",
    "GATEWAY_WEBHOOKS__RETRY_BASE_SECONDS": "0.05",
    "GATEWAY_WEBHOOKS__RETRY_MAX_SECONDS": "0.2",
    "GATEWAY_WEBHOOKS__LEASE_SECONDS": "2",
    "GATEWAY_WEBHOOKS__CONCURRENCY": "8",
}
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


async def _record(session: aiohttp.ClientSession, gateway: GatewayProcess) -> list[tuple[int, str, str]]:
    """The status events the record holds (through the audit export, on either store)."""
    params = {"type": "status"}
    async with session.get(gateway.url + "/v1/events", params=params, headers=HEADERS) as response:
        assert response.status == 200
        lines = [orjson.loads(line) for line in (await response.read()).splitlines() if line]
    return [(e["id"], e["message_id"], e["status"]) for e in lines if e["status"] != "sending"]


async def test_kill_9_while_delivering_loses_no_callback_and_invents_none(tmp_path: Path, database_url: str) -> None:
    async with CampaignReceiver() as receiver, aiohttp.ClientSession() as session:
        gateway = GatewayProcess(tmp_path, env={**ENV, "GATEWAY_DATABASE_URL": database_url})
        try:
            gateway.start()
            hook = {"url": receiver.url + "/events", "events": ["*"]}
            async with session.post(gateway.url + "/v1/webhooks", json=hook, headers=HEADERS) as response:
                assert response.status == 201
                receiver.secrets = [(await response.json())["secret"]]
            # Slow answers: the kill lands with deliveries in flight.
            receiver.delay = 0.2
            for n in range(MESSAGES):
                job = {
                    "channel": "sms",
                    "to": f"+861381234{n:04d}",
                    "content": {"text": "hi"},
                    "category": "transactional",
                }
                async with session.post(gateway.url + "/v1/messages", json=job, headers=HEADERS) as response:
                    assert response.status == 202
            for _ in range(400):  # until deliveries are under way
                if len(receiver.requests) >= 10:
                    break
                await asyncio.sleep(0.05)
            gateway.kill9()
            gateway.start()
            expected: list[tuple[int, str, str]] = []
            for _ in range(600):
                expected = await _record(session, gateway)
                if {e.webhook_id for e in receiver.unique()} >= {f"evt_{event_id}" for event_id, _, _ in expected}:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # anything more would arrive now
            expected = await _record(session, gateway)
        finally:
            gateway.stop_quietly()

    got = receiver.unique()
    assert len(expected) >= 2 * MESSAGES
    assert sorted(e.webhook_id for e in got) == sorted(f"evt_{event_id}" for event_id, _, _ in expected)
    for message_id in {m for _, m, _ in expected}:
        mine = [e.type for e in got if e.data["message_id"] == message_id]
        assert mine == [f"message.{status}" for _, m, status in expected if m == message_id]
    assert receiver.refused == 0


async def test_worker_processes_share_the_deliveries_without_sending_one_twice(
    tmp_path: Path, database_url: str
) -> None:
    """`gateway serve --processes 2 --workers 2`: both workers read the outbox and deliver, leases
    decide who does which, and a receiver that always acknowledges sees each webhook-id once."""
    env = {**ENV, "GATEWAY_DATABASE_URL": database_url, "GATEWAY_WEBHOOKS__DELIVERY_PROCESS": "worker"}
    async with CampaignReceiver() as receiver, aiohttp.ClientSession() as session:
        gateway = GatewayProcess(tmp_path, env=env, serve_args=("--processes", "2", "--workers", "2"))
        try:
            gateway.start(timeout=120)  # inside the try: a start that times out is stopped too
            hook = {"url": receiver.url + "/events", "events": ["*"]}
            async with session.post(gateway.url + "/v1/webhooks", json=hook, headers=HEADERS) as response:
                assert response.status == 201
                receiver.secrets = [(await response.json())["secret"]]
            for n in range(MESSAGES):
                job = {
                    "channel": "sms",
                    "to": f"+861381234{n:04d}",
                    "content": {"text": "hi"},
                    "category": "transactional",
                }
                async with session.post(gateway.url + "/v1/messages", json=job, headers=HEADERS) as response:
                    assert response.status == 202
            for _ in range(600):
                if sum(e.type == "message.delivered" for e in receiver.events) >= MESSAGES:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # a second delivery of anything would arrive now
        finally:
            gateway.stop_quietly()
    ids = [recorded.headers["webhook-id"] for recorded in receiver.requests]
    assert len(ids) == len(set(ids)) >= 2 * MESSAGES  # (`sent` is no event where a receipt overtook it)
    for wanted in ("message.queued", "message.delivered"):
        assert len({e.data["message_id"] for e in receiver.events if e.type == wanted}) == MESSAGES

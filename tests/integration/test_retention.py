"""Retention: finished messages lose their content after N days, keep what the reports need."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.store.records import Outcome
from tests.harness import SMS, GatewayStarter, Running, running_gateway
from tests.processes import gateway_command

FAST_RETENTION = {
    "GATEWAY_RETENTION__CONTENT_DAYS": str(1.0 / 86400),  # one second
    "GATEWAY_RETENTION__PURGE_INTERVAL_SECONDS": "0.3",
}


async def _wait_purged(gw: Running, message_id: str, within: float = 10.0) -> dict:
    deadline = time.monotonic() + within
    while True:
        body = await (await gw.get(f"/v1/messages/{message_id}")).json()
        if body["content"] is None or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def test_the_scheduled_purge_drops_content_and_keeps_the_report_data(start_gateway: GatewayStarter) -> None:
    async with start_gateway(FAST_RETENTION) as gw:
        delivered_id = (await (await gw.post("/v1/messages", {**SMS, "campaign": "spring"})).json())["id"]
        waiting = {**SMS, "campaign": "spring", "send_at": "2999-01-01T00:00:00Z", "content": {"text": "later"}}
        waiting_id = (await (await gw.post("/v1/messages", waiting)).json())["id"]
        await gw.wait_status(delivered_id, {"delivered"})

        purged = await _wait_purged(gw, delivered_id)
        assert purged["content"] is None
        assert (purged["status"], purged["campaign"], purged["to"], purged["provider"]) == (
            "delivered",
            "spring",
            SMS["to"],
            "sandbox",
        )
        kept = await (await gw.get(f"/v1/messages/{waiting_id}")).json()
        assert kept["content"] == {"text": "later"}, "a message not yet sent keeps what it must send"

        report = await (await gw.get("/v1/reports/campaigns/spring")).json()
        assert report["totals"]["delivered"] == 1
        audit = [line for line in (await (await gw.get("/v1/events?type=retention")).text()).splitlines()]
        assert audit and all('"content.purged"' in line for line in audit)


async def test_a_purged_failed_message_cannot_be_requeued(start_gateway: GatewayStarter) -> None:
    async with start_gateway(FAST_RETENTION) as gw:
        response = await gw.post("/v1/messages", {**SMS, "send_at": "2999-01-01T00:00:00Z"})
        message_id = (await response.json())["id"]
        failure = Outcome(message_id, "default", "failed", time.time(), reason="provider.transient.exhausted")
        await gw.gateway.store.record_outcomes([failure])
        assert (await _wait_purged(gw, message_id))["content"] is None

        refused = await gw.post(f"/v1/messages/{message_id}/retry", None)
        assert refused.status == 409
        assert (await refused.json())["type"] == "/problems/content-purged"
        dry = await (await gw.post("/v1/messages/requeue", {"filter": {"status": "failed"}})).json()
        assert dry["matched"] == 0
        assert (await (await gw.get(f"/v1/messages/{message_id}")).json())["status"] == "failed"


async def test_the_purge_command(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    async with running_gateway(tmp_path, database_url=f"sqlite:///{db}") as gw:
        message_id = (await (await gw.post("/v1/messages", SMS)).json())["id"]
        await gw.wait_status(message_id, {"delivered"})
        kept = gateway_command(db, "purge")  # default retention: 30 days, this message is seconds old
        assert kept.returncode == 0, kept.stderr
        assert "purged the content of 0 message(s)" in kept.stdout
        assert (await (await gw.get(f"/v1/messages/{message_id}")).json())["content"] == SMS["content"]
        await asyncio.sleep(1.1)
        done = gateway_command(db, "purge", "--older-than", "1s")
        assert done.returncode == 0, done.stderr
        assert "purged the content of 1 message(s)" in done.stdout
        assert (await (await gw.get(f"/v1/messages/{message_id}")).json())["content"] is None
    refused = gateway_command(db, "purge", "--older-than", "a week")
    assert refused.returncode == 2 and "not a duration" in refused.stderr

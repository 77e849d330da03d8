"""Retention of callback deliveries: a delivered one's row goes after `delivered_retention_days`, a
dead letter's after `dead_retention_days`; pending deliveries stay whatever their age, and the
deliveries list shows exactly what is kept."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.callback_delivery import CallbackDispatcher
from gateway.domain.webhooks import webhook_id
from gateway.metrics import Metrics
from gateway.store.schema import webhook_deliveries
from gateway.store.store import SqlStore
from gateway.store.webhook_records import DeliveryResult
from gateway.webhook_settings import WebhooksSettings
from tests.fakes.campaign_receiver import CampaignReceiver
from tests.harness import GatewayStarter, Running
from tests.integration.callback_helpers import callback_env, endpoint_row, send, subscribe

DAY = 86_400.0
ENDPOINT = "whk_01J0000000000000000000KEEP"


def _opt_out(n: int, now: float) -> dict[str, Any]:
    return {
        "tenant_id": "t1",
        "kind": "address",
        "value": f"+86138123456{n:02d}",
        "reason": "opt_out.reply",
        "source": "inbound:sandbox",
        "created_at": now,
    }


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    opened = SqlStore.open(database_url)
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()


async def _listed(store: SqlStore, page: int) -> list[str]:
    """Every delivery of the endpoint, page by page as GET .../deliveries walks them (newest first)."""
    seen: list[str] = []
    before = None
    while True:
        rows = await store.webhook_deliveries(ENDPOINT, None, before, page)
        seen += [webhook_id(r["event_id"]) for r in rows]
        if len(rows) < page:
            return seen
        before = rows[-1]["id"]


async def test_pruning_deletes_exactly_the_finished_deliveries_past_retention(store: SqlStore) -> None:
    now = time.time()
    await store.create_webhook(endpoint_row(now, ENDPOINT), 10)
    for n in range(8):
        await store.add_suppressions([_opt_out(n, now)])
    assert await store.fan_out_events("reader", now, now + 60, 100, {}, 0.0) == 8
    claimed = await store.claim_webhook_deliveries("w1", now, 100, now + 60)
    d = [c.id for c in claimed]
    ids = {c.id: webhook_id(int(c.event["id"])) for c in claimed}
    old = now - 40 * DAY

    def delivered(i: int, days_ago: float) -> DeliveryResult:
        return DeliveryResult(d[i], ENDPOINT, True, now - days_ago * DAY, old, 204)

    def dead(i: int, days_ago: float) -> DeliveryResult:
        return DeliveryResult(d[i], ENDPOINT, False, now - days_ago * DAY, old, 500, "receiver answered 500")

    results = [
        *(delivered(i, 7.1) for i in (0, 1, 2)),  # past 7 days: deleted, two batches of 2
        delivered(3, 6.9),
        dead(4, 30.1),  # past 30 days: deleted
        dead(5, 29.9),
        # Still owed, however old: a retry due 40 days ago (its receiver paused since), and one in flight.
        DeliveryResult(d[6], ENDPOINT, False, old, old, 500, "receiver answered 500", next_at=old),
    ]
    await store.record_webhook_results("w1", results, WebhooksSettings().policy())
    before = await _listed(store, 100)

    dispatcher = CallbackDispatcher(store, WebhooksSettings(prune_batch_size=2), Metrics())
    assert await dispatcher.prune() == 4
    kept = [ids[d[i]] for i in (3, 5, 6, 7)]
    assert sorted(await _listed(store, 100)) == sorted(kept)
    assert await _listed(store, 2) == [w for w in before if w in kept], "pages walk the kept rows, newest first"
    assert await dispatcher.prune() == 0

    forever = CallbackDispatcher(store, WebhooksSettings(delivered_retention_days=0, dead_retention_days=0), Metrics())
    assert await forever.prune() == 0


async def _age(gw: Running, webhook_ids: list[str], days: float) -> None:
    """As if the deliveries had finished `days` earlier than they did."""
    event_ids = [int(w.removeprefix("evt_")) for w in webhook_ids]
    shift = days * DAY
    d = webhook_deliveries

    def age(conn: Any) -> None:
        conn.execute(
            d.update()
            .where(d.c.event_id.in_(event_ids))
            .values(next_attempt_at=d.c.next_attempt_at - shift, delivered_at=d.c.delivered_at - shift)
        )

    await gw.gateway.store.db.write(age)


async def test_the_gateway_prunes_in_the_background_and_the_list_shows_what_is_kept(
    start_gateway: GatewayStarter,
) -> None:
    env = callback_env(
        GATEWAY_WEBHOOKS__RETRY_HORIZON_SECONDS="0.3",
        GATEWAY_WEBHOOKS__PRUNE_INTERVAL_SECONDS="0.2",
        GATEWAY_WEBHOOKS__PRUNE_BATCH_SIZE="2",
    )
    async with CampaignReceiver() as receiver, start_gateway(env) as gw:
        created = await subscribe(gw, receiver, ["message.delivered"])
        path = f"/v1/webhooks/{created['id']}"

        async def listed(state: str | None = None) -> list[str]:
            found, cursor = [], None
            while True:
                params = {"limit": "2", **({"cursor": cursor} if cursor else {}), **({"state": state} if state else {})}
                page = await (await gw.get(path + "/deliveries", params=params)).json()
                found += [row["webhook_id"] for row in page["data"]]
                if (cursor := page["next_cursor"]) is None:
                    return found

        for n in range(5):
            await send(gw, to=f"+86138123456{n:02d}")
        await gw.wait_for(lambda: len(receiver.unique()) == 5)
        receiver.down_status = 500
        for n in range(5, 7):
            await send(gw, to=f"+86138123456{n:02d}")
        dead = await gw.wait_for(lambda: _two(listed("dead")))
        delivered = await listed("delivered")
        assert len(delivered) == 5

        await _age(gw, delivered[:3], 7.05)
        await _age(gw, delivered[3:], 6.95)
        await _age(gw, dead[:1], 30.05)
        await _age(gw, dead[1:], 29.95)
        kept = delivered[3:] + dead[1:]
        await gw.wait_for(lambda: _same(listed(), kept))
        health = (await (await gw.get(path)).json())["health"]
        assert (health["delivered"], health["dead"]) == (5, 1), "the counters keep what the rows no longer show"


async def _two(found: Any) -> list[str] | None:
    rows: list[str] = await found
    return rows if len(rows) == 2 else None


async def _same(found: Any, expected: list[str]) -> bool:
    return sorted(await found) == sorted(expected)

"""During a full outage, retries stay within the provider's budget and backoff stays within its
jitter bounds; no job is dropped for it."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import sqlalchemy as sa

from gateway.domain.retry import RetryPolicy, backoff_ceiling
from gateway.store.schema import attempts, events, messages
from tests.harness import SMS, GatewayStarter

OUTAGE = {
    "GATEWAY_SANDBOX__FAILURE_RATE": "1",
    "GATEWAY_SANDBOX__ERRORS": '[{"code": "SBX-503", "kind": "transient"}]',
    "GATEWAY_WORKER__MAX_ATTEMPTS": "30",
    "GATEWAY_WORKER__BACKOFF_BASE_SECONDS": "0.02",
    "GATEWAY_WORKER__BACKOFF_MAX_SECONDS": "0.2",
    "GATEWAY_WORKER__RETRY_BUDGET_RATIO": "0.2",
    "GATEWAY_WORKER__RETRY_BUDGET_FLOOR": "5",
}


async def test_an_outage_does_not_become_a_retry_storm(start_gateway: GatewayStarter) -> None:
    async with start_gateway(OUTAGE) as gw:
        batch = await gw.post("/v1/messages/batch", {"messages": [SMS] * 100})
        assert (await batch.json())["accepted"] == 100
        await asyncio.sleep(4)

        def read(conn: Any) -> tuple[Counter[str], list[Any], Counter[str]]:
            numbers = Counter("first" if n == 1 else "retry" for (n,) in conn.execute(sa.select(attempts.c.number)))
            retry_events = conn.execute(
                sa.select(events.c.at, events.c.detail).where(events.c.reason == "retry.transient")
            ).all()
            statuses = Counter(s for (s,) in conn.execute(sa.select(messages.c.status)))
            return numbers, retry_events, statuses

        numbers, retry_events, statuses = await gw.gateway.store.db.read(read)
        deferred = await gw.count("events")
    print(f"\noutage: {dict(numbers)} attempts, statuses {dict(statuses)}")
    assert numbers["first"] == 100
    assert numbers["retry"] <= 5 + 0.2 * 100, "retries beyond the budget"
    assert numbers["retry"] >= 5, "the budget still lets some retries through"
    assert statuses["failed"] == 0 and sum(statuses.values()) == 100, "no job is dropped for the budget"
    assert deferred > 0
    policy = RetryPolicy(30, 0.02, 0.2)
    import orjson

    for at, detail in retry_events:
        info = orjson.loads(detail)
        wait = info["next_attempt_at"] - at
        assert 0 <= wait <= backoff_ceiling(policy, info["attempt"]) + 1e-6

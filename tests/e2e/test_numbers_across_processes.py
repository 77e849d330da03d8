"""Sender number pools across processes: per-number daily caps and health counters shared by two
worker processes through Redis; a recipient's sticky number survives a restart."""

from __future__ import annotations

import asyncio
import collections
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.harness import API_KEY
from tests.processes import GatewayProcess, start_together

pytestmark = pytest.mark.slow

POOL = ["+14155550101", "+14155550102", "+14155550103"]
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def _numbers(pools: dict[str, Any]) -> str:
    return json.dumps({"tick_seconds": 0.2, "pools": pools})


async def _submit(url: str, jobs: list[dict[str, object]]) -> list[str]:
    async with (
        aiohttp.ClientSession(headers=HEADERS) as session,
        session.post(url + "/v1/messages/batch", json={"messages": jobs}) as response,
    ):
        assert response.status == 200
        results = (await response.json())["results"]
        assert all(item["status"] == 202 for item in results), results
        return [item["id"] for item in results]


async def _get(url: str, path: str, **params: str) -> Any:
    async with aiohttp.ClientSession(headers=HEADERS) as session, session.get(url + path, params=params) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_per_number_daily_caps_and_health_hold_across_two_worker_processes(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    api = GatewayProcess(tmp_path, role="api")
    env = {
        "GATEWAY_DATABASE_URL": fresh_postgres,
        "GATEWAY_REDIS_URL": fresh_redis,
        "GATEWAY_SANDBOX__LATENCY_MS": "1",
        "GATEWAY_SANDBOX__RECEIPT_DELAY_MS": "10",
        "GATEWAY_SANDBOX__RECEIPT_URL": f"{api.url}/v1/receipts/sandbox",
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_NUMBERS": _numbers({"us": {"provider": "sandbox", "daily_cap": 20, "senders": POOL}}),
    }
    api.env.update(env)
    workers = [GatewayProcess(tmp_path, env, role="worker") for _ in range(2)]
    jobs = [{"channel": "sms", "to": f"+1202555{n:04d}", "content": {"text": f"offer {n}"}} for n in range(100)]
    try:
        api.start()
        start_together(workers)
        await _submit(api.url, jobs)
        deadline = time.monotonic() + 60
        rows: list[Any] = []
        while time.monotonic() < deadline:
            conn = await asyncpg.connect(fresh_postgres)
            rows = await conn.fetch("SELECT status, reason, sender FROM messages")
            await conn.close()
            settled = collections.Counter(r["status"] for r in rows)
            if settled["delivered"] + settled["deferred"] == 100:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(0.5)  # the workers' last evidence flush
        numbers = (await _get(api.url, "/v1/numbers"))["data"]
    finally:
        for process in (api, *workers):
            process.stop_quietly()
    statuses = collections.Counter(r["status"] for r in rows)
    per_number = collections.Counter(r["sender"] for r in rows if r["status"] == "delivered")
    ledger = [line for line in (tmp_path / "sandbox-ledger.ndjson").read_text().splitlines() if '"ref"' in line]
    print(f"\n100 jobs, 2 workers, 3 numbers capped at 20/day: {dict(statuses)}; per number {dict(per_number)}")
    assert statuses == {"delivered": 60, "deferred": 40}
    assert per_number == dict.fromkeys(POOL, 20)
    assert len(ledger) == 60
    assert {r["reason"] for r in rows if r["status"] == "deferred"} == {"number.daily_cap"}
    # Sends counted by two workers and receipts by the API process, in one shared health record.
    assert {n["sender"]: (n["health"]["sent"], n["health"]["delivered"]) for n in numbers} == dict.fromkeys(
        POOL, (20, 20)
    )


async def test_a_recipient_keeps_its_number_across_a_restart(tmp_path: Path) -> None:
    env = {
        "GATEWAY_SANDBOX__LATENCY_MS": "1",
        "GATEWAY_SANDBOX__RECEIPT_DELAY_MS": "10",
        "GATEWAY_NUMBERS": _numbers({"us": {"provider": "sandbox", "senders": [*POOL, "+14155550104"]}}),
    }
    recipients = [f"+1202555{n:04d}" for n in range(12)]

    async def send_round(url: str, tag: str, order: list[str]) -> dict[str, str]:
        ids = await _submit(url, [{"channel": "sms", "to": to, "content": {"text": tag}} for to in order])
        deadline = time.monotonic() + 30
        while True:
            messages = [await _get(url, f"/v1/messages/{i}") for i in ids]
            if all(m["status"] == "delivered" for m in messages):
                return {m["to"]: m["sender"] for m in messages}
            assert time.monotonic() < deadline, [m["status"] for m in messages]
            await asyncio.sleep(0.2)

    gateway = GatewayProcess(tmp_path, env)
    try:
        gateway.start()
        before = await send_round(gateway.url, "first", recipients)
        assert len(set(before.values())) == 4  # spread over the pool
        gateway.kill9()
        gateway.start()
        # In another order, after a newcomer: without the sticky record the spread would differ.
        newcomer = await send_round(gateway.url, "hello", ["+12025559999"])
        after = await send_round(gateway.url, "second", list(reversed(recipients)))
    finally:
        gateway.stop_quietly()
    assert after == before
    assert newcomer["+12025559999"] in POOL or newcomer["+12025559999"] == "+14155550104"

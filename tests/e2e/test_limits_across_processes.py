"""Caps and provider throughput hold across several worker processes sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import collections
import json
import time
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from tests.harness import API_KEY
from tests.pacing import bound_for, busiest_second
from tests.processes import GatewayProcess, start_together

pytestmark = pytest.mark.slow


def _cluster(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    limits: dict[str, object],
    workers: int,
    extra: dict[str, str] | None = None,
) -> tuple[GatewayProcess, list[GatewayProcess]]:
    api = GatewayProcess(tmp_path, role="api")
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_LIMITS": json.dumps(limits),
        "GATEWAY_SANDBOX__LATENCY_MS": "1",
        "GATEWAY_SANDBOX__RECEIPT_URL": f"{api.url}/v1/receipts/sandbox",
        "GATEWAY_LOG_LEVEL": "warning",
        **(extra or {}),
    }
    api.env.update(env)
    return api, [GatewayProcess(tmp_path, env, role="worker") for _ in range(workers)]


async def _submit(url: str, jobs: list[dict[str, object]]) -> list[str]:
    ids: list[str] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:
        for start in range(0, len(jobs), 1000):
            async with session.post(url + "/v1/messages/batch", json={"messages": jobs[start : start + 1000]}) as r:
                assert r.status == 200
                results = (await r.json())["results"]
                assert all(item["status"] == 202 for item in results)
                ids.extend(item["id"] for item in results)
    return ids


async def _statuses(database_url: str) -> collections.Counter[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return collections.Counter(dict(await conn.fetch("SELECT status, count(*) FROM messages GROUP BY status")))
    finally:
        await conn.close()


def _ledger(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "sandbox-ledger.ndjson"
    return [e for e in (orjson.loads(line) for line in path.read_bytes().splitlines() if line) if "ref" in e]


async def test_four_workers_never_exceed_a_cap_of_two_a_day(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    limits = {"caps": {"marketing": {"sms": ["2/day"]}}, "quiet_hours": {"marketing": "00:00-24:00"}}
    api, workers = _cluster(tmp_path, fresh_postgres, fresh_redis, limits, workers=4)
    jobs = [
        {
            "channel": "sms",
            "to": f"+86139{n % 500:08d}",
            "user_id": f"user-{n % 500}",
            "content": {"text": f"Come back, offer {n}"},
        }
        for n in range(20_000)
    ]
    try:
        api.start()
        start_together(workers)
        started = time.monotonic()
        await _submit(api.url, jobs)
        while time.monotonic() - started < 240:
            statuses = await _statuses(fresh_postgres)
            if not statuses["queued"] and not statuses["sending"] and not statuses["sent"]:
                break
            await asyncio.sleep(1)
        elapsed = time.monotonic() - started
    finally:
        for process in (api, *workers):
            process.stop_quietly()
    sends = collections.Counter(str(entry["ref"]) for entry in _ledger(tmp_path))
    conn = await asyncpg.connect(fresh_postgres)
    rows = await conn.fetch("SELECT id, user_id, status, reason FROM messages")
    await conn.close()
    per_user = collections.Counter(r["user_id"] for r in rows if r["id"] in sends)
    statuses = collections.Counter(r["status"] for r in rows)
    print(f"\n20,000 jobs, 4 workers, {elapsed:.1f}s: statuses={dict(statuses)} provider-sends={sum(sends.values())}")
    assert max(sends.values()) == 1
    assert max(per_user.values()) == 2 and len(per_user) == 500
    assert statuses == {"delivered": 1000, "deferred": 19_000}
    assert {r["reason"] for r in rows if r["status"] == "deferred"} == {"limit.cap"}


async def test_a_50_per_second_provider_limit_holds_across_four_workers(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    limits = {
        "throughput": {"provider": {"sandbox": {"rate": 50, "burst": 1}}},
        "quiet_hours": {"marketing": "00:00-24:00"},
    }
    api, workers = _cluster(tmp_path, fresh_postgres, fresh_redis, limits, workers=4)
    jobs = [
        {"channel": "sms", "to": f"+86137{n:08d}", "content": {"text": "Your parcel is on its way"}} for n in range(400)
    ]
    try:
        api.start()
        start_together(workers)
        await _submit(api.url, jobs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(_ledger(tmp_path)) >= 400:
                break
            await asyncio.sleep(0.5)
    finally:
        for process in (api, *workers):
            process.stop_quietly()
    ledger = {str(entry["ref"]): float(entry["at"]) for entry in _ledger(tmp_path)}  # type: ignore[arg-type]
    conn = await asyncpg.connect(fresh_postgres)
    attempts = await conn.fetch("SELECT message_id, started_at FROM attempts")
    granted = {r["message_id"]: r["started_at"] for r in attempts}
    await conn.close()
    stamps = sorted(ledger.values())
    # Measured against the lag from each grant (the attempt's start, taken as the grant came) to the
    # provider's stamp: tests/pacing.py.
    lags = [ledger[ref] - granted[ref] for ref in ledger]
    bound = bound_for(50, lags)
    busiest = busiest_second(stamps)
    print(
        f"\n400 sends by 4 workers in {stamps[-1] - stamps[0]:.2f}s; busiest 1-second window: {busiest}"
        f" (bound {bound}: grant-to-provider lag {min(lags) * 1000:.1f}-{max(lags) * 1000:.1f} ms)"
    )
    assert len(stamps) == 400
    assert set(granted) == set(ledger)
    assert busiest <= bound
    # The rate itself is exact: 400 sends at 50/s after a burst of one take 399/50 s.
    assert stamps[-1] - stamps[0] >= 399 / 50 - 0.2

"""Scale-out: 2 API + 2 worker processes on PostgreSQL and Redis, 10,000 jobs with 10% repeated
idempotency keys (repeats sent to the other API process) and per-user caps, workers kill -9ed at
random: every acknowledged job ends final, nothing is sent twice, no cap is exceeded."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from tests.harness import API_KEY
from tests.processes import GatewayProcess, start_together

pytestmark = pytest.mark.slow
USERS = 1000
CAP = 3


def _ledger(workdir: Path) -> collections.Counter[str]:
    path = workdir / "sandbox-ledger.ndjson"
    if not path.exists():
        return collections.Counter()
    entries = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return collections.Counter(str(e["ref"]) for e in entries if "ref" in e)


async def test_two_apis_two_workers_kill_9_caps_and_repeated_keys(
    tmp_path: Path,
    fresh_postgres: str,
    fresh_redis: str,
) -> None:
    rng = random.Random(3)
    apis = [GatewayProcess(tmp_path, role="api") for _ in range(2)]
    env = {
        "GATEWAY_DATABASE_URL": fresh_postgres,
        "GATEWAY_REDIS_URL": fresh_redis,
        "GATEWAY_LIMITS": json.dumps(
            {"caps": {"marketing": {"sms": [f"{CAP}/day"]}}, "quiet_hours": {"marketing": "00:00-24:00"}}
        ),
        "GATEWAY_SANDBOX__LATENCY_MS": "20",
        "GATEWAY_SANDBOX__RECEIPT_URL": f"{apis[0].url}/v1/receipts/sandbox",
        "GATEWAY_WORKER__LEASE_SECONDS": "2",
        "GATEWAY_LOG_LEVEL": "warning",
    }
    for api in apis:
        api.env.update(env)
    workers = [GatewayProcess(tmp_path, env, role="worker") for _ in range(2)]
    jobs = [
        (
            f"key-{n}",
            {
                "channel": "sms",
                "to": f"+86139{n:08d}",
                "user_id": f"user-{n % USERS}",
                "content": {"text": f"Offer {n}"},
            },
        )
        for n in range(9000)
    ]
    repeats = [jobs[rng.randrange(9000)] for _ in range(1000)]
    acknowledged: dict[str, str] = {}
    kills = 0
    try:
        apis[0].start()  # the schema, before the others
        start_together([apis[1], *workers])
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:

            async def submit(api: GatewayProcess, chunk: list[tuple[str, dict[str, object]]]) -> None:
                body = {"messages": [{**job, "idempotency_key": key} for key, job in chunk]}
                async with session.post(api.url + "/v1/messages/batch", json=body) as response:
                    assert response.status == 200
                    for item in (await response.json())["results"]:
                        assert item["status"] == 202, item
                        key = chunk[item["index"]][0]
                        assert acknowledged.setdefault(key, item["id"]) == item["id"]

            plan = jobs + repeats
            chunks = [plan[i : i + 250] for i in range(0, len(plan), 250)]
            for index, chunk in enumerate(chunks):
                await submit(apis[index % 2], chunk)
                if index in (12, 28):  # kill a worker mid-stream, start a new one
                    victim = workers[index % 2]
                    victim.kill9()
                    kills += 1
                    await asyncio.sleep(0.2)
                    workers[index % 2] = GatewayProcess(tmp_path, env, role="worker").start()
        deadline = time.monotonic() + 180
        conn = await asyncpg.connect(fresh_postgres)
        try:
            while time.monotonic() < deadline:
                pending = await conn.fetchval(
                    "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending', 'sent')"
                )
                if pending == 0:
                    break
                await asyncio.sleep(1)
            rows = await conn.fetch("SELECT id, user_id, status, reason FROM messages")
        finally:
            await conn.close()
    finally:
        for process in (*apis, *workers):
            process.stop_quietly()
    sends = _ledger(tmp_path)
    statuses = collections.Counter(r["status"] for r in rows)
    per_user = collections.Counter(r["user_id"] for r in rows if r["id"] in sends)
    print(
        f"\n10,000 requests (9,000 distinct), 2 API + 2 workers, {kills} kill -9s: {dict(statuses)}; "
        f"provider sends {sum(sends.values())}"
    )
    assert len(acknowledged) == 9000 == len(rows), "a repeated key made a second message"
    assert {r["id"] for r in rows} == set(acknowledged.values())
    assert max(sends.values()) == 1, "a message reached the provider twice"
    assert max(per_user.values()) <= CAP, "a cap was exceeded"
    assert set(statuses) <= {"delivered", "deferred", "unknown"}
    assert statuses["delivered"] == sum(sends.values()) == USERS * CAP
    assert {r["reason"] for r in rows if r["status"] == "deferred"} == {"limit.cap"}

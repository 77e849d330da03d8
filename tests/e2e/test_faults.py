"""Faults with real processes: the provider answers 500s, then takes messages but answers too late,
then is slow, while the gateway is kill -9ed at random points of 2,000 sends. Afterwards every
acknowledged job is final; transactional jobs reached the provider at least once, marketing jobs at
most once, and every duplicate is one the policy allows (transactional, resent after a hand-off of
unknown outcome)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import sqlite3
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.http import Recorded, post
from tests.fakes.twilio import FakeTwilio
from tests.harness import API_KEY
from tests.processes import GatewayProcess
from tests.servers import free_port

pytestmark = pytest.mark.slow
JOBS = 2000


class TroubledTwilio(FakeTwilio):
    """Twilio that, on cue, creates the message and then answers after the caller gave up (the
    classic lost hand-off), or answers slowly but in time."""

    def __init__(self) -> None:
        super().__init__()
        self.late_answers = 0
        self.slow_answers = 0

    async def answer(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        response = await super().answer(request, recorded)
        if self.late_answers > 0:
            self.late_answers -= 1
            await asyncio.sleep(3.0)  # past the adapter's 1.5 s timeout: the message exists, we never hear
        elif self.slow_answers > 0:
            self.slow_answers -= 1
            await asyncio.sleep(0.4)
        return response


def _reference(fake: FakeTwilio, sid: str) -> str:
    url = fake.created[sid].first("StatusCallback") or ""
    return parse_qs(urlsplit(url).query)["ref"][0]


async def _report_deliveries(fake: FakeTwilio, stop: asyncio.Event) -> None:
    """Twilio keeps reporting after our crashes: delivered callbacks until each one is taken."""
    reported: set[str] = set()
    while not stop.is_set():
        for sid in list(fake.created):
            if sid in reported:
                continue
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                url, body, headers = fake.status_callback(sid, "delivered")
                if await post(url, body, headers) < 300:
                    reported.add(sid)
        await asyncio.sleep(0.2)


def _rows(workdir: Path) -> list[tuple[str, str, str, str | None]]:
    with contextlib.closing(sqlite3.connect(workdir / "gateway.db")) as conn:
        return conn.execute("SELECT id, category, status, reason FROM messages").fetchall()


async def test_outage_lost_answers_slowness_and_kill_9(tmp_path: Path) -> None:
    rng = random.Random(11)
    async with TroubledTwilio() as fake:
        port = free_port()
        providers = {
            "twilio": {
                "account_sid": fake.account_sid,
                "auth_token": fake.auth_token,
                "from_number": "+14155550100",
                "api_base_url": fake.url,
                "connect_timeout": 1.0,
                "timeout": 1.5,
            }
        }
        env = {
            "GATEWAY_PROVIDERS": json.dumps(providers),
            "GATEWAY_SANDBOX__ENABLED": "false",
            "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_WORKER__LEASE_SECONDS": "2",
            "GATEWAY_WORKER__CONCURRENCY": "40",
            "GATEWAY_WORKER__BATCH_SIZE": "40",
            "GATEWAY_WORKER__BACKOFF_BASE_SECONDS": "0.2",
            "GATEWAY_WORKER__BACKOFF_MAX_SECONDS": "1",
            "GATEWAY_WORKER__MAX_ATTEMPTS": "20",
            "GATEWAY_WORKER__RETRY_BUDGET_FLOOR": "100000",
            "GATEWAY_LOG_LEVEL": "warning",
        }
        fake.fail_next(150, 500)  # phase 1: an outage
        gateway = GatewayProcess(tmp_path, env, port=port).start()
        stop = asyncio.Event()
        reporter = asyncio.create_task(_report_deliveries(fake, stop))
        categories: dict[str, str] = {}
        kills = 0
        try:
            jobs = [
                {
                    "channel": "sms",
                    "to": f"+86139{n:08d}",
                    "content": {"text": f"Order {n} update"},
                    "category": "transactional" if n % 2 else "marketing",
                    "idempotency_key": f"job-{n}",
                }
                for n in range(JOBS)
            ]
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:
                for start in range(0, JOBS, 500):
                    async with session.post(
                        gateway.url + "/v1/messages/batch", json={"messages": jobs[start : start + 500]}
                    ) as response:
                        for item in (await response.json())["results"]:
                            assert item["status"] == 202
                            categories[item["id"]] = jobs[start + item["index"]]["category"]
            for phase in ("late", "slow", "calm"):
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                gateway.kill9()
                kills += 1
                if phase == "late":
                    fake.late_answers = 60  # phase 2: taken by the provider, but the answer never arrives
                elif phase == "slow":
                    fake.slow_answers = 200  # phase 3: slow but in time
                await asyncio.sleep(0.3)
                gateway = GatewayProcess(tmp_path, env, port=port).start()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if all(status in ("delivered", "unknown", "failed") for _, _, status, _ in _rows(tmp_path)):
                    break
                await asyncio.sleep(0.5)
        finally:
            stop.set()
            await reporter
            gateway.stop_quietly()

    rows = _rows(tmp_path)
    sends = collections.Counter(_reference(fake, sid) for sid in fake.created)
    statuses = collections.Counter((category, status) for _, category, status, _ in rows)
    duplicates = {mid: n for mid, n in sends.items() if n > 1}
    print(
        f"\n{JOBS} jobs, {kills} kill -9s, provider requests {len(fake.requests)}, created {len(fake.created)}; "
        f"statuses {dict(statuses)}; duplicates {len(duplicates)} "
        f"(transactional {sum(1 for m in duplicates if categories[m] == 'transactional')})"
    )
    assert len(rows) == JOBS == len(categories)
    assert all(status in ("delivered", "unknown") for _, _, status, _ in rows), statuses
    transactional = [mid for mid, category in categories.items() if category == "transactional"]
    marketing = [mid for mid, category in categories.items() if category == "marketing"]
    assert all(sends[mid] >= 1 for mid in transactional), "a transactional job never reached the provider"
    assert all(sends[mid] <= 1 for mid in marketing), "a marketing job reached the provider twice"
    assert all(categories[mid] == "transactional" for mid in duplicates)
    unknown = [mid for mid, _, status, _ in rows if status == "unknown"]
    assert all(categories[mid] == "marketing" for mid in unknown)
    assert statuses[("transactional", "delivered")] == len(transactional)

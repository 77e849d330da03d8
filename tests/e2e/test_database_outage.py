"""PostgreSQL stops under load: accepts and receipts are answered 503 problem+json with Retry-After
(never a 500), the outage is logged once per interval with a count instead of a traceback per
request, and once PostgreSQL is back the same gateway process serves again, worker included."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from providers.sandbox import SIGNATURE_HEADER, sign
from tests.harness import API_KEY, SMS
from tests.processes import GatewayProcess
from tests.servers import PostgresServer, own_postgres_server

pytestmark = pytest.mark.slow

CLIENTS = 16
OUTAGE_SECONDS = 4.0
LOG_INTERVAL_SECONDS = 1.0


class Load:
    """Clients that keep sending jobs and receipts, recording each answer under the current phase."""

    def __init__(self, url: str, receipt_secret: str) -> None:
        self.url = url
        self.secret = receipt_secret
        self.phase = "up"
        self.answers: list[dict[str, Any]] = []
        self.stopping = asyncio.Event()
        self._keys = itertools.count()

    async def run(self) -> None:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:
            await asyncio.gather(*(self._client(session, n) for n in range(CLIENTS)))

    async def _client(self, session: aiohttp.ClientSession, n: int) -> None:
        while not self.stopping.is_set():
            phase = self.phase
            if n == 0:  # one client plays the provider, sending receipts
                body = orjson.dumps({"receipts": [{"sid": f"SBX-unknown-{next(self._keys)}", "status": "delivered"}]})
                request = session.post(
                    self.url + "/v1/receipts/sandbox",
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        SIGNATURE_HEADER: sign(self.secret, int(time.time()), body),
                    },
                )
                kind = "receipt"
            else:
                key = f"k-{next(self._keys)}"
                request = session.post(self.url + "/v1/messages", json=SMS, headers={"Idempotency-Key": key})
                kind = "accept"
            async with request as response:
                text = await response.text()
                self.answers.append(
                    {
                        "phase": phase,
                        "kind": kind,
                        "status": response.status,
                        "content_type": response.content_type,
                        "retry_after": response.headers.get("Retry-After"),
                        "body": text,
                    }
                )

    def of(self, phase: str) -> list[dict[str, Any]]:
        return [a for a in self.answers if a["phase"] == phase]


async def served_again(load: Load, within: float) -> float:
    """Seconds until both an accept and a receipt were answered 2xx after the restart."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        back = load.of("back")
        if {a["kind"] for a in back if a["status"] < 300} == {"accept", "receipt"}:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"not served again within {within} s: {Counter(a['status'] for a in load.of('back'))}")


def log_events(gateway: GatewayProcess, start: int = 0) -> list[dict[str, Any]]:
    events = []
    for line in gateway.log_path.read_bytes()[start:].splitlines():
        if line.startswith(b"{"):
            events.append(orjson.loads(line))
    return events


async def receipt_secret(pg: PostgresServer) -> str:
    conn = await asyncpg.connect(pg.url)
    try:
        return str(await conn.fetchval("SELECT value FROM secrets WHERE name = 'sandbox_receipts'"))
    finally:
        await conn.close()


async def test_postgresql_stopped_under_load(tmp_path: Path) -> None:
    with own_postgres_server() as pg:
        if pg is None:
            pytest.skip("no PostgreSQL binaries here")
        env = {
            "GATEWAY_DATABASE_URL": pg.url,
            "GATEWAY_DB_OUTAGE_LOG_SECONDS": str(LOG_INTERVAL_SECONDS),
            "GATEWAY_SANDBOX__LATENCY_MS": "1",
            "GATEWAY_SANDBOX__RECEIPT_DELAY_MS": "10",
            "GATEWAY_WORKER__POLL_INTERVAL_MS": "20",
        }
        gateway = GatewayProcess(tmp_path, env).start()
        try:
            load = Load(gateway.url, await receipt_secret(pg))
            running = asyncio.create_task(load.run())
            await asyncio.sleep(1.0)
            log_at_stop = gateway.log_path.stat().st_size
            pg.stop()
            load.phase = "down"
            await asyncio.sleep(OUTAGE_SECONDS)
            log_during = log_events(gateway, log_at_stop)
            log_bytes_during = gateway.log_path.stat().st_size - log_at_stop
            pg.start()
            load.phase = "back"
            recovered_after = await served_again(load, within=30.0)
            load.stopping.set()
            await running
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:
                async with session.post(gateway.url + "/v1/messages", json=SMS) as response:
                    assert response.status == 202
                    message_id = (await response.json())["id"]
                for _ in range(200):  # the worker, too, works again: the new job is delivered
                    async with session.get(f"{gateway.url}/v1/messages/{message_id}") as response:
                        if (await response.json())["status"] == "delivered":
                            break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("a job accepted after the outage was not delivered")
            log_after = log_events(gateway)
        finally:
            gateway.stop_quietly()

    up, down = load.of("up"), load.of("down")
    statuses = Counter(a["status"] for a in load.answers)
    print(f"\nanswers {dict(statuses)}; up {len(up)}, down {len(down)}; served again after {recovered_after:.1f} s")
    assert 500 not in statuses, [a["body"] for a in load.answers if a["status"] == 500][:1]
    assert 202 in {a["status"] for a in up}
    # Requests sent just before the stop may meet it; requests already past the database when it
    # stopped may still succeed; every other answer in the outage is a 503.
    assert {a["status"] for a in up + down} <= {200, 202, 503}
    refused = [a for a in down if a["status"] == 503]
    assert len(refused) >= 50, "the load should keep arriving during the outage"
    assert {a["kind"] for a in refused} == {"accept", "receipt"}
    for answer in refused:
        assert answer["content_type"] == "application/problem+json"
        assert answer["retry_after"] == "5"
        assert orjson.loads(answer["body"])["type"] == "/problems/unavailable"

    unhandled = [e for e in log_after if e.get("event") == "unhandled error"]
    assert unhandled == [], "a database outage is not an unhandled error"
    # One line when it starts and one per interval, for writes and for reads each.
    outage_lines = Counter(e["operations"] for e in log_during if e.get("event") == "database unavailable")
    assert outage_lines["writes"] >= 1
    assert max(outage_lines.values()) <= OUTAGE_SECONDS / LOG_INTERVAL_SECONDS + 2
    assert len(refused) >= 10 * outage_lines.total(), "logged per request, not per interval"
    assert log_bytes_during < 100_000, f"{log_bytes_during} bytes of log in a {OUTAGE_SECONDS} s outage"
    ended = Counter(e["operations"] for e in log_after if e.get("event") == "database available again")
    assert ended == Counter(set(outage_lines)), "the end of the outage is logged once"

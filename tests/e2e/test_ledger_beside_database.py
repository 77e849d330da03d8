"""The sandbox's ledger lives beside the database by default, so processes started from different
folders share it: a worker started elsewhere after a kill -9 asks it what the "provider" took and
neither loses nor resends a hand-off."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.harness import API_KEY
from tests.processes import GatewayProcess

pytestmark = pytest.mark.slow

LEDGER = "gateway-sandbox.ndjson"  # the default name
ENV = {
    # Slow enough that the kill lands with hand-offs in flight.
    "GATEWAY_SANDBOX__LATENCY_MS": "200",
    "GATEWAY_SANDBOX__RECEIPT_DELAY_MS": "50",
    "GATEWAY_WORKER__CONCURRENCY": "40",
    "GATEWAY_WORKER__BATCH_SIZE": "20",
    "GATEWAY_WORKER__LEASE_SECONDS": "2",
    # Marketing jobs whose hand-off nobody can confirm become `unknown`: only the ledger can tell.
    "GATEWAY_WORKER__HANDOFF_MARKETING": "unknown",
}


def started_from(folder: Path, data: Path, port: int | None = None) -> GatewayProcess:
    folder.mkdir(exist_ok=True)
    process = GatewayProcess(data, ENV, port=port, cwd=folder)
    del process.env["GATEWAY_SANDBOX__LEDGER_PATH"]  # the default, as an operator leaves it
    return process


def ledger_refs(path: Path) -> collections.Counter[str]:
    if not path.exists():
        return collections.Counter()
    entries = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return collections.Counter(entry["ref"] for entry in entries if "ref" in entry)


def recovered_handoffs(data: Path) -> int:
    with contextlib.closing(sqlite3.connect(data / "gateway.db")) as conn:
        return int(conn.execute("SELECT count(*) FROM events WHERE reason LIKE 'recovered.%'").fetchone()[0])


def statuses(data: Path) -> collections.Counter[str]:
    with contextlib.closing(sqlite3.connect(data / "gateway.db")) as conn:
        return collections.Counter(status for (status,) in conn.execute("SELECT status FROM messages"))


async def test_a_worker_started_elsewhere_finds_the_ledger_of_the_one_killed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    jobs = [
        {"channel": "sms", "to": f"+86138{n:08d}", "content": {"text": f"Spring sale {n}"}, "idempotency_key": f"j{n}"}
        for n in range(200)
    ]
    gateway = started_from(tmp_path / "first", data).start()
    try:
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session,
            session.post(gateway.url + "/v1/messages/batch", json={"messages": jobs}) as response,
        ):
            assert [item["status"] for item in (await response.json())["results"]] == [202] * 200
        for _ in range(1000):  # kill once the first hand-offs reached the "provider"
            if ledger_refs(data / LEDGER):
                break
            await asyncio.sleep(0.01)
        gateway.kill9()
        gateway = started_from(tmp_path / "second", data, port=gateway.port).start()
        for _ in range(600):
            if set(statuses(data)) <= {"delivered", "unknown", "failed"}:
                break
            await asyncio.sleep(0.1)
    finally:
        gateway.stop_quietly()

    assert recovered_handoffs(data) > 0, "the kill should cut hand-offs in flight"
    assert not (tmp_path / "first" / LEDGER).exists()
    assert not (tmp_path / "second" / LEDGER).exists()
    sends = ledger_refs(data / LEDGER)
    assert statuses(data) == {"delivered": 200}, "a hand-off cut by the kill was not found in the ledger"
    assert len(sends) == 200 and max(sends.values()) == 1, "a message reached the provider twice"

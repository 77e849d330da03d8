"""A job answered 202 survives kill -9 and is dispatched exactly once; repeated keys make no duplicates."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.harness import API_KEY
from tests.processes import GatewayProcess

pytestmark = pytest.mark.slow

ENV = {
    # Slow enough that the kill lands mid-dispatch, with many hand-offs in flight.
    "GATEWAY_SANDBOX__LATENCY_MS": "200",
    "GATEWAY_SANDBOX__RECEIPT_DELAY_MS": "50",
    "GATEWAY_WORKER__CONCURRENCY": "40",
    "GATEWAY_WORKER__BATCH_SIZE": "20",
    "GATEWAY_WORKER__LEASE_SECONDS": "2",
}


def _job(n: int) -> dict[str, Any]:
    return {
        "channel": "sms",
        "to": f"+86138{n % 10:01d}{n:07d}"[:14],
        "content": {"text": f"Your code is {n:06d}"},
        "campaign": "crash",
        "category": "transactional" if n % 3 == 0 else "marketing",
    }


async def _post(session: aiohttp.ClientSession, url: str, key: str, body: dict[str, Any]) -> tuple[int, str | None]:
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key}
    async with session.post(url + "/v1/messages", json=body, headers=headers) as response:
        payload = await response.json(content_type=None)
        return response.status, payload.get("id")


def _ledger(workdir: Path) -> collections.Counter[str]:
    path = workdir / "sandbox-ledger.ndjson"
    entries = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return collections.Counter(entry["ref"] for entry in entries if "ref" in entry)


def _rows(workdir: Path) -> list[tuple[str, str, str, str | None]]:
    with contextlib.closing(sqlite3.connect(workdir / "gateway.db")) as conn:
        return conn.execute("SELECT id, idempotency_key, status, reason FROM messages").fetchall()


async def test_kill_9_mid_dispatch_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(7)
    unique = [f"job-{n}" for n in range(900)]
    requests = [(key, _job(n)) for n, key in enumerate(unique)]
    repeats = [requests[rng.randrange(900)] for _ in range(100)]
    plan = requests + repeats
    rng.shuffle(plan)

    acknowledged: dict[str, str] = {}
    lost_in_crash: list[tuple[str, dict[str, Any]]] = []
    gateway = GatewayProcess(tmp_path, ENV).start()
    try:
        async with aiohttp.ClientSession() as session:
            queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
            for item in plan:
                queue.put_nowait(item)
            killed = asyncio.Event()

            async def client() -> None:
                while not queue.empty():
                    key, body = queue.get_nowait()
                    if killed.is_set():
                        lost_in_crash.append((key, body))
                        continue
                    try:
                        status, message_id = await _post(session, gateway.url, key, body)
                    except (aiohttp.ClientError, TimeoutError):
                        lost_in_crash.append((key, body))  # unanswered: the client will retry it
                        continue
                    if status == 409:
                        queue.put_nowait((key, body))
                        await asyncio.sleep(0.01)
                        continue
                    assert status == 202
                    assert acknowledged.setdefault(key, message_id) == message_id
                    if len(acknowledged) == 500 and not killed.is_set():
                        killed.set()
                        # Mid-dispatch: once the first hand-offs have reached the provider (the
                        # sandbox takes 100-300 ms), however fast the 500 were accepted.
                        for _ in range(1000):
                            if sum(_ledger(tmp_path).values()) > 0:
                                break
                            await asyncio.sleep(0.01)
                        gateway.kill9()

            await asyncio.gather(*(client() for _ in range(16)))
            assert killed.is_set()
            dispatched_before = sum(_ledger(tmp_path).values())
            assert 0 < dispatched_before < 900, "the kill should land mid-dispatch"

            gateway = GatewayProcess(tmp_path, ENV, port=gateway.port).start()
            # A real client retries what went unanswered with the same key; and replays keep their ids.
            for key, body in lost_in_crash + repeats[:20]:
                status, message_id = await _post(session, gateway.url, key, body)
                assert status == 202
                assert acknowledged.setdefault(key, message_id) == message_id

        async def settled() -> bool:
            return all(status in ("delivered", "unknown", "failed") for _, _, status, _ in _rows(tmp_path))

        for _ in range(300):
            if await settled():
                break
            await asyncio.sleep(0.1)
        rows = _rows(tmp_path)
    finally:
        gateway.stop_quietly()

    ledger = _ledger(tmp_path)
    with contextlib.closing(sqlite3.connect(tmp_path / "gateway.db")) as conn:
        recovered = dict(
            conn.execute(
                "SELECT reason, count(*) FROM events WHERE reason LIKE 'recovered.%' GROUP BY reason"
            ).fetchall()
        )
    statuses = collections.Counter(status for _, _, status, _ in rows)
    reasons = collections.Counter(reason for _, _, _, reason in rows)
    print(
        f"\nacknowledged={len(acknowledged)} unanswered-at-kill={len(lost_in_crash)} "
        f"dispatched-before-kill={dispatched_before} statuses={dict(statuses)} "
        f"ledger-sends={sum(ledger.values())} reasons={dict(reasons)} hand-offs-recovered={recovered}"
    )
    assert len(acknowledged) == 900
    assert len(rows) == 900, "a repeated key created a second message"
    assert {key for _, key, _, _ in rows} == set(unique)
    assert {mid for _, mid in acknowledged.items()} == {mid for mid, _, _, _ in rows}
    assert statuses == {"delivered": 900}, "every acknowledged job was dispatched and delivered"
    assert set(ledger) == {mid for mid, _, _, _ in rows}, "every message reached the provider"
    assert max(ledger.values()) == 1, "a message reached the provider twice"
    assert sum(recovered.values()) > 0, "the kill should catch hand-offs in flight"


async def test_sigterm_finishes_in_flight_work_and_exits_cleanly(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, ENV).start()
    try:
        async with aiohttp.ClientSession() as session:
            ids = [
                mid
                for _, mid in await asyncio.gather(
                    *(_post(session, gateway.url, f"t-{n}", _job(n)) for n in range(200))
                )
            ]
        assert gateway.terminate() == 0
        log = gateway.log_path.read_text()
        assert '"event":"gateway stopped"' in log
        handed_off = {mid for mid, _, status, _ in _rows(tmp_path) if status not in ("queued",)}
        # Nothing is left mid hand-off after a graceful stop.
        assert all(status != "sending" for _, _, status, _ in _rows(tmp_path))
        gateway = GatewayProcess(tmp_path, ENV, port=gateway.port).start()
        for _ in range(200):
            if all(status == "delivered" for _, _, status, _ in _rows(tmp_path)):
                break
            await asyncio.sleep(0.1)
    finally:
        gateway.stop_quietly()
    assert {mid for mid, _, status, _ in _rows(tmp_path) if status == "delivered"} == set(ids)
    assert max(_ledger(tmp_path).values()) == 1
    assert handed_off, "some work was in progress when SIGTERM arrived"

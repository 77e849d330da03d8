"""`gateway serve --processes 2` as real processes: several API processes answer on one port, the
supervisor restarts a child killed with -9, children die with a killed supervisor, and SIGTERM
drains them all; nothing acknowledged is lost and nothing reaches the provider twice."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import os
import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.harness import API_KEY
from tests.processes import GatewayProcess, alive, child_pids, connection_owners

pytestmark = pytest.mark.slow

ENV = {
    # Slow hand-offs, so a kill lands while some are in flight.
    "GATEWAY_SANDBOX__LATENCY_MS": "200",
    "GATEWAY_SANDBOX__RECEIPT_DELAY_MS": "50",
    "GATEWAY_WORKER__CONCURRENCY": "40",
    "GATEWAY_WORKER__BATCH_SIZE": "20",
    "GATEWAY_WORKER__LEASE_SECONDS": "2",
}
SERVE = ("--processes", "2", "--workers", "1")


def _serve(tmp_path: Path, port: int | None = None) -> GatewayProcess:
    return GatewayProcess(tmp_path, ENV, port=port, serve_args=SERVE).start()


def _job(n: int) -> dict[str, Any]:
    return {"channel": "sms", "to": f"+86138{n:08d}", "content": {"text": f"Your code is {n:06d}"}}


async def _submit(url: str, count: int, prefix: str = "k") -> list[str]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:

        async def one(n: int) -> str:
            headers = {"Idempotency-Key": f"{prefix}-{n}"}
            async with session.post(url + "/v1/messages", json=_job(n), headers=headers) as response:
                assert response.status == 202
                return str((await response.json())["id"])

        return list(await asyncio.gather(*(one(n) for n in range(count))))


def _ledger(workdir: Path) -> collections.Counter[str]:
    path = workdir / "sandbox-ledger.ndjson"
    if not path.exists():
        return collections.Counter()
    entries = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return collections.Counter(str(e["ref"]) for e in entries if "ref" in e)


def _statuses(workdir: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(workdir / "gateway.db")) as conn:
        return dict(conn.execute("SELECT id, status FROM messages").fetchall())


def _children(gateway: GatewayProcess) -> dict[str, set[int]]:
    """Living children by role, as the supervisor logged starting them."""
    assert gateway.proc is not None
    living = child_pids(gateway.proc.pid)
    roles: dict[str, set[int]] = {"api": set(), "worker": set(), "callbacks": set()}
    for line in gateway.log_path.read_bytes().splitlines():
        if b'"gateway process started"' in line:
            entry = orjson.loads(line)
            if entry["child_pid"] in living:
                roles[entry["role"]].add(entry["child_pid"])
    return roles


async def _until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        await asyncio.sleep(0.1)


async def _mid_dispatch(workdir: Path) -> None:
    await _until(lambda: sum(_ledger(workdir).values()) > 0, 15, "the first hand-off")


async def test_two_api_processes_answer_on_one_port_and_deliver_end_to_end(tmp_path: Path) -> None:
    gateway = _serve(tmp_path)
    try:
        await _until(lambda: len(_children(gateway)["api"]) == 2, 10, "two API processes")
        api = _children(gateway)["api"]
        await _until(lambda: set(connection_owners(api, gateway.port, "0A")) == api, 15, "both listening")
        connections = [http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5) for _ in range(24)]
        for connection in connections:
            connection.request("GET", "/healthz")
            assert connection.getresponse().read() and True
        owners = connection_owners(api | _children(gateway)["worker"], gateway.port)
        for connection in connections:
            connection.close()
        assert set(owners) == api, f"connections spread over both API processes, none to the worker: {owners}"
        ids = await _submit(gateway.url, 60)
        await _until(lambda: set(_statuses(tmp_path).values()) == {"delivered"}, 20, "every job delivered")
    finally:
        gateway.stop_quietly()
    ledger = _ledger(tmp_path)
    assert set(ledger) == set(ids)
    assert max(ledger.values()) == 1


async def test_a_child_killed_with_9_is_restarted_and_nothing_is_lost_or_sent_twice(tmp_path: Path) -> None:
    gateway = _serve(tmp_path)
    try:
        await _until(lambda: len(_children(gateway)["worker"]) == 1, 10, "the worker process")
        (worker,) = _children(gateway)["worker"]
        ids = await _submit(gateway.url, 200)
        await _mid_dispatch(tmp_path)
        os.kill(worker, signal.SIGKILL)
        await _until(lambda: _children(gateway)["worker"] - {worker}, 10, "a new worker process")
        victim = min(_children(gateway)["api"])
        os.kill(victim, signal.SIGKILL)
        await _until(lambda: len(_children(gateway)["api"] - {victim}) == 2, 10, "a new API process")
        ids += await _submit(gateway.url, 20, prefix="after")
        await _until(lambda: set(_statuses(tmp_path).values()) == {"delivered"}, 25, "every job delivered")
        log = gateway.log_path.read_text()
    finally:
        gateway.stop_quietly()
    assert log.count('"gateway process died; restarting"') == 2
    assert f'"child_pid":{worker},"exit_code":-9' in log
    ledger = _ledger(tmp_path)
    assert set(ledger) == set(ids) == set(_statuses(tmp_path))
    assert max(ledger.values()) == 1, "a message reached the provider twice"


async def test_the_supervisor_killed_with_9_takes_its_children_with_it(tmp_path: Path) -> None:
    gateway = _serve(tmp_path)
    try:
        await _until(lambda: len(_children(gateway)["callbacks"]) == 1, 10, "the callbacks process")
        await _until(lambda: len(_children(gateway)["worker"]) == 1, 10, "the worker process")
        children = set().union(*_children(gateway).values())
        ids = await _submit(gateway.url, 300)
        await _mid_dispatch(tmp_path)
        gateway.kill9()
        await _until(lambda: not any(alive(pid) for pid in children), 15, "every child gone")
        sent_by_then = _ledger(tmp_path)
        await asyncio.sleep(1.0)
        assert _ledger(tmp_path) == sent_by_then, "an orphan went on sending"
        assert "sending" not in _statuses(tmp_path).values(), "the children handed back their work"
        gateway = _serve(tmp_path, port=gateway.port)
        await _until(lambda: set(_statuses(tmp_path).values()) == {"delivered"}, 20, "every job delivered")
    finally:
        gateway.stop_quietly()
    ledger = _ledger(tmp_path)
    assert set(ledger) == set(ids)
    assert max(ledger.values()) == 1, "a message reached the provider twice"


async def test_sigterm_drains_every_child_and_exits_cleanly(tmp_path: Path) -> None:
    gateway = _serve(tmp_path)
    try:
        # Each of the 4 children started (a child still importing when SIGTERM comes has nothing to drain
        # and dies of it without a word).
        await _until(lambda: gateway.log_path.read_text().count('"event":"gateway started"') == 4, 30, "every child")
        children = set().union(*_children(gateway).values())
        await _submit(gateway.url, 200)
        await _mid_dispatch(tmp_path)
        assert gateway.terminate(timeout=25) == 0
        log = gateway.log_path.read_text()
        statuses = _statuses(tmp_path)
    finally:
        gateway.stop_quietly()
    assert not any(alive(pid) for pid in children)
    # 2 API processes, the worker, the callbacks process, the supervisor
    assert log.count('"event":"gateway stopped"') == 5
    assert '"gateway process died' not in log
    assert "sending" not in statuses.values(), "nothing left mid hand-off"
    assert {"sent", "delivered"} & set(statuses.values()), "some work was handed off before SIGTERM"
    assert max(_ledger(tmp_path).values()) == 1


def _state_folders(tmp: Path) -> set[str]:
    return {p.name for p in tmp.iterdir() if p.name.startswith("gateway-state-")}


@pytest.fixture
def short_tmpdir() -> Iterator[Path]:
    """A $TMPDIR short enough for the State's socket (pytest's own folders may not be: then the
    supervisor puts the socket's folder elsewhere, tests/integration/test_state_directories.py)."""
    path = Path(tempfile.mkdtemp(prefix="gw-tmp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_the_state_folder_a_killed_supervisor_left_is_removed_by_the_next_start(
    tmp_path: Path, short_tmpdir: Path
) -> None:
    tmp = short_tmpdir
    env = {**ENV, "TMPDIR": str(tmp)}
    gateway = GatewayProcess(tmp_path, env, serve_args=SERVE).start(timeout=90)
    try:
        await _until(lambda: len(_children(gateway)["callbacks"]) == 1, 10, "the callbacks process")
        await _until(lambda: len(_children(gateway)["worker"]) == 1, 10, "the worker process")
        children = set().union(*_children(gateway).values())
        [left] = _state_folders(tmp)
        gateway.kill9()
        await _until(lambda: not any(alive(pid) for pid in children), 15, "every child gone")
        assert _state_folders(tmp) == {left}, "a killed supervisor cleans nothing up"
        gateway = GatewayProcess(tmp_path, env, port=gateway.port, serve_args=SERVE)
        gateway.start(timeout=90)  # (assigned first: stopped in `finally` even if it never gets ready)
        await _until(lambda: len(_children(gateway)["worker"]) == 1, 30, "the new worker process")
        [now] = _state_folders(tmp)
        assert now != left
        ids = await _submit(gateway.url, 20, prefix="after")
        await _until(lambda: set(_statuses(tmp_path).values()) == {"delivered"}, 20, "every job delivered")
        assert gateway.terminate(timeout=25) == 0
    finally:
        gateway.stop_quietly()
    assert _state_folders(tmp) == set(), "a supervisor stopped with SIGTERM removes its own"
    assert set(_ledger(tmp_path)) == set(ids)

"""New work reaches worker processes: NOTIFY from the committing process and LISTEN in the worker on
PostgreSQL (polling turned off here, so only the notification can wake it), polling on SQLite and
whenever LISTEN is off; the listener comes back after the server restarts; one notification per
accept commit, however many jobs it carried."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.domain.models import DISPATCHABLE, Status
from gateway.state.memory import MemoryState
from gateway.store.store import SqlStore
from gateway.store.wakeups import CHANNEL
from providers.sandbox import SandboxProvider
from tests.integration.direct import build_worker, message_row, running, wait_for_status
from tests.servers import own_postgres_server

NEVER_POLL_MS = 3_600_000.0  # an hour: within a test only a notification wakes the worker


def sandbox() -> SandboxProvider:
    return SandboxProvider(receipt_url=None, secret="s", latency_ms=0, seed=7)


def handed_over(status: str) -> bool:
    return status not in DISPATCHABLE and status != Status.SENDING


@contextlib.asynccontextmanager
async def opened(url: str, listen_url: str | None = None) -> AsyncIterator[SqlStore]:
    store = SqlStore.open(url, synchronous="OFF", listen_url=listen_url)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


async def listening(store: SqlStore, within: float = 20.0) -> None:
    assert store.listener is not None
    await asyncio.wait_for(store.listener.listening.wait(), within)


async def stored_row(store: SqlStore, message_id: str) -> dict[str, Any]:
    row = await store.get_message("default", message_id)
    assert row is not None
    return row


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_an_accept_in_another_process_wakes_a_worker_that_never_polls(database_url: str) -> None:
    async with (
        opened(database_url, listen_url=database_url) as worker_store,
        opened(database_url) as api_store,
        running(build_worker(worker_store, MemoryState(), [sandbox()], poll_interval_ms=NEVER_POLL_MS)),
    ):
        await listening(worker_store)
        await asyncio.sleep(0.2)  # the worker's first claim (at start) has found the queue empty
        row = message_row()
        await api_store.accept([row])
        stored = await wait_for_status(api_store, row["id"], handed_over, within=20)
    assert stored["status"] == Status.SENT


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_without_a_listener_a_worker_that_never_polls_is_not_woken(database_url: str) -> None:
    """The control of the test above: the notification, not something else, woke that worker."""
    async with opened(database_url, listen_url=None) as worker_store, opened(database_url) as api_store:
        assert worker_store.listener is None
        async with running(build_worker(worker_store, MemoryState(), [sandbox()], poll_interval_ms=NEVER_POLL_MS)):
            await asyncio.sleep(0.2)
            row = message_row()
            await api_store.accept([row])
            await asyncio.sleep(1.5)
            assert (await stored_row(api_store, row["id"]))["status"] == Status.QUEUED


async def test_a_job_accepted_by_another_process_is_dispatched_by_polling(database_url: str) -> None:
    """SQLite across processes, or PostgreSQL with LISTEN off: the worker's polling finds the job."""
    async with (
        opened(database_url, listen_url=None) as worker_store,
        opened(database_url) as api_store,
        running(build_worker(worker_store, MemoryState(), [sandbox()], poll_interval_ms=50)),
    ):
        await asyncio.sleep(0.2)
        row = message_row()
        await api_store.accept([row])
        stored = await wait_for_status(api_store, row["id"], handed_over, within=20)
    assert stored["status"] == Status.SENT


async def test_the_listener_comes_back_after_the_database_restarts(tmp_path: Path) -> None:
    with own_postgres_server() as server:
        if server is None:
            pytest.skip("no PostgreSQL binaries here")
        async with opened(server.url, listen_url=server.url) as worker_store:
            assert worker_store.listener is not None
            async with running(build_worker(worker_store, MemoryState(), [sandbox()], poll_interval_ms=NEVER_POLL_MS)):
                await listening(worker_store)
                server.stop()
                deadline = time.monotonic() + 20
                while worker_store.listener.listening.is_set():
                    assert time.monotonic() < deadline, "the listener did not notice the server going away"
                    await asyncio.sleep(0.05)
                server.start()
                await listening(worker_store, within=30)
                assert worker_store.listener.connects == 2
                async with opened(server.url) as api_store:
                    row = message_row()
                    await api_store.accept([row])
                    stored = await wait_for_status(api_store, row["id"], handed_over, within=20)
        assert stored["status"] == Status.SENT


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_one_notification_per_accept_commit_however_many_jobs_it_carries(database_url: str) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.append(args[2]))
        async with opened(database_url) as api_store:
            now = time.time()
            outcomes = await api_store.accept([message_row(now) for _ in range(50)])
            assert [o.kind for o in outcomes] == ["accepted"] * 50
            # A round trip on the listening session: a notification committed before it arrives before its answer.
            await listener.execute("SELECT 1")
            await asyncio.sleep(0.1)
            assert len(heard) == 1
            keyed = [message_row(now, idempotency_key=f"k-{n}", request_hash="h") for n in range(3)]
            assert {o.kind for o in await api_store.accept(keyed)} == {"accepted"}
            await listener.execute("SELECT 1")
            await asyncio.sleep(0.1)
            assert len(heard) == 2
            # Every job a replay of one already stored: nothing new is due, nothing is announced.
            again = [row | {"id": f"{row['id']}x"} for row in keyed]
            assert {o.kind for o in await api_store.accept(again)} == {"replay"}
            await listener.execute("SELECT 1")
            await asyncio.sleep(0.1)
            assert len(heard) == 2
    finally:
        await listener.close()

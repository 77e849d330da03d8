"""Parts of the gateway built by hand on a real SQLite store: no gateway process, no HTTP.

For tests of `Worker`, `PolicyGate` and `NumberPool` on their own: each is given the store, State
and settings it would get from `gateway serve` (gateway/app.py), and the sandbox provider."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.domain.limits import parse_limits
from gateway.domain.models import Job, Status
from gateway.domain.quiet_hours import parse_quiet_hours
from gateway.domain.retry import RetryBudgetPolicy
from gateway.gate import PolicyGate
from gateway.link_tracking import LinkTracker
from gateway.metrics import Metrics
from gateway.number_pool import NumberPool
from gateway.pacer import ThroughputPacer
from gateway.provider_registry import ProviderRegistry
from gateway.retry_budget import RetryBudget
from gateway.settings import WorkerSettings
from gateway.state.base import State
from gateway.store.store import SqlStore
from gateway.worker import Worker
from providers.base import Provider

TENANT = "default"
# Sending allowed round the clock: the tests must not depend on the hour they run at.
ALWAYS_OPEN = {"marketing": {"allowed": "00:00-24:00"}}


@asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'gateway.db'}", synchronous="OFF")
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


def message_row(now: float | None = None, **fields: Any) -> dict[str, Any]:
    """A queued SMS job as the accept path stores it; `fields` override any column."""
    now = time.time() if now is None else now
    row = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "tenant_id": TENANT,
        "idempotency_key": None,
        "request_hash": None,
        "idempotency_expires_at": None,
        "channel": "sms",
        "to_addr": "+14155550123",
        "content": '{"text":"Your code is 1234"}',
        "category": "marketing",
        "user_id": None,
        "campaign": None,
        "variant": None,
        "send_at": None,
        "expires_at": None,
        "fallback": None,
        "metadata": None,
        "tz": None,
        "status": Status.QUEUED.value,
        "reason": None,
        "provider": None,
        "provider_message_id": None,
        "sender": None,
        "attempt_count": 0,
        "next_attempt_at": now,
        "lease_owner": None,
        "lease_until": None,
        "error_code": None,
        "error_message": None,
        "created_at": now,
        "updated_at": now,
    }
    row.update(fields)
    return row


def job_of(row: dict[str, Any]) -> Job:
    """The row as the dispatch path sees it once claimed."""
    fields: dict[str, Any] = {k: v for k, v in row.items() if k in Job.__dataclass_fields__}
    return Job(**{**fields, "status": Status(row["status"])})


def build_gate(
    store: SqlStore,
    state: State,
    *,
    limits: dict[str, Any] | None = None,
    quiet_hours: dict[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> PolicyGate:
    return PolicyGate(
        store,
        state,
        parse_limits(limits),
        parse_quiet_hours(ALWAYS_OPEN if quiet_hours is None else quiet_hours),
        clock=clock,
    )


def build_worker(
    store: SqlStore,
    state: State,
    providers: list[Provider],
    *,
    gate: PolicyGate | None = None,
    numbers: NumberPool | None = None,
    metrics: Metrics | None = None,
    links: LinkTracker | None = None,
    **settings: Any,
) -> Worker:
    """A worker as `gateway serve` assembles it, polling often so tests finish quickly."""
    worker_settings = WorkerSettings(**{"poll_interval_ms": 10.0, "shutdown_grace_seconds": 2.0, **settings})
    gate = gate or build_gate(store, state)
    budget = RetryBudget(state, RetryBudgetPolicy(1.0, 100, 60.0))
    return Worker(
        store,
        ProviderRegistry(providers),
        worker_settings,
        metrics or Metrics(),
        state,
        gate,
        ThroughputPacer(state, parse_limits(None).throughput),
        budget,
        numbers=numbers,
        links=links,
    )


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


async def wait_for_status(
    store: SqlStore, message_id: str, done: Callable[[str], bool], within: float = 10.0
) -> dict[str, Any]:
    """The message once its status satisfies `done` (fails the test after `within` seconds)."""
    return await wait_for_message(store, message_id, lambda row: done(row["status"]), within)


async def wait_for_message(
    store: SqlStore, message_id: str, done: Callable[[dict[str, Any]], bool], within: float = 10.0
) -> dict[str, Any]:
    """The message (with attempts and events) once it satisfies `done`."""
    deadline = time.monotonic() + within
    while True:
        row = await store.get_message(TENANT, message_id)
        assert row is not None, message_id
        if done(row):
            return row
        assert time.monotonic() < deadline, f"{message_id} still {row['status']} ({row.get('reason')})"
        await asyncio.sleep(0.02)

"""`Worker` built directly on a real SQLite store and the sandbox provider (no gateway process)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gateway.domain.models import DISPATCHABLE, FINAL, Status
from gateway.metrics import Metrics
from gateway.number_pool import NumberPool
from gateway.number_settings import NumbersSettings
from gateway.state.memory import MemoryState
from providers.base import ErrorKind
from providers.sandbox import SandboxProvider, SimulatedError
from tests.integration.direct import (
    TENANT,
    build_worker,
    message_row,
    running,
    sqlite_store,
    wait_for_message,
    wait_for_status,
)


def sandbox(**options: Any) -> SandboxProvider:
    """The sandbox without receipts or ledger: what it answers is all a send comes to."""
    return SandboxProvider(receipt_url=None, secret="s", latency_ms=0, seed=7, **options)


def handed_over(status: str) -> bool:
    return status not in DISPATCHABLE and status != Status.SENDING


async def test_a_due_job_is_claimed_and_recorded_sent_with_the_providers_id(tmp_path: Path) -> None:
    provider = sandbox()
    async with sqlite_store(tmp_path) as store:
        row = message_row()
        await store.accept([row])
        metrics = Metrics()
        async with running(build_worker(store, MemoryState(), [provider], metrics=metrics)):
            stored = await wait_for_status(store, row["id"], handed_over)
        assert stored["status"] == Status.SENT
        assert stored["provider"] == "sandbox" and stored["provider_message_id"].startswith("SBX")
        [attempt] = stored["attempts"]
        assert attempt["outcome"] == "sent" and attempt["provider_message_id"] == stored["provider_message_id"]
        assert [e["status"] for e in stored["events"] if e["type"] == "status"][-2:] == ["sending", "sent"]
        assert provider.sent_count == 1
        sent = metrics.registry.get_sample_value(
            "gateway_messages_dispatched_total", {"channel": "sms", "provider": "sandbox", "outcome": "sent"}
        )
        assert sent == 1.0


async def test_a_job_not_yet_due_is_left_queued(tmp_path: Path) -> None:
    provider = sandbox()
    async with sqlite_store(tmp_path) as store:
        now = time.time()
        later = message_row(now, send_at=now + 3600, next_attempt_at=now + 3600)
        due = message_row(now)
        await store.accept([later, due])
        async with running(build_worker(store, MemoryState(), [provider])):
            await wait_for_status(store, due["id"], handed_over)
        waiting = await store.get_message(TENANT, later["id"])
        assert waiting is not None and waiting["status"] == Status.QUEUED and waiting["attempts"] == []
        assert provider.sent_count == 1


async def test_an_expired_job_is_never_handed_to_the_provider(tmp_path: Path) -> None:
    provider = sandbox()
    async with sqlite_store(tmp_path) as store:
        now = time.time()
        row = message_row(now - 120, expires_at=now - 60)
        await store.accept([row])
        async with running(build_worker(store, MemoryState(), [provider])):
            stored = await wait_for_status(store, row["id"], lambda s: s in FINAL)
        assert (stored["status"], stored["reason"]) == (Status.EXPIRED, "expired")
        assert stored["attempts"] == [] and provider.sent_count == 0


async def test_a_transient_provider_error_requeues_the_job_with_backoff(tmp_path: Path) -> None:
    provider = sandbox(failure_rate=1.0, errors=[SimulatedError("SBX-503", ErrorKind.TRANSIENT, 1.0, "busy")])
    async with sqlite_store(tmp_path) as store:
        row = message_row()
        await store.accept([row])
        async with running(build_worker(store, MemoryState(), [provider], backoff_base_seconds=30.0)):
            stored = await wait_for_message(
                store, row["id"], lambda m: m["status"] == Status.QUEUED and bool(m["attempts"])
            )
        assert stored["status"] == Status.QUEUED and stored["reason"].startswith("retry.")
        assert stored["error_code"] == "SBX-503"
        [attempt] = stored["attempts"]
        assert attempt["outcome"] == "transient"
        assert stored["next_attempt_at"] > attempt["finished_at"], "not retried at once"


async def test_a_job_to_an_opted_out_address_is_suppressed_before_any_send(tmp_path: Path) -> None:
    provider = sandbox()
    async with sqlite_store(tmp_path) as store:
        row = message_row()
        await store.add_suppressions(
            [
                {
                    "tenant_id": TENANT,
                    "kind": "address",
                    "value": row["to_addr"],
                    "reason": "opt_out",
                    "source": "api",
                    "created_at": time.time(),
                }
            ]
        )
        await store.accept([row])
        async with running(build_worker(store, MemoryState(), [provider])):
            stored = await wait_for_status(store, row["id"], lambda s: s in FINAL)
        assert (stored["status"], stored["reason"]) == (Status.SUPPRESSED, "suppressed.opt_out")
        assert provider.sent_count == 0


async def test_a_job_sent_from_a_pool_records_its_sender_number(tmp_path: Path) -> None:
    provider = sandbox()
    settings = NumbersSettings.model_validate({"pools": {"us": {"senders": ["+14155550101"]}}})
    async with sqlite_store(tmp_path) as store:
        state = MemoryState()
        pool = NumberPool(store, state, settings)
        await pool.sync_config()
        row = message_row()
        await store.accept([row])
        async with running(build_worker(store, state, [provider], numbers=pool)):
            stored = await wait_for_status(store, row["id"], handed_over)
        assert stored["status"] == Status.SENT and stored["sender"] == "+14155550101"
        assert stored["attempts"][0]["sender"] == "+14155550101"

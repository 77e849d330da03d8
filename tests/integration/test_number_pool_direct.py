"""`NumberPool` built directly on a real SQLite store and the in-process State (no gateway process)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gateway.domain.models import Job, Status
from gateway.domain.numbers import Counts, NumberState, Signal
from gateway.number_pool import FLUSH_SECONDS, NumberPool
from gateway.number_settings import NumbersSettings
from gateway.state.memory import MemoryState
from tests.integration.direct import job_of, message_row, sqlite_store

SENDERS = ["+14155550101", "+14155550102", "+14155550103"]


def pool_settings(**pool: Any) -> NumbersSettings:
    return NumbersSettings.model_validate({"pools": {"us": {"senders": SENDERS, **pool}}})


def jobs_to(*recipients: str) -> list[Job]:
    return [job_of(message_row(to_addr=to)) for to in recipients]


def routes(jobs: list[Job]) -> dict[str, str]:
    return {j.id: "sandbox" for j in jobs}


async def senders_for(pool: NumberPool, jobs: list[Job]) -> list[str]:
    decision = await pool.assign(jobs, routes(jobs), time.time())
    assert decision.decided == []
    return [decision.assigned[j.id].number.sender for j in jobs]


async def test_a_batch_is_spread_over_the_pool_and_each_recipient_keeps_its_number(tmp_path: Path) -> None:
    async with sqlite_store(tmp_path) as store:
        pool = NumberPool(store, MemoryState(), pool_settings())
        assert await pool.sync_config() == 3
        first = await senders_for(pool, jobs_to("+12125550001", "+12125550002", "+12125550003"))
        assert sorted(first) == SENDERS, "least-used first: three recipients, three numbers"
        again = await senders_for(pool, jobs_to("+12125550003", "+12125550001"))
        assert again == [first[2], first[0]], "a recipient hears from the same number next time"


async def test_a_flagged_number_rests_and_the_others_take_its_recipients(tmp_path: Path) -> None:
    async with sqlite_store(tmp_path) as store:
        pool = NumberPool(store, MemoryState(), pool_settings())
        await pool.sync_config()
        [sender] = await senders_for(pool, jobs_to("+12125550001"))
        [number] = [n for n in await pool.load() if n.sender == sender]
        row, changed = await pool.operate(number.id, "flag", "carrier complaint", "ops@example.com")
        assert changed and row is not None and row["state"] == NumberState.QUARANTINED
        later = await senders_for(pool, jobs_to("+12125550001", *(f"+1212555010{i}" for i in range(6))))
        assert sender not in later and set(later) == set(SENDERS) - {sender}


async def test_carrier_filtering_quarantines_a_number_on_its_own(tmp_path: Path) -> None:
    async with sqlite_store(tmp_path) as store:
        pool = NumberPool(store, MemoryState(), pool_settings(), clock=time.time)
        await pool.sync_config()
        number = (await pool.load())[0]
        await pool.record([(number, Signal.FILTERED)] * 2)
        assert (await store.number_row(number.id) or {})["state"] == NumberState.SUSPECT
        await pool.record([(number, Signal.FILTERED)])
        assert (await store.number_row(number.id) or {})["state"] == NumberState.QUARANTINED


async def test_with_every_number_at_rest_a_job_fails_with_the_pool_exhausted(tmp_path: Path) -> None:
    async with sqlite_store(tmp_path) as store:
        pool = NumberPool(store, MemoryState(), pool_settings())
        await pool.sync_config()
        for number in await pool.load():
            await pool.operate(number.id, "flag", "spam reports", "ops@example.com")
        [job] = jobs_to("+12125550001")
        decision = await pool.assign([job], routes([job]), time.time())
        [outcome] = decision.decided
        assert (outcome.status, outcome.reason) == (Status.FAILED, "number.pool_exhausted")
        assert outcome.detail == {"pools": ["us"], "states": {"quarantined": 3}}
        assert decision.assigned == {}


async def test_a_number_at_its_daily_cap_defers_the_job_to_when_it_frees(tmp_path: Path) -> None:
    settings = NumbersSettings.model_validate({"pools": {"us": {"senders": SENDERS[:1], "daily_cap": 1}}})
    async with sqlite_store(tmp_path) as store:
        pool = NumberPool(store, MemoryState(), settings)
        await pool.sync_config()
        assert await senders_for(pool, jobs_to("+12125550001")) == SENDERS[:1]
        [job] = jobs_to("+12125550002")
        decision = await pool.assign([job], routes([job]), time.time())
        [outcome] = decision.decided
        assert (outcome.status, outcome.reason) == (Status.DEFERRED, "number.daily_cap")
        assert outcome.next_attempt_at is not None and outcome.next_attempt_at > time.time()


async def test_noted_sends_are_counted_within_a_flush_and_a_failure_at_once(tmp_path: Path) -> None:
    async with sqlite_store(tmp_path) as store:
        pool = NumberPool(store, MemoryState(), pool_settings())
        await pool.sync_config()
        [number] = [n for n in await pool.load() if n.sender == SENDERS[0]]
        pool.start(ticking=False)
        try:
            await asyncio.sleep(3 * FLUSH_SECONDS)  # idle: nothing noted, nothing counted
            assert (await pool.counts([number]))[number.id] == Counts()
            started = time.monotonic()
            pool.note(number, Signal.SENT)
            pool.note(number, Signal.SENT)
            while (await pool.counts([number]))[number.id].sent < 2:
                assert time.monotonic() - started < 10 * FLUSH_SECONDS, "sends waited past a flush"
                await asyncio.sleep(0.01)
            assert time.monotonic() - started >= FLUSH_SECONDS / 2, "sends alone are gathered, not flushed one by one"
            started = time.monotonic()
            pool.note(number, Signal.FAILED)
            while (await pool.counts([number]))[number.id].failed < 1:
                assert time.monotonic() - started < 0.75 * FLUSH_SECONDS, "a failure is counted without waiting"
                await asyncio.sleep(0.005)
        finally:
            await pool.close()

"""`PolicyGate` built directly on a real SQLite store and the in-process State (no gateway process)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from gateway.domain.models import Status
from gateway.state.memory import MemoryState
from tests.integration.direct import TENANT, build_gate, job_of, message_row, sqlite_store

# 03:00 in New York (07:00 UTC on a winter day): inside marketing's default quiet hours.
NIGHT_IN_NEW_YORK = datetime(2025, 1, 15, 8, 0, tzinfo=UTC).timestamp()
EIGHT_AM_IN_NEW_YORK = datetime(2025, 1, 15, 13, 0, tzinfo=UTC).timestamp()


def suppression(kind: str, value: str, tenant_id: str = TENANT) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "kind": kind,
        "value": value,
        "reason": "opt_out",
        "source": "api",
        "created_at": time.time(),
    }


async def test_opted_out_addresses_and_users_are_suppressed_the_rest_pass(tmp_path: Path) -> None:
    async with sqlite_store(tmp_path) as store:
        await store.add_suppressions(
            [
                suppression("address", "+14155550001"),
                suppression("user_id", "u-42"),
                suppression("address", "+14155550003", "other"),
            ]
        )
        by_address = job_of(message_row(to_addr="+14155550001"))
        by_user = job_of(message_row(to_addr="+14155550002", user_id="u-42"))
        other_tenants_optout = job_of(message_row(to_addr="+14155550003"))
        gate = build_gate(store, MemoryState())
        jobs = [by_address, by_user, other_tenants_optout]
        result = await gate.judge(jobs, {j.id: "sandbox" for j in jobs})
        assert {o.message_id: (o.status, o.reason) for o in result.decided} == {
            by_address.id: (Status.SUPPRESSED, "suppressed.opt_out"),
            by_user.id: (Status.SUPPRESSED, "suppressed.opt_out"),
        }
        assert [j.id for j in result.passed] == [other_tenants_optout.id], "an opt-out holds for its own tenant only"


async def test_marketing_waits_out_the_recipients_night_transactional_does_not(tmp_path: Path) -> None:
    async with sqlite_store(tmp_path) as store:
        gate = build_gate(store, MemoryState(), quiet_hours={}, clock=lambda: NIGHT_IN_NEW_YORK)
        marketing = job_of(message_row(to_addr="+12125550100", tz="America/New_York"))
        transactional = job_of(message_row(to_addr="+12125550101", tz="America/New_York", category="transactional"))
        result = await gate.judge([marketing, transactional], {marketing.id: "sandbox", transactional.id: "sandbox"})
        [deferred] = result.decided
        assert (deferred.message_id, deferred.status, deferred.reason) == (
            marketing.id,
            Status.DEFERRED,
            "limit.quiet_hours",
        )
        assert deferred.next_attempt_at == EIGHT_AM_IN_NEW_YORK
        assert [j.id for j in result.passed] == [transactional.id]


async def test_a_frequency_cap_defers_the_second_message_to_the_same_recipient(tmp_path: Path) -> None:
    async with sqlite_store(tmp_path) as store:
        state = MemoryState()
        gate = build_gate(store, state, limits={"caps": {"marketing": {"sms": ["1/day"]}}})
        first = job_of(message_row(to_addr="+14155550200"))
        second = job_of(message_row(to_addr="+14155550200"))
        elsewhere = job_of(message_row(to_addr="+14155550201"))
        one = await gate.judge([first], {first.id: "sandbox"})
        assert [j.id for j in one.passed] == [first.id] and first.id in one.reservations
        two = await gate.judge([second, elsewhere], {second.id: "sandbox", elsewhere.id: "sandbox"})
        [capped] = two.decided
        assert (capped.message_id, capped.status, capped.reason) == (second.id, Status.DEFERRED, "limit.cap")
        assert capped.next_attempt_at is not None and capped.next_attempt_at > time.time() + 3600
        assert [j.id for j in two.passed] == [elsewhere.id]

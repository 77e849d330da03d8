"""Sender number health and selection (gateway.domain.numbers): pure, no I/O."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.numbers import (
    DAY_SECONDS,
    Counts,
    HealthPolicy,
    NumberState,
    Recipient,
    Rotation,
    SenderNumber,
    Signal,
    assess,
    candidates,
    daily_cap,
    flag,
    judge,
    restore,
    retire,
    suspect_threshold,
)

POLICY = HealthPolicy(cooldown_seconds=600, probation_seconds=60, probation_deliveries=3)
US = Recipient("twilio", "sms", "marketing", "US", "NY")


def number(n: int = 1, **changes: object) -> SenderNumber:
    base = SenderNumber(id=f"num_{n:016x}", pool="p", sender=f"+1415555{n:04d}", channel="sms", provider="twilio")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def counts(**values: int) -> Counts:
    return Counts.of({Signal(k): v for k, v in values.items()})


def run(signals: list[Signal], policy: HealthPolicy = POLICY, state: NumberState = NumberState.ACTIVE) -> list[str]:
    """Feed observations one at a time, as receipts arrive; return the states the number went through."""
    current = number(state=state)
    seen: dict[Signal, int] = {}
    path = [current.state.value]
    for signal in signals:
        seen[signal] = seen.get(signal, 0) + 1
        change = assess(current, Counts.of(seen), Counts(), policy, 0.0)
        if change is not None:
            current = dataclasses.replace(current, state=change.to, cooldown_until=change.cooldown_until)
            path.append(change.to.value)
            if change.new_epoch:
                seen = {}
        if current.state is NumberState.QUARANTINED:
            break
    return path


# --- evidence --------------------------------------------------------------------------------------


def test_the_first_filtered_receipt_makes_a_number_suspect_and_the_third_quarantines_it() -> None:
    assert run([Signal.SENT, Signal.DELIVERED]) == ["active"]
    assert run([Signal.FILTERED]) == ["active", "suspect"]
    assert run([Signal.FILTERED, Signal.DELIVERED, Signal.FILTERED, Signal.FILTERED]) == [
        "active",
        "suspect",
        "quarantined",
    ]


@given(st.lists(st.sampled_from([Signal.SENT, Signal.DELIVERED, Signal.FILTERED]), max_size=60))
def test_a_filtered_number_is_quarantined_by_its_kth_filtered_receipt_never_later(signals: list[Signal]) -> None:
    path = run(signals)
    filtered = signals.count(Signal.FILTERED)
    if filtered >= POLICY.filtered_to_quarantine:
        assert path[-1] == "quarantined"
        # The bound: quarantine happens on the K-th filtered observation, however many were delivered between.
        kth = [i for i, s in enumerate(signals) if s is Signal.FILTERED][POLICY.filtered_to_quarantine - 1]
        assert run(signals[: kth + 1])[-1] == "quarantined"
        assert run(signals[:kth])[-1] != "quarantined"
    else:
        assert "quarantined" not in path


@given(
    st.integers(0, 200),
    st.integers(0, 200),
    st.integers(0, 5),
    st.integers(0, 200),
    st.integers(0, 200),
)
def test_more_bad_evidence_never_makes_the_verdict_milder(
    delivered: int, failed: int, filtered: int, extra_failed: int, baseline_failed: int
) -> None:
    baseline = counts(delivered=500, failed=baseline_failed)
    before = judge(counts(delivered=delivered, failed=failed, filtered=filtered), baseline, POLICY)
    after = judge(counts(delivered=delivered, failed=failed + extra_failed, filtered=filtered + 1), baseline, POLICY)
    assert after.level >= before.level


def test_a_failure_rate_is_judged_against_the_rest_of_the_pool() -> None:
    # 30% undelivered where the pool sees 25%: the recipients, not the number.
    noisy_pool = counts(delivered=300, failed=100)
    assert judge(counts(delivered=70, failed=30), noisy_pool, POLICY).level == 0
    # The same 30% where the pool sees 2%: the number.
    clean_pool = counts(delivered=490, failed=10)
    verdict = judge(counts(delivered=70, failed=30), clean_pool, POLICY)
    assert (verdict.level, verdict.reason) == (1, "evidence.failure_rate")
    assert verdict.evidence["baseline"] == 0.02
    # 80% undelivered: quarantined.
    assert judge(counts(delivered=20, failed=80), clean_pool, POLICY).level == 2
    # Too few settled messages to call a rate.
    assert judge(counts(delivered=1, failed=9), clean_pool, POLICY).level == 0


def test_without_a_baseline_the_assumed_one_is_used() -> None:
    assert suspect_threshold(Counts(), POLICY) == pytest.approx(0.15)
    assert suspect_threshold(counts(delivered=60, failed=40), POLICY) == pytest.approx(0.8)


def test_opt_out_replies_make_a_number_suspect() -> None:
    verdict = judge(counts(sent=100, delivered=100, opt_out=6), Counts(), POLICY)
    assert (verdict.level, verdict.reason) == (1, "evidence.opt_out_rate")
    assert judge(counts(sent=100, delivered=100, opt_out=4), Counts(), POLICY).level == 0


def test_suspicion_clears_when_the_window_holds_no_evidence() -> None:
    change = assess(number(state=NumberState.SUSPECT), counts(sent=5, delivered=5), Counts(), POLICY, 0.0)
    assert change is not None and (change.to, change.reason) == (NumberState.ACTIVE, "evidence.cleared")


# --- cooldown and probation --------------------------------------------------------------------------


def test_quarantine_lasts_the_cooldown_then_probation() -> None:
    change = assess(number(), counts(filtered=3), Counts(), POLICY, 1000.0)
    assert change is not None and change.to is NumberState.QUARANTINED
    assert change.cooldown_until == 1600.0 and change.new_epoch
    quarantined = number(state=NumberState.QUARANTINED, state_since=1000.0, cooldown_until=1600.0)
    assert assess(quarantined, Counts(), Counts(), POLICY, 1599.0) is None
    back = assess(quarantined, Counts(), Counts(), POLICY, 1600.0)
    assert back is not None and (back.to, back.reason, back.new_epoch) == (
        NumberState.PROBATION,
        "cooldown.elapsed",
        True,
    )


def test_probation_passes_only_after_its_time_and_enough_deliveries() -> None:
    probation = number(state=NumberState.PROBATION, state_since=2000.0)
    assert assess(probation, counts(delivered=10), Counts(), POLICY, 2059.0) is None
    assert assess(probation, counts(delivered=2), Counts(), POLICY, 2100.0) is None
    passed = assess(probation, counts(delivered=3), Counts(), POLICY, 2060.0)
    assert passed is not None and (passed.to, passed.reason) == (NumberState.ACTIVE, "probation.passed")


def test_any_evidence_on_probation_sends_the_number_back_to_quarantine() -> None:
    probation = number(state=NumberState.PROBATION, state_since=2000.0)
    change = assess(probation, counts(delivered=9, filtered=1), Counts(), POLICY, 2001.0)
    assert change is not None
    assert (change.to, change.reason) == (NumberState.QUARANTINED, "probation.evidence.filtered")
    assert change.cooldown_until == 2601.0


def test_retired_numbers_are_left_alone_by_evidence() -> None:
    assert assess(number(state=NumberState.RETIRED), counts(filtered=9), Counts(), POLICY, 0.0) is None


def test_operator_and_reputation_flags_quarantine_restore_and_retire() -> None:
    flagged = flag(number(), "vendor report", "operator", 10.0, POLICY)
    assert flagged is not None and flagged.to is NumberState.QUARANTINED
    assert (flagged.reason, flagged.evidence) == ("operator.flagged", {"reason": "vendor report"})
    assert flag(number(state=NumberState.RETIRED), "x", "operator", 0, POLICY) is None
    assert flag(number(state=NumberState.QUARANTINED), "x", "reputation", 0, POLICY) is None
    restored = restore(number(state=NumberState.QUARANTINED), "cleared")
    assert restored is not None and restored.to is NumberState.ACTIVE and restored.new_epoch
    assert restore(number(), "x") is None
    retired = retire(number(state=NumberState.SUSPECT), "sold")
    assert retired is not None and retired.to is NumberState.RETIRED and retired.evidence["from"] == "suspect"
    assert retire(number(state=NumberState.RETIRED), "x") is None


def test_policy_refuses_thresholds_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="filtered_to_suspect"):
        HealthPolicy(filtered_to_suspect=4, filtered_to_quarantine=3)
    with pytest.raises(ValueError, match="warm-up"):
        HealthPolicy(warmup_caps=(10, 0))


# --- caps and selection ---------------------------------------------------------------------------------


def test_warm_up_caps_grow_day_by_day_then_the_numbers_own_cap_holds() -> None:
    new = number(warmup=True, daily_cap=300, created_at=0.0)
    assert [daily_cap(new, POLICY, day * DAY_SECONDS + 1) for day in range(7)] == [50, 100, 200, 300, 300, 300, 300]
    assert daily_cap(number(), POLICY, 0.0) is None
    assert daily_cap(number(state=NumberState.PROBATION, daily_cap=1000), POLICY, 0.0) == POLICY.probation_daily_cap


def test_candidates_are_usable_numbers_of_the_route_least_recently_used_first() -> None:
    pool = [
        number(1),
        number(2, state=NumberState.QUARANTINED),
        number(3, state=NumberState.SUSPECT),
        number(4, state=NumberState.RETIRED),
        number(5, provider="aliyun"),
        number(6, countries=frozenset({"CN"})),
        number(7, state=NumberState.PROBATION),
        number(8, provider=None),
    ]
    used = {number(1).id: 30.0, number(3).id: 10.0, number(7).id: 20.0}
    order = [n.id for n in candidates(pool, US, last_used=used)]
    assert order == [number(8).id, number(3).id, number(7).id, number(1).id]


def test_the_sticky_number_comes_first_while_usable_and_region_local_numbers_before_others() -> None:
    pool = [number(1), number(2, region="NY"), number(3, region="CA")]
    assert [n.id for n in candidates(pool, US)] == [number(2).id, number(1).id, number(3).id]
    assert candidates(pool, US, sticky=number(3).id)[0].id == number(3).id
    gone = [number(1), number(3, state=NumberState.QUARANTINED)]
    assert [n.id for n in candidates(gone, US, sticky=number(3).id)] == [number(1).id]
    assert [n.id for n in candidates(pool, US, avoid=frozenset({number(2).id}))] == [number(1).id, number(3).id]


@given(
    st.lists(
        st.tuples(st.sampled_from(list(NumberState)), st.booleans(), st.floats(0, 100)),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 11),
)
def test_candidates_never_offer_an_unusable_or_avoided_number(
    specs: list[tuple[NumberState, bool, float]], sticky_index: int
) -> None:
    pool = [number(i, state=state, region="NY" if local else None) for i, (state, local, _) in enumerate(specs)]
    used = {number(i).id: at for i, (_, _, at) in enumerate(specs)}
    avoid = frozenset({pool[0].id})
    sticky = pool[sticky_index % len(pool)].id
    order = candidates(pool, US, sticky=sticky, avoid=avoid, last_used=used)
    assert all(n.state.usable and n.id not in avoid for n in order)
    assert {n.id for n in order} == {n.id for n in pool if n.state.usable and n.id not in avoid}
    rest = order[1:] if order and order[0].id == sticky else order
    keys = [(not n.local_to("US", "NY"), used[n.id], n.id) for n in rest]
    assert keys == sorted(keys)


@given(
    st.lists(st.tuples(st.sampled_from(list(NumberState)), st.booleans(), st.integers(0, 5)), min_size=1, max_size=10),
    st.lists(st.tuples(st.integers(0, 12), st.booleans()), max_size=30),
)
def test_a_rotation_gives_what_candidates_gives_job_after_job(
    specs: list[tuple[NumberState, bool, int]], jobs: list[tuple[int, bool]]
) -> None:
    """The batch shortcut and the reference agree: each job's order is `candidates` with the
    last-used times as they stand after the jobs before it took their first choice."""
    pool = [number(i, state=state, region="NY" if local else None) for i, (state, local, _) in enumerate(specs)]
    used = {number(i).id: float(at) for i, (_, _, at) in enumerate(specs)}
    rotation = Rotation(pool, US, used)
    clock = 100.0
    for sticky_index, avoiding in jobs:
        sticky = number(sticky_index).id
        avoid = frozenset({pool[0].id}) if avoiding else frozenset()
        expected = candidates(pool, US, sticky=sticky, avoid=avoid, last_used=used)
        assert [n.id for n in rotation.take(sticky, avoid)] == [n.id for n in expected]
        if expected:
            clock += 1
            used[expected[0].id] = clock

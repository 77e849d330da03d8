"""Experiments (pure): declarations judged, stable assignment, the arm against the holdout."""

from __future__ import annotations

import random
from collections import Counter

from gateway.domain.experiments import HOLDOUT, Experiment, assign, compare, verdict

AB = Experiment({"A": 45, "B": 45}, 10)


def test_a_declaration_must_sum_to_100_keep_the_holdout_under_half_and_leave_reserved_names() -> None:
    assert AB.problems() == []
    assert Experiment({"A": 45, "B": 40}, 10).problems() == [
        ("/variants", "the weights and the holdout must sum to 100 (they sum to 95)")
    ]
    assert ("/holdout", "must be between 0 and 50 (percent of the audience)") in Experiment({"A": 40}, 60).problems()
    assert Experiment({"auto": 90}, 10).problems()[0][0] == "/variants/auto"


def test_assignment_is_stable_and_follows_the_weights() -> None:
    people = [f"u-{n}" for n in range(20_000)]
    arms = [assign(AB, "t", "recall", person) for person in people]
    assert arms == [assign(AB, "t", "recall", person) for person in people]
    shares = Counter(arms)
    assert abs(shares["A"] / 200 - 45) < 1 and abs(shares["B"] / 200 - 45) < 1 and abs(shares[HOLDOUT] / 200 - 10) < 1
    # Another campaign shuffles people anew: the holdout is not the same people every time.
    again = [assign(AB, "t", "winback", person) for person in people]
    assert sum(a == b for a, b in zip(arms, again, strict=True)) < 0.5 * len(people)


def test_the_comparison_is_a_two_proportion_test_with_a_95_interval() -> None:
    found = compare(600, 10_000, 400, 10_000)
    assert found is not None
    assert round(found.lift, 4) == 0.02 and found.low < 0.02 < found.high and found.significant
    assert round(found.high - found.low, 4) == round(2 * 1.96 * ((0.06 * 0.94 + 0.04 * 0.96) / 10_000) ** 0.5, 4)
    weak = compare(21, 400, 20, 400)
    assert weak is not None and not weak.significant
    assert "not significant" in verdict("A", 21 / 400, 20 / 400, weak) and "two-proportion z-test" in verdict(
        "A", 0.06, 0.04, found
    )
    assert compare(1, 10, 0, 0) is None


def test_the_interval_covers_the_true_lift_about_95_times_in_100() -> None:
    rng = random.Random(7)
    covered = 0
    for _ in range(200):
        arm = sum(rng.random() < 0.06 for _ in range(2000))
        held = sum(rng.random() < 0.04 for _ in range(2000))
        found = compare(arm, 2000, held, 2000)
        assert found is not None
        covered += found.low <= 0.02 <= found.high
    assert 180 <= covered <= 200

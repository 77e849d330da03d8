"""Experiments (pure): a campaign's arms with weights and a holdout share, the stable assignment of a
recipient to one of them, and the comparison of each arm with the holdout.

Assignment is a hash of the tenant, campaign and recipient (user_id, else the address), so the same
person lands in the same arm in every process and on every send, with no state to share. The
comparison is a two-proportion z-test (pooled standard error) for significance and a Wald interval
(unpooled) for the lift, both at the 95% level.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

# What a job says to be assigned; what the 202 answer and the record call the held-out share.
AUTO = "auto"
HOLDOUT = "holdout"
RESERVED_ARMS = frozenset({AUTO, HOLDOUT})
MAX_HOLDOUT = 50.0  # percent: beyond half the audience a holdout is no longer a control group
WEIGHT_TOTAL = 100.0
HOLDOUT_REASON = "experiment.holdout"  # the reason a held-out job is recorded with
Z_95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal distribution
METHOD = "two-proportion z-test (pooled), 95% Wald interval for the difference"
_SCALE = 2**64


@dataclass(frozen=True, slots=True)
class Experiment:
    variants: Mapping[str, float]  # arm -> weight, percent of the audience
    holdout: float = 0.0  # percent held out

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for each rule the declaration breaks; empty when it is valid."""
        found: list[tuple[str, str]] = []
        for arm in self.variants:
            if arm in RESERVED_ARMS:
                found.append((f"/variants/{arm}", f"{arm!r} is reserved (auto assigns an arm; holdout is the control)"))
        if not 0 <= self.holdout <= MAX_HOLDOUT:
            found.append(("/holdout", f"must be between 0 and {MAX_HOLDOUT:g} (percent of the audience)"))
        total = sum(self.variants.values()) + self.holdout
        if not math.isclose(total, WEIGHT_TOTAL, abs_tol=1e-9):
            found.append(("/variants", f"the weights and the holdout must sum to 100 (they sum to {total:g})"))
        return found


def bucket(tenant_id: str, campaign: str, recipient: str) -> float:
    """The recipient's point in [0, 100) for this campaign: uniform, and the same in every process."""
    key = "\x1f".join((tenant_id, campaign, recipient)).encode()
    number = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return number / _SCALE * WEIGHT_TOTAL


def assign(experiment: Experiment, tenant_id: str, campaign: str, recipient: str) -> str:
    """The recipient's arm, or HOLDOUT. The holdout takes the bottom of the range and the arms follow
    in name order, so changing one arm's weight moves only the people at its edges."""
    point = bucket(tenant_id, campaign, recipient)
    edge = experiment.holdout
    if point < edge:
        return HOLDOUT
    arms = sorted(experiment.variants)
    for arm in arms:
        edge += experiment.variants[arm]
        if point < edge:
            return arm
    return arms[-1]  # float rounding at the top of the range


@dataclass(frozen=True, slots=True)
class Comparison:
    """An arm against the holdout: the lift is the difference in conversion rate (arm - holdout)."""

    lift: float
    low: float
    high: float
    z: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def compare(converted: int, assigned: int, held_converted: int, held: int) -> Comparison | None:
    """The arm against the holdout, or None when either side is empty."""
    if assigned == 0 or held == 0:
        return None
    rate, base = converted / assigned, held_converted / held
    lift = rate - base
    spread = math.sqrt(rate * (1 - rate) / assigned + base * (1 - base) / held)
    pooled = (converted + held_converted) / (assigned + held)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / assigned + 1 / held))
    z = lift / pooled_se if pooled_se > 0 else 0.0
    p_value = math.erfc(abs(z) / math.sqrt(2))
    return Comparison(lift, lift - Z_95 * spread, lift + Z_95 * spread, z, p_value)


def verdict(arm: str, rate: float, base: float, comparison: Comparison) -> str:
    """The comparison in one plain sentence."""
    c = comparison
    head = (
        f"{arm} converted {rate:.2%} against {base:.2%} in the holdout: {c.lift * 100:+.2f} points "
        f"(95% interval {c.low * 100:+.2f} to {c.high * 100:+.2f})"
    )
    if c.significant:
        return f"{head}; the difference is significant at the 5% level (two-proportion z-test, p = {c.p_value:.4f})."
    return (
        f"{head}; the difference is not significant at the 5% level (two-proportion z-test, "
        f"p = {c.p_value:.4f}): it may be chance."
    )

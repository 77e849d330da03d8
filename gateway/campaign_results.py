"""The campaign report as the API, its CSV and the console show it: the store's groups with their
rates, cost per delivered message and per conversion, the totals, and the experiment's arms compared
with the holdout (the statistics are gateway/domain/experiments.py's)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.domain.experiments import HOLDOUT, METHOD, Experiment, compare, verdict
from gateway.domain.tracking import METADATA_DIMENSION

# Counts summed into the totals; dictionaries of counts or money are summed key by key.
_SUMMED = (
    "messages",
    "sent",  # not a status: a count of the report
    "delivered",  # not a status: a count of the report
    "failed",  # not a status: a count of the report
    "suppressed",  # not a status: a count of the report
    "sleeping",
    "held_out",  # not a status: a count of the report
    "clicks",
    "human_clicks",
    "unique_clicks",
    "conversions",
    "converted",
    "value",
    "claims_verified",
    "claims_refused",
)
_SUMMED_MAPS = ("cost", "suppressed_by_reason", "deferred_by_reason")


def rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def per(money: Mapping[str, float], count: int) -> dict[str, float]:
    """Money per unit, per currency; nothing when there are no units."""
    return {currency: round(amount / count, 6) for currency, amount in money.items()} if count else {}


def _add(into: dict[str, Any], values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        into[name] = round(into.get(name, 0) + value, 6)


def totals_of(groups: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = {name: 0 for name in _SUMMED}
    totals["value"] = 0.0
    for name in _SUMMED_MAPS:
        totals[name] = {}
    for group in groups:
        for name in _SUMMED:
            totals[name] += group[name]
        for name in _SUMMED_MAPS:
            _add(totals[name], group[name])
    return with_costs(totals)


def with_costs(row: dict[str, Any]) -> dict[str, Any]:
    row["cost_per_delivered"] = per(row["cost"], row["delivered"])
    row["cost_per_conversion"] = per(row["cost"], row["conversions"])
    return row


def render_group(group: dict[str, Any], group_by: Sequence[str]) -> dict[str, Any]:
    waits = group.pop("seconds_to_first_click")
    metadata = {
        name[len(METADATA_DIMENSION) :]: group.pop(name) for name in group_by if name.startswith(METADATA_DIMENSION)
    }
    if metadata:
        group["metadata"] = {key: None if value is None else str(value) for key, value in metadata.items()}
    group.update(
        delivery_rate=rate(group["delivered"], group["sent"]),
        click_rate=rate(group["unique_clicks"], group["delivered"]),
        conversion_rate=rate(group["conversions"], group["unique_clicks"]),
        median_seconds_to_click=round(statistics.median(waits), 3) if waits else None,
    )
    return with_costs(group)


def _sort_key(group: Mapping[str, Any], group_by: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(group[name]) for name in group_by)


def campaign_summary(
    campaign: str,
    group_by: Sequence[str],
    groups: list[dict[str, Any]],
    campaign_links: list[dict[str, Any]],
    experiment: ExperimentView | None = None,
) -> dict[str, Any]:
    """Groups in order with their rates, the totals, the links shared by a whole variant (counted in
    the totals only: which message led to a click on them is unknowable), and the experiment."""
    ordered = sorted(groups, key=lambda g: _sort_key(g, group_by))
    totals = totals_of(ordered)
    for shared in campaign_links:
        for name in ("clicks", "human_clicks", "conversions", "value"):
            totals[name] += shared[name]
    with_costs(totals)
    return {
        "campaign": campaign,
        "group_by": list(group_by),
        "totals": totals,
        "groups": [render_group(g, group_by) for g in ordered],
        "campaign_links": campaign_links,
        "experiment": experiment.result() if experiment is not None else None,
    }


class ExperimentView:
    """An experiment's arms from the campaign grouped by variant."""

    def __init__(self, experiment: Experiment, by_variant: Iterable[Mapping[str, Any]]) -> None:
        self.experiment = experiment
        self.rows = {row["variant"]: row for row in by_variant}

    def _arm(self, name: str, weight: float, everyone: int) -> dict[str, Any]:
        row = self.rows.get(name, {})
        assigned, converted = int(row.get("messages", 0)), int(row.get("converted", 0))
        return {
            "variant": name,
            "weight": weight,
            "assigned": assigned,
            "share": round(100 * assigned / everyone, 3) if everyone else 0.0,
            "converted": converted,
            "conversion_rate": rate(converted, assigned),
            "cost": dict(row.get("cost", {})),
            "lift": None,
            "lift_low": None,
            "lift_high": None,
            "p_value": None,
            "significant": None,
            "verdict": None,
        }

    def result(self) -> dict[str, Any]:
        names = [*sorted(self.experiment.variants), HOLDOUT]
        everyone = sum(int(self.rows.get(name, {}).get("messages", 0)) for name in names)
        weights = {**self.experiment.variants, HOLDOUT: self.experiment.holdout}
        arms = [self._arm(name, weights[name], everyone) for name in names]
        held = arms[-1]
        for arm in arms[:-1]:
            found = compare(arm["converted"], arm["assigned"], held["converted"], held["assigned"])
            if found is None:
                continue
            arm.update(
                lift=round(found.lift * 100, 4),
                lift_low=round(found.low * 100, 4),
                lift_high=round(found.high * 100, 4),
                p_value=round(found.p_value, 6),
                significant=found.significant,
                verdict=verdict(
                    arm["variant"], arm["converted"] / arm["assigned"], held["converted"] / held["assigned"], found
                ),
            )
        return {"method": METHOD, "arms": arms}

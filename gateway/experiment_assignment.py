"""A job's `variant: "auto"` at accept: its arm of the campaign's experiment, or the holdout.

The declarations are read from the store and kept for a couple of seconds per process, so the accept
path does not read them for every job; the assignment itself is pure (domain/experiments.py).
"""

from __future__ import annotations

import dataclasses
import time

from gateway.domain.experiments import AUTO, HOLDOUT, HOLDOUT_REASON, Experiment, assign
from gateway.domain.jobs import FieldError
from gateway.domain.models import SendJob, Status
from gateway.store.port import Store

KEPT_SECONDS = 2.0  # a changed declaration reaches every process's accepts within this
NO_EXPERIMENT = 'is "auto", which needs a campaign that declares an experiment (PUT /v1/campaigns/{campaign})'


class ExperimentAssigner:
    def __init__(self, kept_seconds: float = KEPT_SECONDS) -> None:
        self.kept_seconds = kept_seconds
        self._kept: dict[tuple[str, str], tuple[float, Experiment | None]] = {}

    async def experiment(self, store: Store, tenant_id: str, campaign: str) -> Experiment | None:
        now = time.monotonic()
        kept = self._kept.get((tenant_id, campaign))
        if kept is not None and now - kept[0] < self.kept_seconds:
            return kept[1]
        row = await store.get_experiment(tenant_id, campaign)
        found = Experiment(row["variants"], row["holdout"]) if row is not None else None
        if len(self._kept) > 10_000:
            self._kept.clear()
        self._kept[(tenant_id, campaign)] = (now, found)
        return found

    async def assign(
        self, store: Store, tenant_id: str, job: SendJob, prefix: str = ""
    ) -> tuple[SendJob, FieldError | None]:
        """The job with its arm (or HOLDOUT) in place of "auto"; a job without "auto" as it is."""
        if job.variant != AUTO:
            return job, None
        experiment = await self.experiment(store, tenant_id, job.campaign) if job.campaign else None
        if experiment is None:
            return job, FieldError(f"{prefix}/variant", NO_EXPERIMENT)
        arm = assign(experiment, tenant_id, job.campaign or "", job.user_id or job.to)
        return dataclasses.replace(job, variant=arm), None


def accepted_status(job: SendJob) -> tuple[Status, str | None]:
    """What an accepted job is recorded as: held out (never sent) in the holdout, whether assigned
    there or sent there by the campaign system itself; else queued."""
    return (Status.HELD_OUT, HOLDOUT_REASON) if job.variant == HOLDOUT else (Status.QUEUED, None)

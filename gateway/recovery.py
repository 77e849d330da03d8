"""Hand-offs of unknown outcome and sent jobs whose receipt is late: decided, never guessed.

A hand-off the worker could not see through (no answer, or a worker that died after its `sending`
mark) is settled by asking the provider, else by the category's policy; a sent job that may still
fall back moves to its next channel once its receipt is overdue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from gateway.background import survived
from gateway.domain.models import AttemptOutcome, Category, Job, Status
from gateway.metrics import Metrics
from gateway.outcome_rules import OutcomeRules
from gateway.provider_registry import ProviderRegistry
from gateway.settings import WorkerSettings
from gateway.store.port import DispatchStore
from gateway.store.records import Outcome

log = structlog.get_logger("gateway.worker")

PROVIDER_CALL_TIMEOUT = 10.0
# How long after its `sending` mark a hand-off may still reach the provider from a worker that is
# alive but stalled past its lease: the call's own timeout, plus the commit of the mark before it.
HANDOFF_SETTLE_SECONDS = PROVIDER_CALL_TIMEOUT + 5.0


class Recovery:
    def __init__(
        self,
        store: DispatchStore,
        providers: ProviderRegistry,
        settings: WorkerSettings,
        metrics: Metrics,
        rules: OutcomeRules,
    ) -> None:
        self.store = store
        self.providers = providers
        self.settings = settings
        self.metrics = metrics
        self.rules = rules

    async def resolve_unknown(self, job: Job, provider_name: str, attempt: int, why: str) -> Outcome:
        """Decide a hand-off whose outcome we do not know: ask the provider, else apply the policy."""
        now = time.time()
        base: dict[str, Any] = {"attempt": attempt, "provider": provider_name, "error_message": why}
        provider = self.providers.get(provider_name)
        lookup = None
        if provider is not None and provider.capabilities.lookup:
            try:
                lookup = await asyncio.wait_for(provider.lookup(job.id), PROVIDER_CALL_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - no answer: the hand-off policy decides instead
                survived(
                    self.metrics,
                    "handoff-lookup",
                    "asking the provider about a hand-off failed; deciding by policy",
                    exc,
                    message_id=job.id,
                    tenant=job.tenant_id,
                    provider=provider_name,
                )
        if lookup is not None:
            if lookup.accepted:
                self.metrics.handoff_recovered.labels("provider_says_sent").inc()
                return Outcome(
                    job.id,
                    job.tenant_id,
                    Status.SENT,
                    now,
                    reason="recovered.provider_lookup",
                    attempt_outcome=AttemptOutcome.SENT,
                    provider_message_id=lookup.provider_message_id,
                    next_attempt_at=self.rules.receipt_deadline(job, now),
                    **base,
                )
            self.metrics.handoff_recovered.labels("provider_says_not_sent").inc()
            return Outcome(
                job.id,
                job.tenant_id,
                Status.QUEUED,
                now,
                reason="recovered.not_sent",
                attempt_outcome=AttemptOutcome.FAILED,
                next_attempt_at=now,
                **base,
            )
        policy = (
            self.settings.handoff_transactional
            if job.category == Category.TRANSACTIONAL
            else self.settings.handoff_marketing
        )
        self.metrics.handoff_recovered.labels(f"policy_{policy}").inc()
        if policy == "resend":
            return Outcome(
                job.id,
                job.tenant_id,
                Status.QUEUED,
                now,
                reason="recovered.resend",
                attempt_outcome=AttemptOutcome.UNKNOWN,
                next_attempt_at=now,
                **base,
            )
        return Outcome(
            job.id,
            job.tenant_id,
            Status.UNKNOWN,
            now,
            reason="unknown.handoff",
            attempt_outcome=AttemptOutcome.UNKNOWN,
            **base,
        )

    async def fall_back_unreceipted(self) -> int:
        """Sent jobs whose receipt did not come in time move to their next fallback channel."""
        rows = await self.store.unreceipted_sends(sorted(self.rules.routing.receipt_timeouts), 500)
        now = time.time()
        moves = []
        for job in rows:
            waited = now - job.updated_at
            detail = {"provider": job.provider, "waited_seconds": round(waited, 3)}
            outcome = self.rules.fall_back(job, now, "fallback.no_receipt", None, detail)
            if outcome.status == Status.QUEUED:
                moves.append((outcome, job.next_attempt_at))
        moved = await self.store.fall_back_unreceipted(moves) if moves else []
        if moved:
            log.info("no receipt in time: jobs moved to their fallback channel", count=len(moved))
            self.store.work_available.set()
        return len(moved)

    async def run(self, worker_id: str, stopping: asyncio.Event) -> None:
        interval = max(0.5, min(10.0, self.settings.lease_seconds / 3))
        while not stopping.is_set():
            try:
                orphans = await self.store.claim_orphaned_handoffs(
                    worker_id, 500, self.settings.lease_seconds, HANDOFF_SETTLE_SECONDS
                )
                if orphans:
                    log.warning("resolving hand-offs left by a dead worker", count=len(orphans))
                    outcomes = [
                        await self.resolve_unknown(
                            job, job.provider or "", job.attempt_count, "worker died during the hand-off"
                        )
                        for job in orphans
                    ]
                    await self.store.record_outcomes(outcomes)
                    continue
            except Exception as exc:  # noqa: BLE001 - the orphans are still there next round
                survived(self.metrics, "recovery", "hand-off recovery failed; retrying", exc)
            if self.rules.routing.receipt_timeouts:
                try:
                    await self.fall_back_unreceipted()
                except Exception as exc:  # noqa: BLE001 - the overdue jobs are found again next round
                    survived(
                        self.metrics, "receipt-fallback", "falling back after a missing receipt failed; retrying", exc
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)

"""What an attempt's answer means for its job: sent, delivered, retried, fallen back, or failed.

Pure decisions over the job, the sending mark and the provider's answer (the retry policy and the
routing rules from gateway.domain); the worker records what is decided here.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.domain.models import AttemptOutcome, Job, Status
from gateway.domain.pricing import Cost, price_of
from gateway.domain.regions import region_of
from gateway.domain.retry import REASON_EXPIRED, GiveUp, RetryPolicy, next_retry
from gateway.domain.routing import RegionRule, RoutingConfig, next_channel, receipt_deadline
from gateway.domain.template_jobs import channel_addresses
from gateway.store.records import Outcome, SendingMark
from providers.base import ErrorKind, ProviderError, SendResult

PHONE_CHANNELS = ("sms", "voice")


def addresses_of(job: Job) -> dict[str, str]:
    """A recipient's job's address per channel, from the profile at accept (empty for a job with one
    `to`); the content is parsed only for a job that carries them."""
    if '"addresses"' not in job.content:
        return {}
    return channel_addresses(orjson.loads(job.content))


class OutcomeRules:
    def __init__(self, routing: RoutingConfig, retry_policy: RetryPolicy) -> None:
        self.routing = routing
        self.retry_policy = retry_policy

    def fall_back(
        self,
        job: Job,
        now: float,
        reason: str,
        rule: RegionRule | None,
        detail: dict[str, Any],
        **extra: Any,
    ) -> Outcome:
        remaining = [c for c in (job.fallback or "").split(",") if c]
        addresses = addresses_of(job)
        channel = next_channel(rule, remaining, job.channel, addresses)
        if channel is None:
            return Outcome(job.id, job.tenant_id, Status.FAILED, now, reason=reason, detail=detail, **extra)
        left = ",".join(c for c in remaining if c != channel) or None
        return Outcome(
            job.id,
            job.tenant_id,
            Status.QUEUED,
            now,
            reason=reason,
            channel=channel,
            to_addr=addresses.get(channel),
            fallback=left,
            next_attempt_at=now,
            detail={**detail, "from": job.channel, "to": channel},
            **extra,
        )

    def of_result(self, job: Job, mark: SendingMark, result: SendResult, segments: int = 1) -> Outcome:
        now = time.time()
        base: dict[str, Any] = {"attempt": mark.attempt, "provider": mark.provider}
        if result.error is None:
            cost = self.cost(job, mark.provider, segments)
            # A delivered answer is itself the receipt (a webhook receiver's 2xx): nothing to wait for.
            delivered = result.delivered
            return Outcome(
                job.id,
                job.tenant_id,
                Status.DELIVERED if delivered else Status.SENT,
                now,
                reason="provider.delivered" if delivered else "provider.accepted",
                attempt_outcome=AttemptOutcome.SENT,
                provider_message_id=result.provider_message_id,
                next_attempt_at=None if delivered else self.receipt_deadline(job, now),
                part_ids=result.part_ids,
                cost=cost.amount if cost is not None else None,
                currency=cost.currency if cost is not None else None,
                **base,
            )
        error: ProviderError = result.error
        errors: dict[str, Any] = {
            "error_kind": error.kind.value,
            "error_code": error.code,
            "error_message": error.message,
        }
        if error.kind.retryable:
            decision = next_retry(
                self.retry_policy,
                attempt=mark.attempt,
                now=now,
                expires_at=job.expires_at,
                retry_after=error.retry_after,
            )
            if isinstance(decision, GiveUp):
                status = Status.EXPIRED if decision.reason == REASON_EXPIRED else Status.FAILED
                return Outcome(
                    job.id,
                    job.tenant_id,
                    status,
                    now,
                    reason=decision.reason,
                    attempt_outcome=AttemptOutcome.TRANSIENT,
                    **base,
                    **errors,
                )
            return Outcome(
                job.id,
                job.tenant_id,
                Status.QUEUED,
                now,
                reason=f"retry.{error.kind.value}",
                attempt_outcome=AttemptOutcome.TRANSIENT,
                next_attempt_at=decision.at,
                **base,
                **errors,
            )
        if error.kind == ErrorKind.RECIPIENT_OPTED_OUT:
            return Outcome(
                job.id,
                job.tenant_id,
                Status.SUPPRESSED,
                now,
                reason="provider.opted_out",
                attempt_outcome=AttemptOutcome.FAILED,
                **base,
                **errors,
            )
        reason = (
            "provider.permanent.recipient_invalid"
            if error.kind == ErrorKind.RECIPIENT_INVALID
            else f"provider.permanent.{error.code}"
        )
        if job.fallback:
            # A permanent refusal on this channel; the job names another to try (same address).
            fallen = self.fall_back(
                job,
                now,
                reason,
                None,
                {"error_code": error.code},
                attempt=mark.attempt,
                attempt_outcome=AttemptOutcome.FAILED,
                provider=mark.provider,
                **errors,
            )
            if fallen.status == Status.QUEUED:
                return fallen
        return Outcome(
            job.id,
            job.tenant_id,
            Status.FAILED,
            now,
            reason=reason,
            attempt_outcome=AttemptOutcome.FAILED,
            **base,
            **errors,
        )

    def cost(self, job: Job, provider: str, segments: int) -> Cost | None:
        """What the provider charges for the attempt it took: by the recipient's carrier or country
        for a phone number, by the table's default otherwise."""
        table = self.routing.prices.get(provider)
        if table is None:
            return None
        region = region_of(job.to_addr) if job.channel in PHONE_CHANNELS else None
        return price_of(table, region.country if region else None, region.carrier if region else None, segments)

    def receipt_deadline(self, job: Job, now: float) -> float | None:
        """For a job that may still fall back, when its receipt is due (kept in next_attempt_at)."""
        if not job.fallback:
            return None
        fallback = [c for c in job.fallback.split(",") if c]
        return receipt_deadline(self.routing, job.channel, fallback, now, addresses_of(job))

"""The policy gate at dispatch: content, opt-outs, quiet hours and frequency caps, decided per claimed batch.

The rules are pure (gateway.domain); this module only gathers what they need (the suppression
list from the Store, cap counters from the State) in one round trip each per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from gateway.content_service import ContentService
from gateway.domain.limits import CapTable, HitAction, HitReason, LimitsConfig, cap_subject, is_sleeping, resolve_hit
from gateway.domain.models import Job, Status
from gateway.domain.optout import suppression_covers
from gateway.domain.quiet_hours import QuietHours, ZoneSource, country_for, decide, local_zones
from gateway.domain.retry import REASON_EXPIRED
from gateway.domain.template_jobs import content_for_channel
from gateway.state.base import CapReservation, State
from gateway.store.port import GateStore
from gateway.store.records import Outcome


@dataclass(frozen=True, slots=True)
class Whereabouts:
    zones: tuple[ZoneInfo, ...]
    source: ZoneSource
    country: str | None


# For a job whose category has no quiet hours: _quiet_until finds no window, whatever the zones.
ANYWHERE = Whereabouts((), ZoneSource.UNCONFIGURED, None)


@dataclass
class GateResult:
    passed: list[Job] = field(default_factory=list)
    decided: list[Outcome] = field(default_factory=list)
    # Cap reservations held for passed jobs, by message id: released if the send does not happen.
    reservations: dict[str, CapReservation] = field(default_factory=dict)


def suppression_for(suppressed: Mapping[tuple[str, str, str], tuple[str, str]], job: Job) -> str | None:
    """The reason of a suppression of the job's address or user that covers its category, if any."""
    for key in ((job.tenant_id, "address", job.to_addr), (job.tenant_id, "user_id", job.user_id or "")):
        found = suppressed.get(key)
        if found is not None and suppression_covers(found[1], job.category):
            return found[0]
    return None


class PolicyGate:
    def __init__(
        self,
        store: GateStore,
        state: State,
        limits: LimitsConfig,
        quiet_hours: QuietHours,
        clock: Callable[[], float] = time.time,
        content: ContentService | None = None,
        tenant_zone: Callable[[str], str | None] = lambda _tenant: None,
    ) -> None:
        self.content = content
        self.tenant_zone = tenant_zone
        self.store = store
        self.state = state
        self.caps: CapTable = limits.caps
        self.limits = limits
        self.quiet_hours = quiet_hours
        self.clock = clock

    async def judge(self, jobs: Sequence[Job], providers: Mapping[str, str]) -> GateResult:
        """`providers` is the provider each job is routed to (content rules differ per route)."""
        result = GateResult()
        now = self.clock()
        if self.content is not None:
            jobs = self._content_allowed(jobs, providers, now, result)
        suppressed = await self.store.suppressed_among(
            [(j.tenant_id, "address", j.to_addr) for j in jobs]
            + [(j.tenant_id, "user_id", j.user_id) for j in jobs if j.user_id]
        )
        sleeping = await self._sleeping(jobs, now)
        facts = await self.store.local_time_facts([(j.tenant_id, j.user_id) for j in jobs if j.user_id])
        capped: list[tuple[Job, Whereabouts, CapReservation]] = []
        for job in jobs:
            reason = suppression_for(suppressed, job)
            if reason is not None:
                result.decided.append(
                    Outcome(
                        job.id,
                        job.tenant_id,
                        Status.SUPPRESSED,
                        now,
                        reason="suppressed.opt_out",
                        detail={"suppression": reason},
                    )
                )
                continue
            if job.id in sleeping:
                result.decided.append(
                    Outcome(
                        job.id,
                        job.tenant_id,
                        Status.SUPPRESSED,
                        now,
                        reason="suppressed.sleeping",
                        detail=sleeping[job.id],
                    )
                )
                continue
            # A category no quiet-hours rule governs goes at any hour: the recipient's zones and
            # country (phonenumbers lookups per job) are not needed.
            where = self._where(job, facts) if self.quiet_hours.governs(job.category) else ANYWHERE
            blocked_until = self._quiet_until(job, now, where)
            if blocked_until is not False:
                timing = {"tz_source": where.source.value, "zones": [z.key for z in where.zones]}
                result.decided.append(self._hit(job, HitReason.QUIET_HOURS, blocked_until, now, timing))
                continue
            rules = self.caps.rules_for(job.category, job.channel, job.campaign)
            if not rules:
                result.passed.append(job)
                continue
            capped.append(
                (
                    job,
                    where,
                    CapReservation(
                        id=job.id,
                        subject=cap_subject(job.channel, job.to_addr, job.user_id),
                        category=job.category,
                        channel=job.channel,
                        rules=rules,
                        retention=self.caps.retention_seconds,
                    ),
                )
            )
        if capped:
            decisions = await self.state.reserve_caps([r for _, _, r in capped])
            for (job, where, reservation), decision in zip(capped, decisions, strict=True):
                if decision.allowed:
                    result.passed.append(job)
                    result.reservations[job.id] = reservation
                    continue
                until = decision.retry_at
                if until is not None:
                    # The cap frees up at `until`, but that may fall in the recipient's night.
                    later = self._quiet_until(job, until, where)
                    until = until if later is False else later
                result.decided.append(
                    self._hit(job, HitReason.CAP, until, now, {"rule": str(decision.rule) if decision.rule else None})
                )
        return result

    async def _sleeping(self, jobs: Sequence[Job], now: float) -> dict[str, dict[str, Any]]:
        """Marketing jobs to recipients who never answered the last N messages: left alone."""
        policy = self.limits.sleeping
        marketing = [j for j in jobs if j.category == "marketing"]
        if policy is None or not marketing:
            return {}
        found: dict[str, dict[str, Any]] = {}
        for tenant_id in {j.tenant_id for j in marketing}:
            mine = [j for j in marketing if j.tenant_id == tenant_id]
            subjects = [("user_id", j.user_id) if j.user_id else ("address", j.to_addr) for j in mine]
            seen = await self.store.engagement(tenant_id, subjects, now - policy.window_seconds)
            for job, subject in zip(mine, subjects, strict=True):
                sends, engaged = seen.get(subject, (0, False))
                if is_sleeping(policy, sends, engaged):
                    found[job.id] = {"unanswered": sends, "window_days": policy.window_seconds / 86400}
        return found

    def _content_allowed(
        self, jobs: Sequence[Job], providers: Mapping[str, str], now: float, result: GateResult
    ) -> list[Job]:
        """Re-check content against the lists of this moment: they may have changed since accept."""
        assert self.content is not None
        allowed = []
        for job in jobs:
            report = self.content.check_message(
                channel=job.channel,
                content=content_for_channel(orjson.loads(job.content), job.channel),
                tenant_id=job.tenant_id,
                to=job.to_addr,
                category=job.category,
                provider=providers.get(job.id),
            )
            blocking = [v for v in report.violations if v.severity == "block"] if report else []
            if not blocking:
                allowed.append(job)
                continue
            first = blocking[0]
            result.decided.append(
                Outcome(
                    job.id,
                    job.tenant_id,
                    Status.REJECTED,
                    now,
                    reason=f"content.{first.rule}",
                    error_message=first.message,
                    detail={
                        "violations": [
                            {
                                "rule": v.rule,
                                "field": f"/content/{v.field}",
                                "match": v.match,
                                "start": v.start,
                                "end": v.end,
                            }
                            for v in blocking
                        ]
                    },
                )
            )
        return allowed

    def _where(self, job: Job, facts: Mapping[tuple[str, str], tuple[str | None, str | None]]) -> Whereabouts:
        """The zones a job's recipient may be in (domain/quiet_hours.local_zones) and their country."""
        recipient_tz, profile_phone = facts.get((job.tenant_id, job.user_id or ""), (None, None))
        phone = job.to_addr if job.channel in ("sms", "voice") else profile_phone
        zones, source = local_zones(
            job_tz=job.tz, recipient_tz=recipient_tz, phone=phone, tenant_tz=self.tenant_zone(job.tenant_id)
        )
        return Whereabouts(zones, source, country_for(phone))

    def _quiet_until(self, job: Job, at: float, where: Whereabouts) -> float | bool | None:
        """False when a send at `at` is inside the allowed window; else the next allowed moment
        (None: the candidate zones never share one)."""
        decision = decide(
            self.quiet_hours,
            datetime.fromtimestamp(at, UTC),
            category=job.category,
            channel=job.channel,
            zones=where.zones,
            source=where.source,
            country=where.country,
        )
        if decision.allowed:
            return False
        return decision.next_allowed.timestamp() if decision.next_allowed else None

    def _hit(
        self,
        job: Job,
        reason: HitReason,
        until: float | bool | None,
        now: float,
        detail: dict[str, Any] | None = None,
    ) -> Outcome:
        retry_at = None if until is False or until is None else float(until)
        hit = resolve_hit(self.limits.policy(job.category), reason, retry_at, job.expires_at)
        info = {"blocked_by": reason.value, **(detail or {})}
        if hit.action is HitAction.DEFER:
            return Outcome(
                job.id,
                job.tenant_id,
                Status.DEFERRED,
                now,
                reason=reason.value,
                next_attempt_at=hit.until,
                detail=info,
            )
        if hit.action is HitAction.EXPIRE:
            return Outcome(job.id, job.tenant_id, Status.EXPIRED, now, reason=REASON_EXPIRED, detail=info)
        return Outcome(job.id, job.tenant_id, Status.SUPPRESSED, now, reason=reason.value, detail=info)

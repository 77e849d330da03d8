"""The dispatcher: claims due jobs, hands them to providers, records what happened.

The worker is thin: decisions come from gateway.domain, I/O from the Store and the providers.
A job is committed as `sending` before the provider sees it; after a crash that is how the next
worker knows the hand-off outcome must be asked for, or decided by policy, never guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from typing import Any

import orjson
import structlog

from gateway.background import survived
from gateway.domain.content.encoding import measure_sms
from gateway.domain.models import FINAL_FAILURES, HANDED_OVER, AttemptOutcome, Job, Status
from gateway.domain.numbers import Signal, receipt_signals
from gateway.domain.regions import region_of
from gateway.domain.retry import REASON_EXPIRED, RetryPolicy
from gateway.domain.routing import (
    CircuitBreaker,
    Route,
    RoutingConfig,
    choose_route,
    region_denial,
)
from gateway.domain.template_jobs import content_for_channel
from gateway.gate import PolicyGate
from gateway.link_tracking import LinkTracker
from gateway.metrics import Metrics
from gateway.number_pool import Assignment, NumberPool, PoolDecision
from gateway.outcome_rules import OutcomeRules
from gateway.pacer import ThroughputPacer
from gateway.provider_registry import ProviderRegistry
from gateway.recovery import PROVIDER_CALL_TIMEOUT, Recovery
from gateway.retry_budget import RetryBudget
from gateway.settings import WorkerSettings
from gateway.state.base import CapReservation, State
from gateway.store.port import DispatchStore
from gateway.store.records import Outcome, SendingMark
from providers.base import ErrorKind, Outbound

log = structlog.get_logger("gateway.worker")


def result_is_failure(outcome: Outcome) -> bool:
    """What counts against a provider's circuit: it did not answer, or answered with a transient error."""
    return outcome.attempt_outcome in (AttemptOutcome.TRANSIENT, AttemptOutcome.UNKNOWN)


class Worker:
    def __init__(
        self,
        store: DispatchStore,
        providers: ProviderRegistry,
        settings: WorkerSettings,
        metrics: Metrics,
        state: State,
        gate: PolicyGate,
        pacer: ThroughputPacer,
        budget: RetryBudget,
        routing: RoutingConfig | None = None,
        links: LinkTracker | None = None,
        numbers: NumberPool | None = None,
    ) -> None:
        self.links = links
        self.numbers = numbers
        self.budget = budget
        self.routing = routing or RoutingConfig()
        # Per provider, per process: a failing provider is left alone for a while so jobs fail over.
        self.breakers: dict[str, CircuitBreaker] = {}
        self.store = store
        self.state = state
        self.gate = gate
        self.pacer = pacer
        # Jobs claimed by this worker and not yet recorded: their leases are renewed while held.
        self._held: set[str] = set()
        self._handing_off: set[str] = set()  # held by a hand-off task, released when it ends
        self.providers = providers
        self.settings = settings
        self.metrics = metrics
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.retry_policy = RetryPolicy(
            settings.max_attempts, settings.backoff_base_seconds, settings.backoff_max_seconds
        )
        self.rules = OutcomeRules(self.routing, self.retry_policy)
        self.recovery = Recovery(store, providers, settings, metrics, self.rules)
        self._inflight: set[asyncio.Task[None]] = set()
        self._metric_series: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.budget.start()
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="dispatch-loop"),
            asyncio.create_task(self.recovery.run(self.worker_id, self._stopping), name="recovery-loop"),
            asyncio.create_task(self._lease_loop(), name="lease-loop"),
        ]

    async def stop(self) -> None:
        """Stop claiming, let hand-offs in flight finish (within the grace period), record them."""
        self._stopping.set()
        self.store.work_available.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._inflight:
            _, still = await asyncio.wait(self._inflight, timeout=self.settings.shutdown_grace_seconds)
            for task in still:
                # Left in `sending`: recovery decides after the lease, by lookup or policy.
                task.cancel()
            if still:
                await asyncio.wait(still)
        await self.pacer.close()
        await self.budget.close()
        await self.store.flush_outcomes()
        # Jobs claimed but never handed off go back to the queue at once, not after the lease.
        await self.store.release_leases(self.worker_id, sorted(self._held))

    # --- the dispatch loop ------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        self.store.listen_for_work()
        full = True  # the last claim filled its batch: more is waiting, claim again at once
        while not self._stopping.is_set():
            free = self.settings.concurrency - len(self._inflight)
            if free < min(self.settings.batch_size, self.settings.concurrency) // 4 or free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            if not full:
                await self._await_work()
                if self._stopping.is_set():
                    break
            limit = min(free, self.settings.batch_size)
            self.store.work_available.clear()
            try:
                jobs = await self.store.claim_due(self.worker_id, limit, self.settings.lease_seconds)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a failed claim (e.g. an outage)
                survived(self.metrics, "dispatch", "claiming due jobs failed; retrying", exc)
                await asyncio.sleep(1.0)
                full = True  # claim again after the pause, whether or not new work is announced
                continue
            full = len(jobs) >= limit
            if jobs:
                await self._dispatch_claimed(jobs)

    async def _await_work(self) -> None:
        """Until new work is announced (an accept here, a NOTIFY from another process) or the poll
        interval ends; once announced, a few milliseconds more (`coalesce_ms`), so what else becomes
        due meanwhile is claimed in the same batch: a trickle then costs a claim, a `sending` commit
        and an outcome commit per batch, not per message."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.store.work_available.wait(), self.settings.poll_interval_ms / 1000)
            if self.settings.coalesce_ms > 0 and not self._stopping.is_set():
                await asyncio.sleep(self.settings.coalesce_ms / 1000)

    async def _dispatch_claimed(self, jobs: list[Job]) -> None:
        # Held from the claim on, so the lease is renewed while the gate and the number pool
        # decide (Redis round trips on a busy machine can outlast a short lease).
        claimed = {job.id for job in jobs}
        self._held.update(claimed)
        try:
            await self._dispatch(jobs)
        except Exception as exc:  # noqa: BLE001
            # The loop must outlive a failed batch (e.g. a database outage): the jobs not yet
            # handed off are no longer held, so they are claimed again once their lease ends.
            survived(
                self.metrics,
                "dispatch",
                "dispatching a batch failed; its jobs are claimed again after their lease",
                exc,
                jobs=len(jobs),
            )
            await asyncio.sleep(1.0)
        finally:
            self._held.difference_update(claimed - self._handing_off)

    async def _dispatch(self, jobs: list[Job]) -> None:
        now = time.time()
        decided: list[Outcome] = []
        routable: list[Job] = []
        routes: dict[str, str] = {}
        unavailable = frozenset(name for name, breaker in self.breakers.items() if not breaker.available(now))
        for job in jobs:
            denial = self._region_denial(job, now)
            route = self._route(job, unavailable)
            if job.expires_at is not None and now >= job.expires_at:
                decided.append(Outcome(job.id, job.tenant_id, Status.EXPIRED, now, reason=REASON_EXPIRED))
            elif denial is not None:
                decided.append(denial)
            elif route is None:
                decided.append(
                    Outcome(
                        job.id,
                        job.tenant_id,
                        Status.FAILED,
                        now,
                        reason="route.no_provider",
                        detail={"channel": job.channel},
                    )
                )
            elif job.attempt_count >= 1 and not self.budget.allows_retry(route.provider):
                # Over the retry budget: wait, without calling the provider, and without losing the job.
                wait = self.budget.policy.window_seconds / 4 * random.uniform(0.5, 1.0)
                decided.append(
                    Outcome(
                        job.id,
                        job.tenant_id,
                        Status.QUEUED,
                        now,
                        reason="retry.budget",
                        next_attempt_at=now + wait,
                        detail={"provider": route.provider},
                    )
                )
            else:
                # Counted when decided, not when sent, so one batch cannot overdraw the budget.
                self.budget.record(route.provider, is_retry=job.attempt_count >= 1)
                routes[job.id] = route.provider
                routable.append(job)
        gate = await self.gate.judge(routable, routes) if routable else None
        if gate is not None:
            decided.extend(gate.decided)
        if decided:
            channels = {job.id: job.channel for job in jobs}
            for outcome in decided:
                if outcome.status in FINAL_FAILURES:
                    self.metrics.failed.labels(channels[outcome.message_id], "", outcome.reason or "").inc()
            await self.store.record_outcomes(decided)
        if gate is None:
            return
        passed = gate.passed
        numbers = await self._assign_numbers(passed, routes, gate.reservations, now)
        if numbers.decided:
            gone = {outcome.message_id for outcome in numbers.decided}
            passed = [job for job in passed if job.id not in gone]
        for job in passed:
            assignment = numbers.assigned.get(job.id)
            sender = assignment.number.sender if assignment is not None else None
            mark = SendingMark(job.id, job.tenant_id, job.attempt_count + 1, job.channel, routes[job.id], sender, now)
            self._held.add(job.id)
            self._handing_off.add(job.id)
            task = asyncio.create_task(self._hand_off(mark, job, gate.reservations.get(job.id), assignment))
            self._inflight.add(task)
            task.add_done_callback(self._done)

    async def _assign_numbers(
        self,
        jobs: list[Job],
        routes: dict[str, str],
        reservations: dict[str, CapReservation],
        now: float,
    ) -> PoolDecision:
        """A sender number from the pool for each job that has one; jobs left without a number are
        recorded here (failed: pool exhausted; deferred: every number at its daily cap)."""
        if self.numbers is None or not jobs:
            return PoolDecision()
        try:
            decision = await self.numbers.assign(jobs, routes, now)
        except Exception as exc:  # noqa: BLE001 - the batch waits a moment rather than failing its jobs
            survived(self.metrics, "numbers-assign", "choosing sender numbers failed; the jobs wait a moment", exc)
            decision = PoolDecision(
                decided=[
                    Outcome(j.id, j.tenant_id, Status.QUEUED, now, reason="retry.numbers", next_attempt_at=now + 1.0)
                    for j in jobs
                ]
            )
        if decision.decided:
            # Nothing goes out for these: the recipients' caps must not count them.
            held = [reservations[o.message_id] for o in decision.decided if o.message_id in reservations]
            if held:
                await self._release_caps(held)
            channels = {job.id: job.channel for job in jobs}
            for outcome in decision.decided:
                if outcome.status in FINAL_FAILURES:
                    self.metrics.failed.labels(channels[outcome.message_id], "", outcome.reason or "").inc()
            await self.store.record_outcomes(decision.decided)
        return decision

    def _route(self, job: Job, unavailable: frozenset[str]) -> Route | None:
        retrying = job.reason is not None and str(job.reason).startswith(("retry.", "recovered."))
        return choose_route(
            job.channel,
            self.providers.by_channel,
            self.routing,
            unavailable=unavailable,
            failed_last=job.provider if retrying else None,
            key=job.id,
        )

    def _region_denial(self, job: Job, now: float) -> Outcome | None:
        """A channel that cannot reach the recipient's region: fall back, or fail with the rule."""
        if not self.routing.rules or job.channel not in ("sms", "voice"):
            return None
        region = region_of(job.to_addr)
        remaining = [c for c in (job.fallback or "").split(",") if c]
        denial = region_denial(self.routing, job.channel, region, remaining)
        if denial is None:
            return None
        detail: dict[str, Any] = {"rule": str(denial.rule), "province": region.province, "country": region.country}
        if denial.unknown:
            detail["unknown"] = list(denial.unknown)
        return self.rules.fall_back(job, now, denial.reason, denial.rule, detail)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("hand-off task crashed", error=repr(task.exception()))

    async def _hand_off(
        self,
        mark: SendingMark,
        job: Job,
        reservation: CapReservation | None,
        number: Assignment | None = None,
    ) -> None:
        try:
            await self._hand_off_held(mark, job, reservation, number)
        finally:
            self._held.discard(job.id)
            self._handing_off.discard(job.id)

    async def _hand_off_held(
        self,
        mark: SendingMark,
        job: Job,
        reservation: CapReservation | None,
        number: Assignment | None,
    ) -> None:
        provider = self.providers.get(mark.provider)
        assert provider is not None
        # A templated job that fell back reads the body of its new channel, from the same version.
        content = content_for_channel(orjson.loads(job.content), job.channel, mark.provider)
        tracked: list[dict[str, Any]] = []
        if self.links is not None:
            content, tracked = self.links.track(job, content, mark.provider)
        length = measure_sms(content.get("text", "")) if job.channel == "sms" else None
        segments = length.segments if length is not None else 1
        # Wait for throughput before the job is marked `sending`: a crash while waiting leaves it
        # queued (safe to resend), not in an unknowable hand-off.
        await self.pacer.admit(
            mark.provider, mark.sender, segments, sender_rate=number.number.rate if number is not None else None
        )
        mark = SendingMark(
            mark.message_id,
            mark.tenant_id,
            mark.attempt,
            mark.channel,
            mark.provider,
            mark.sender,
            time.time(),
            links=tracked,
            worker=self.worker_id,
        )
        if not await self.store.mark_sending(mark, self.settings.lease_seconds):
            # This process stalled past the job's lease and another worker claimed it: sending here too
            # would deliver it twice. The other worker reserves its own caps and number.
            log.warning(
                "lease lost before the hand-off; the job is left to the worker that holds it",
                message_id=job.id,
                tenant=job.tenant_id,
                campaign=job.campaign,
            )
            if reservation is not None:
                await self._release_caps([reservation], message_id=job.id, tenant=job.tenant_id)
            if number is not None and self.numbers is not None and number.reservation is not None:
                await self.numbers.release([number.reservation])
            return
        outbound = Outbound(
            reference=job.id,
            tenant_id=job.tenant_id,
            channel=job.channel,
            to=job.to_addr,
            content=content,
            category=job.category,
            sender=mark.sender,
            campaign=job.campaign,
            attempt=mark.attempt,
            segments=segments,
            encoding=length.encoding if length is not None else None,
            expires_at=job.expires_at,
        )
        bound = log.bind(message_id=job.id, tenant=job.tenant_id, campaign=job.campaign)
        breaker = self.breakers.setdefault(
            mark.provider, CircuitBreaker(self.routing.circuit_failures, self.routing.circuit_cooldown_seconds)
        )
        breaker.begin(time.time())
        started = time.monotonic()
        try:
            # A deadline on this task, not asyncio.wait_for: that runs the call as a task of its own.
            async with asyncio.timeout(PROVIDER_CALL_TIMEOUT):
                result = await provider.send(outbound)
        except Exception as exc:  # noqa: BLE001 - whatever a provider's code raises, the hand-off is of unknown outcome
            # The provider may or may not have taken the message: this is a hand-off of unknown outcome.
            bound.warning("provider call ended without an answer", provider=mark.provider, error=repr(exc))
            outcome = await self.recovery.resolve_unknown(
                job, mark.provider, mark.attempt, f"{type(exc).__name__}: {exc}"
            )
        else:
            outcome = self.rules.of_result(job, mark, result, segments)
        if result_is_failure(outcome):
            breaker.failure(time.time())
        else:
            breaker.success()
        self._observe(job, mark, outcome, started, bound)
        await self._settle_holds(job, outcome, reservation, number)
        early_receipts = await self.store.record_outcome(outcome)
        if number is not None and self.numbers is not None:
            # A receipt that came before this hand-off was recorded is evidence about its number too.
            for receipt in early_receipts:
                for signal in receipt_signals(receipt.status, receipt.error_kind):
                    self.numbers.note(number.number, signal)

    async def _lease_loop(self) -> None:
        interval = max(0.2, self.settings.lease_seconds / 3)
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
            if self._held:
                try:
                    await self.store.renew_leases(self.worker_id, sorted(self._held), self.settings.lease_seconds)
                except Exception as exc:  # noqa: BLE001 - renewed again next round, before the leases run out
                    survived(self.metrics, "lease", "renewing leases failed", exc, jobs=len(self._held))

    def _observe(self, job: Job, mark: SendingMark, outcome: Outcome, started: float, bound: Any) -> None:
        finished = time.time()
        call, latency, dispatched = self._series(job.channel, mark.provider, outcome.attempt_outcome or "none")
        call.observe(time.monotonic() - started)
        due = max(job.created_at, job.send_at or 0.0, job.next_attempt_at or 0.0)
        latency.observe(max(0.0, finished - due))
        dispatched.inc()
        if outcome.status in FINAL_FAILURES:
            self.metrics.failed.labels(job.channel, mark.provider, outcome.reason or "").inc()
            bound.info(
                "message not delivered", status=outcome.status, reason=outcome.reason, error_code=outcome.error_code
            )
        else:
            bound.debug("message handed off", status=outcome.status, provider=mark.provider)

    def _series(self, channel: str, provider: str, attempt: str) -> tuple[Any, Any, Any]:
        """A hand-off's metric series, looked up once per label set (prometheus_client's labels()
        validates and locks on every call: ~3 % of the worker's CPU per message on the SMPP path)."""
        key = (channel, provider, attempt)
        series = self._metric_series.get(key)
        if series is None:
            m = self.metrics
            series = self._metric_series[key] = (
                m.provider_call.labels(provider),
                m.dispatch_latency.labels(channel, provider),
                m.dispatched.labels(channel, provider, attempt),
            )
        return series

    async def _settle_holds(
        self, job: Job, outcome: Outcome, reservation: CapReservation | None, number: Assignment | None
    ) -> None:
        """Gives back what a job held for a send that reached no one; notes its number's evidence."""
        if reservation is not None and outcome.status not in HANDED_OVER:
            # Nothing reached the recipient: the cap must not count it (a retry reserves again).
            await self._release_caps([reservation], message_id=job.id, tenant=job.tenant_id)
        if number is None or self.numbers is None:
            return
        if outcome.attempt_outcome == AttemptOutcome.SENT:
            self.numbers.note(number.number, Signal.SENT)
        elif outcome.error_kind == ErrorKind.SENDER_FLAGGED:
            # The provider refused the number itself: evidence, and the retry picks another one.
            self.numbers.note(number.number, Signal.FILTERED)
        if outcome.status not in HANDED_OVER and number.reservation is not None:
            await self.numbers.release([number.reservation])

    async def _release_caps(self, reservations: list[CapReservation], **context: Any) -> None:
        """Give back cap reservations of jobs that sent nothing; if the State is away they lapse with
        their window (the recipient is under-contacted for a while, never over-contacted)."""
        try:
            await self.state.release_caps(reservations)
        except Exception as exc:  # noqa: BLE001 - a lapsed reservation must not fail the job
            survived(self.metrics, "cap-release", "releasing cap reservations failed", exc, **context)

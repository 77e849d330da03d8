"""Sender number pools at work: which number a job goes out from, what its receipts say about that
number, and the state changes that follow.

The decisions are gateway.domain.numbers'; this module gathers what they need (numbers and sticky
assignments from the Store, evidence counters and daily caps from the State, so that every API
and worker process sees the same health) and records what they decide, each state change as an
event with its evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.background import survived
from gateway.domain.limits import ALL_CHANNELS, CapRule, Period
from gateway.domain.models import Job, Status
from gateway.domain.numbers import (
    Counts,
    HealthPolicy,
    NumberState,
    Recipient,
    Rotation,
    SenderNumber,
    Signal,
    Transition,
    assess,
    daily_cap,
    flag,
    restore,
    retire,
    serving,
)
from gateway.domain.regions import region_of
from gateway.metrics import Metrics
from gateway.number_settings import NumbersSettings, PoolSettings, SenderSettings
from gateway.reputation import EntryPointReputationChecker, HttpReputationChecker, ReputationChecker
from gateway.state.base import CapReservation, State, WindowCounter
from gateway.store.batcher import GroupCommitter
from gateway.store.port import NumberStore
from gateway.store.records import Outcome, to_number

log = structlog.get_logger("gateway.numbers")

BUCKETS = 12
CAP_CATEGORY = "sender"  # the cap log of a number, apart from recipients' caps
NUMBER_CHANNELS = ("sms", "voice")
FLUSH_SECONDS = 0.2


def policy_of(settings: NumbersSettings) -> HealthPolicy:
    return HealthPolicy(
        window_seconds=settings.window_seconds,
        filtered_to_suspect=settings.filtered_to_suspect,
        filtered_to_quarantine=settings.filtered_to_quarantine,
        min_sample=settings.min_sample,
        failure_ratio=settings.failure_ratio,
        failure_margin=settings.failure_margin,
        assumed_baseline=settings.assumed_baseline,
        quarantine_failure_rate=settings.quarantine_failure_rate,
        opt_out_rate=settings.opt_out_rate,
        cooldown_seconds=settings.cooldown_seconds,
        probation_seconds=settings.probation_seconds,
        probation_deliveries=settings.probation_deliveries,
        probation_daily_cap=settings.probation_daily_cap,
        warmup_caps=settings.warmup_caps,
    )


def reputation_of(settings: NumbersSettings) -> ReputationChecker | None:
    rep = settings.reputation
    if rep.url:
        return HttpReputationChecker(rep.url, rep.timeout_seconds)
    if rep.entry_point:
        return EntryPointReputationChecker.load(rep.entry_point, rep.timeout_seconds)
    return None


def new_number_id() -> str:
    return "num_" + secrets.token_hex(8)


def number_row(
    *,
    pool: str,
    sender: str,
    channel: str,
    kind: str = "number",
    provider: str | None = None,
    countries: Sequence[str] = (),
    categories: Sequence[str] = (),
    region: str | None = None,
    daily_cap: int | None = None,
    rate: float | None = None,
    warmup: bool = False,
    source: str = "api",
    now: float,
) -> dict[str, Any]:
    return {
        "id": new_number_id(),
        "pool": pool,
        "sender": sender,
        "kind": kind,
        "provider": provider,
        "channel": channel,
        "countries": ",".join(sorted({c.upper() for c in countries})),
        "categories": ",".join(sorted(set(categories))),
        "region": region,
        "daily_cap": daily_cap,
        "rate": rate,
        "warmup": warmup,
        "state": NumberState.ACTIVE.value,
        "state_reason": "created",
        "state_since": now,
        "cooldown_until": None,
        "epoch": 0,
        "checked_at": None,
        "source": source,
        "created_at": now,
        "updated_at": now,
    }


def config_rows(pools: Mapping[str, PoolSettings], now: float) -> list[dict[str, Any]]:
    rows = []
    for name, pool in pools.items():
        for entry in pool.senders:
            spec = entry if isinstance(entry, SenderSettings) else SenderSettings(sender=entry)
            rows.append(
                number_row(
                    pool=name,
                    sender=spec.sender,
                    channel=pool.channel,
                    kind=spec.kind or pool.kind,
                    provider=pool.provider,
                    countries=pool.countries,
                    categories=pool.categories,
                    region=spec.region,
                    daily_cap=spec.daily_cap if spec.daily_cap is not None else pool.daily_cap,
                    rate=spec.rate if spec.rate is not None else pool.rate,
                    warmup=spec.warmup if spec.warmup is not None else pool.warmup,
                    source="config",
                    now=now,
                )
            )
    return rows


@dataclass
class Assignment:
    number: SenderNumber
    reservation: CapReservation | None  # the number's daily cap, released if nothing is sent


@dataclass
class PoolDecision:
    assigned: dict[str, Assignment] = field(default_factory=dict)  # by message id
    decided: list[Outcome] = field(default_factory=list)  # jobs that get no number now


# A job, its candidate numbers in order, and how far down them it is (past numbers found full).
_Candidates = tuple[Job, list[SenderNumber], int]


def _served(
    jobs: Sequence[Job], routes: Mapping[str, str], pool: Sequence[SenderNumber]
) -> list[tuple[Job, Recipient, list[SenderNumber]]]:
    """The jobs some pool serves, each with its recipient and the numbers that serve it."""
    # Where the recipient is matters only to pools that name countries or regions (and costs a
    # phone-number lookup per recipient); jobs with the same route share one list of servers.
    placed = any(n.countries or n.region for n in pool)
    servers: dict[Recipient, list[SenderNumber]] = {}
    wanted = []
    for job in jobs:
        region = region_of(job.to_addr) if placed else None
        r = Recipient(
            routes[job.id],
            job.channel,
            job.category,
            region.country if region else None,
            region.province if region else None,
        )
        served = servers.get(r)
        if served is None:
            served = servers[r] = serving(pool, r)
        if served:
            wanted.append((job, r, served))
    return wanted


class NumberPool:
    def __init__(
        self,
        store: NumberStore,
        state: State,
        settings: NumbersSettings,
        *,
        reputation: ReputationChecker | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.state = state
        self.settings = settings
        self.policy = policy_of(settings)
        self.reputation = reputation
        self.clock = clock
        # Per process: when this process last gave out each number (the shared caps hold the limits).
        self.last_used: dict[str, float] = {}
        # Observations counted together, FLUSH_SECONDS after the first (and after the last count:
        # paced), at once for one that may change a number's state; nothing wakes while none are noted.
        self._evidence: GroupCommitter[tuple[SenderNumber, Signal], None] = GroupCommitter(
            self._count_noted, delay_seconds=FLUSH_SECONDS, max_items=500, name="numbers-evidence", paced=True
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._empty_until = 0.0

    # --- lifecycle ----------------------------------------------------------------------------

    async def sync_config(self) -> int:
        if not self.settings.pools:
            return 0
        now = self.clock()
        return await self.store.sync_config_numbers(config_rows(self.settings.pools, now), now)

    def start(self, *, ticking: bool) -> None:
        if ticking:
            self._tasks.append(asyncio.create_task(self._tick_loop(), name="numbers-tick"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._evidence.settle()

    # --- reading --------------------------------------------------------------------------------

    async def load(self, pool: str | None = None, state: str | None = None) -> list[SenderNumber]:
        return await self.store.sender_numbers(pool, state)

    async def has_numbers(self) -> bool:
        """Whether any number exists, looked up at most once a second while there are none (the
        usual case without pools), so the receipt and dispatch paths pay nothing for the feature."""
        now = self.clock()
        if now < self._empty_until:
            return False
        if await self.store.any_number():
            return True
        self._empty_until = now + 1.0
        return False

    def added(self) -> None:
        """A number was added in this process: stop assuming there are none."""
        self._empty_until = 0.0

    def counter(self, number: SenderNumber, signal: Signal) -> WindowCounter:
        return WindowCounter(f"num:{number.id}:{number.epoch}:{signal.value}", self.policy.window_seconds, BUCKETS)

    async def counts(self, numbers: Sequence[SenderNumber]) -> dict[str, Counts]:
        if not numbers:
            return {}
        signals = tuple(Signal)
        values = await self.state.read_counters([self.counter(n, s) for n in numbers for s in signals])
        out = {}
        for i, n in enumerate(numbers):
            chunk = values[i * len(signals) : (i + 1) * len(signals)]
            out[n.id] = Counts.of(dict(zip(signals, chunk, strict=True)))
        return out

    # --- choosing a number ----------------------------------------------------------------------

    async def assign(self, jobs: Sequence[Job], routes: Mapping[str, str], now: float) -> PoolDecision:
        """A sender number for each job its route's pool serves; jobs without a pool are left out
        (their provider's own sender is used). One Store read for the pool and one for the sticky
        numbers, then one State call per round of daily-cap reservations."""
        decision = PoolDecision()
        phone_jobs = [j for j in jobs if j.channel in NUMBER_CHANNELS]
        if not phone_jobs or not await self.has_numbers():
            return decision
        pool = await self.load()
        wanted = _served(phone_jobs, routes, pool) if pool else []
        if not wanted:
            return decision
        sticky = await self.store.sticky_numbers([(j.tenant_id, j.channel, j.to_addr) for j, _, _ in wanted])
        queue = self._candidates(wanted, pool, sticky, now, decision)
        await self._reserve(queue, now, decision)
        moved = [
            {
                "tenant_id": job.tenant_id,
                "channel": job.channel,
                "recipient": job.to_addr,
                "number_id": decision.assigned[job.id].number.id,
                "assigned_at": now,
            }
            for job, _, _ in wanted
            if job.id in decision.assigned
            and sticky.get((job.tenant_id, job.channel, job.to_addr)) != decision.assigned[job.id].number.id
        ]
        if moved:
            await self.store.assign_sticky(moved)
        return decision

    def _candidates(
        self,
        wanted: Sequence[tuple[Job, Recipient, list[SenderNumber]]],
        pool: Sequence[SenderNumber],
        sticky: Mapping[tuple[str, str, str], str],
        now: float,
        decision: PoolDecision,
    ) -> dict[str, _Candidates]:
        """Each job's numbers in the order to try them; a job with none left is failed in `decision`."""
        by_sender: dict[str, set[str]] = {}
        for n in pool:
            by_sender.setdefault(n.sender, set()).add(n.id)
        rotations: dict[Recipient, Rotation] = {}
        queue: dict[str, _Candidates] = {}
        for job, r, served in wanted:
            avoid: frozenset[str] = frozenset()
            if job.sender and str(job.reason or "").startswith("retry.sender_flagged"):
                avoid = frozenset(by_sender.get(job.sender, ()))
            rotation = rotations.get(r)
            if rotation is None:
                rotation = rotations[r] = Rotation(served, r, self.last_used)
            order = rotation.take(sticky.get((job.tenant_id, job.channel, job.to_addr)), avoid)
            if not order:
                decision.decided.append(self._exhausted(job, served, now))
                continue
            # Given out now, so the next job of this batch starts from the next least-used number.
            self.last_used[order[0].id] = now + len(queue) * 1e-6
            queue[job.id] = (job, order, 0)
        return queue

    async def _reserve(self, queue: dict[str, _Candidates], now: float, decision: PoolDecision) -> None:
        """Walk each job down its numbers until one has room under its daily cap (one State call per
        round); a job whose every number is full waits for the first to free up."""
        full: dict[str, float | None] = {}  # numbers found at their cap in this batch -> when one frees
        while queue:
            asks: list[tuple[str, CapReservation]] = []
            for job_id, (job, order, index) in list(queue.items()):
                while index < len(order) and order[index].id in full:
                    index += 1
                if index == len(order):
                    del queue[job_id]
                    decision.decided.append(self._capped(job, order, full, now))
                    continue
                queue[job_id] = (job, order, index)
                number = order[index]
                reservation = self._reservation(job, number, now)
                if reservation is None:
                    decision.assigned[job_id] = Assignment(number, None)
                    del queue[job_id]
                else:
                    asks.append((job_id, reservation))
            if not asks:
                return
            answers = await self.state.reserve_caps([r for _, r in asks])
            for (job_id, reservation), answer in zip(asks, answers, strict=True):
                job, order, index = queue[job_id]
                if answer.allowed:
                    decision.assigned[job_id] = Assignment(order[index], reservation)
                    del queue[job_id]
                    continue
                full[order[index].id] = answer.retry_at
                queue[job_id] = (job, order, index + 1)

    def _reservation(self, job: Job, number: SenderNumber, now: float) -> CapReservation | None:
        cap = daily_cap(number, self.policy, now)
        if cap is None:
            return None
        return CapReservation(
            id=job.id,
            subject=f"num:{number.id}",
            category=CAP_CATEGORY,
            channel=job.channel,
            rules=(CapRule(ALL_CHANNELS, cap, Period.DAY),),
            retention=Period.DAY.seconds,
        )

    def _exhausted(self, job: Job, served: Sequence[SenderNumber], now: float) -> Outcome:
        states: dict[str, int] = {}
        for n in served:
            states[n.state.value] = states.get(n.state.value, 0) + 1
        return Outcome(
            job.id,
            job.tenant_id,
            Status.FAILED,
            now,
            reason="number.pool_exhausted",
            error_message="no usable sender number in the pool",
            detail={"pools": sorted({n.pool for n in served}), "states": states},
        )

    def _capped(self, job: Job, order: Sequence[SenderNumber], full: Mapping[str, float | None], now: float) -> Outcome:
        """Every candidate is at its cap: wait for the first to free up."""
        times = [at for n in order if (at := full.get(n.id)) is not None]
        frees = min(times) if times else None
        detail = {"pools": sorted({n.pool for n in order}), "numbers": len(order)}
        if frees is None or (job.expires_at is not None and frees >= job.expires_at):
            return Outcome(job.id, job.tenant_id, Status.EXPIRED, now, reason="number.daily_cap", detail=detail)
        return Outcome(
            job.id,
            job.tenant_id,
            Status.DEFERRED,
            now,
            reason="number.daily_cap",
            next_attempt_at=frees,
            detail=detail,
        )

    async def release(self, reservations: Sequence[CapReservation]) -> None:
        if not reservations:
            return
        try:
            await self.state.release_caps(reservations)
        except Exception as exc:  # noqa: BLE001 - the reservation lapses with its day; no job fails for it
            survived(self.metrics, "numbers-release", "releasing number cap reservations failed", exc)

    # --- evidence ------------------------------------------------------------------------------

    def note(self, number: SenderNumber, signal: Signal) -> None:
        """Count an observation soon, with others (one State call for many hand-offs); at once one
        that may change the number's state."""
        self._evidence.add([(number, signal)], at_once=signal is not Signal.SENT)

    async def _count_noted(self, observations: list[tuple[SenderNumber, Signal]]) -> list[None]:
        try:
            await self.record(observations)
        except Exception as exc:  # noqa: BLE001 - counting goes on after a State or store outage
            survived(self.metrics, "numbers-flush", "counting number evidence failed", exc)
        return [None] * len(observations)

    async def record(self, observations: Sequence[tuple[SenderNumber, Signal]]) -> None:
        """Count observations and judge the numbers they could change."""
        if not observations:
            return
        # Many sends from one number in one flush are one increment.
        tally: dict[tuple[str, int, Signal], tuple[SenderNumber, int]] = {}
        for n, s in observations:
            _, count = tally.get((n.id, n.epoch, s), (n, 0))
            tally[(n.id, n.epoch, s)] = (n, count + 1)
        await self.state.incr_counters([(self.counter(n, s), count) for (_, _, s), (n, count) in tally.items()])
        watched = (NumberState.SUSPECT, NumberState.PROBATION)
        judged = {
            n.id: n
            for n, s in observations
            if s in (Signal.FAILED, Signal.FILTERED, Signal.OPT_OUT) or (n.state in watched and s is Signal.DELIVERED)
        }
        if judged:
            await self.evaluate(list(judged), self.clock())

    async def observe_senders(self, items: Sequence[tuple[str, str | None, str | None, Signal]]) -> int:
        """Observations named by sender (a receipt's message went out from it; a reply came to it):
        (sender, provider, channel, signal). Returns how many matched a pooled number."""
        if not items:
            return 0
        found = await self.store.numbers_by_sender([s for s, _, _, _ in items])
        if not found:
            return 0
        matched: list[tuple[SenderNumber, Signal]] = []
        for sender, provider, channel, signal in items:
            for n in found:
                if (
                    n.sender == sender
                    and (provider is None or n.provider is None or n.provider == provider)
                    and (channel is None or n.channel == channel)
                ):
                    matched.append((n, signal))
        await self.record(matched)
        return len(matched)

    async def evaluate(self, number_ids: Sequence[str], now: float) -> list[dict[str, Any]]:
        """Judge these numbers against the rest of their pools; apply what the evidence calls for."""
        everything = await self.load()
        by_id = {n.id: n for n in everything}
        targets = [by_id[i] for i in number_ids if i in by_id]
        pools = {n.pool for n in targets}
        members = [n for n in everything if n.pool in pools and n.state is not NumberState.RETIRED]
        counts = await self.counts(members)
        applied = []
        for number in targets:
            mine = counts.get(number.id, Counts())
            rest = sum((counts[m.id] for m in members if m.pool == number.pool and m.id != number.id), Counts())
            change = assess(number, mine, rest, self.policy, now)
            if change is not None:
                row = await self.apply(number, change, "health", now)
                if row is not None:
                    applied.append(row)
        return applied

    async def apply(self, number: SenderNumber, change: Transition, actor: str, now: float) -> dict[str, Any] | None:
        row = await self.store.apply_number_transition(number, change, actor, now)
        if row is not None:
            if self.metrics is not None:
                self.metrics.number_changes.labels(number.pool, change.to.value, change.reason).inc()
            log.warning(
                "sender number changed state",
                number_id=number.id,
                pool=number.pool,
                from_state=number.state.value,
                to_state=change.to.value,
                reason=change.reason,
                actor=actor,
            )
        return row

    # --- time: cooldowns, probation, cleared suspicion, reputation ------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_seconds)
            try:
                await self.tick(self.clock())
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a State or store outage
                survived(self.metrics, "numbers-tick", "number health tick failed", exc)

    async def tick(self, now: float) -> list[dict[str, Any]]:
        everything = await self.load()
        if self.metrics is not None:
            by_state: dict[tuple[str, str], int] = {(n.pool, s.value): 0 for n in everything for s in NumberState}
            for n in everything:
                by_state[(n.pool, n.state.value)] += 1
            for (pool, state), count in by_state.items():
                self.metrics.numbers.labels(pool, state).set(count)
        moving = [
            n.id for n in everything if n.state in (NumberState.SUSPECT, NumberState.QUARANTINED, NumberState.PROBATION)
        ]
        applied = await self.evaluate(moving, now) if moving else []
        if self.reputation is not None:
            applied += await self.check_reputation(now)
        return applied

    async def check_reputation(self, now: float) -> list[dict[str, Any]]:
        assert self.reputation is not None
        rep = self.settings.reputation
        rows = await self.store.claim_number_checks(now, rep.interval_seconds, rep.batch_size)
        if not rows:
            return []
        due = [to_number(r) for r in rows]
        try:
            flagged = await self.reputation.check(due)
        except Exception as exc:  # noqa: BLE001 - whatever the checker raised, its numbers are asked again
            survived(
                self.metrics,
                "numbers-reputation",
                "reputation check failed; asking again next run",
                exc,
                numbers=len(due),
            )
            await self.store.unclaim_number_checks({r["id"]: r["checked_at"] for r in rows}, now)
            return []
        applied = []
        for number in due:
            if number.id in flagged:
                change = flag(number, flagged[number.id], "reputation", now, self.policy)
                if change is not None:
                    row = await self.apply(number, change, "reputation", now)
                    if row is not None:
                        applied.append(row)
        return applied

    # --- operator actions -----------------------------------------------------------------------

    async def operate(self, number_id: str, action: str, reason: str, actor: str) -> tuple[dict[str, Any] | None, bool]:
        """flag / restore / retire: (the number after, whether it changed); (None, False) if unknown."""
        row = await self.store.number_row(number_id)
        if row is None:
            return None, False
        number = to_number(row)
        now = self.clock()
        if action == "flag":
            change = flag(number, reason, "operator", now, self.policy)
        elif action == "restore":
            change = restore(number, reason)
        else:
            change = retire(number, reason)
        if change is None:
            return row, False
        applied = await self.apply(number, change, actor, now)
        if applied is None:  # moved by someone else meanwhile: report what it is now
            return await self.store.number_row(number_id), False
        return applied, True

"""The status-callback loops of a worker process: read the outbox (the audit log) into deliveries,
deliver them signed, record each result; and publish each subscription's health as metrics.

Every worker process runs them; the store's leases decide who does what (one outbox reader at a
time, each delivery claimed by one worker, results fenced on the claim), so deliveries are not
duplicated across processes, and a dead worker's claims are taken over when their lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time

import structlog

from gateway.background import survived
from gateway.domain.webhooks import (
    DeliveryState,
    EndpointState,
    batch_body,
    batch_id,
    batches,
    event_body,
    next_attempt,
    retention_horizons,
    webhook_id,
)
from gateway.metrics import Metrics
from gateway.store.port import WebhookStore
from gateway.store.webhook_records import ClaimedDelivery, DeliveryResult
from gateway.webhook_sender import Answer, CallbackSender
from gateway.webhook_settings import WebhooksSettings

log = structlog.get_logger("gateway.callbacks")
OUTBOX_READ = 1000
HEALTH_SECONDS = 5.0
PRUNE_PAUSE_SECONDS = 0.05  # between two pruning transactions: the other writers' turn


class CallbackDispatcher:
    def __init__(self, store: WebhookStore, settings: WebhooksSettings, metrics: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.policy = settings.policy()
        self.metrics = metrics
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}:callbacks"
        self.sender = CallbackSender(settings)
        self._gaps: dict[int, float] = {}
        self._results: list[DeliveryResult] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        # Set after each look at the outbox: an idle delivery loop looks for due deliveries on the same
        # wake-up instead of a timer of its own (each wake-up of an idle process costs 0.3-0.7 ms of CPU
        # on a small VM, docs/BENCHMARKS.md), and right after a fan-out that made some.
        self._outbox_read = asyncio.Event()

    async def start(self) -> None:
        await self.sender.start()
        self._tasks = [
            asyncio.create_task(self._read_outbox(), name="callback-outbox"),
            asyncio.create_task(self._deliver(), name="callback-delivery"),
            asyncio.create_task(self._publish_health(), name="callback-health"),
            asyncio.create_task(self._prune_every_interval(), name="callback-retention"),
        ]

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=self.settings.timeout_seconds)
        with contextlib.suppress(Exception):
            await self._flush()
        await self.sender.close()

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _after_next_outbox_read(self, at_most: float) -> None:
        """Until the outbox reader's next look (every poll interval while idle), or `at_most` if that
        loop is held up (a slow fan-out, an outage)."""
        self._outbox_read.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox_read.wait(), at_most)

    async def _read_outbox(self) -> None:
        s = self.settings
        while not self._stopping.is_set():
            read = 0
            try:
                now = time.time()
                read = await self.store.fan_out_events(
                    self.owner, now, now + s.lease_seconds, OUTBOX_READ, self._gaps, s.outbox_gap_seconds
                )
            except Exception as exc:  # noqa: BLE001 - the outbox is read again at the next round
                survived(self.metrics, "callback-outbox", "reading the outbox failed; next round retries", exc)
            self._outbox_read.set()
            if read < OUTBOX_READ:
                await self._idle(s.poll_interval_ms / 1000)

    async def _deliver(self) -> None:
        """Rounds of: record the results that came back and claim what is due, in one commit; a
        short pause between rounds lets results gather (a commit per delivery would be the cost)."""
        s = self.settings
        while not self._stopping.is_set():
            claimed: list[ClaimedDelivery] = []
            results, self._results = self._results, []
            try:
                now = time.time()
                free = min(s.concurrency - len(self._inflight), s.batch_size)
                claimed, paused = await self.store.exchange_webhook_deliveries(
                    self.owner, results, self.policy, now, max(0, free), now + s.lease_seconds
                )
            except Exception as exc:  # noqa: BLE001 - unrecorded results stay queued for the next round
                self._results = results + self._results
                survived(self.metrics, "callback-delivery", "claiming or recording deliveries failed", exc)
                paused = []
            for endpoint_id, reason in paused:
                log.warning("callback endpoint paused", endpoint=endpoint_id, reason=reason)
            for group in self._requests(claimed):
                task = asyncio.create_task(self._attempt(group))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if claimed or self._inflight or self._results:
                await self._idle(s.round_ms / 1000)
            else:
                await self._after_next_outbox_read(2 * s.poll_interval_ms / 1000)

    def _requests(self, claimed: list[ClaimedDelivery]) -> list[list[ClaimedDelivery]]:
        """The claimed deliveries as requests: one each, or several per request to a receiver that
        is behind when [webhooks] max_events_per_request allows (claims hold one event per message)."""
        by_endpoint: dict[str, list[ClaimedDelivery]] = {}
        for delivery in claimed:
            by_endpoint.setdefault(delivery.endpoint_id, []).append(delivery)
        now = time.time()
        requests = []
        for due in by_endpoint.values():
            oldest = now - min(float(d.event["at"]) for d in due)
            sizes = batches(
                len(due),
                oldest,
                most=self.settings.max_events_per_request,
                after_lag=self.settings.batch_after_lag_seconds,
            )
            start = 0
            for size in sizes:
                requests.append(due[start : start + size])
                start += size
        return requests

    async def _attempt(self, group: list[ClaimedDelivery]) -> None:
        first = group[0]
        if len(group) == 1:
            hook_id, body = webhook_id(first.event["id"]), event_body(first.event, first.type)
        else:
            hook_id = batch_id([d.event["id"] for d in group])
            body = batch_body([(d.event, d.type) for d in group])
        answer = await self.sender.post(first.url, first.secrets, hook_id, body)
        for delivery in group:
            self._record(delivery, answer, hook_id)

    def _record(self, delivery: ClaimedDelivery, answer: Answer, hook_id: str) -> None:
        now = time.time()
        first = delivery.first_attempt_at if delivery.first_attempt_at is not None else now
        next_at = None
        if not answer.delivered:
            next_at = next_attempt(
                self.policy, attempts=delivery.attempts + 1, first_at=first, now=now, retry_after=answer.retry_after
            )
        outcome = (
            DeliveryState.DELIVERED.value
            if answer.delivered
            else ("retry" if next_at is not None else DeliveryState.DEAD.value)
        )
        self.metrics.callbacks.labels(delivery.endpoint_id, outcome).inc()
        if not answer.delivered:
            log.info(
                "callback not delivered",
                endpoint=delivery.endpoint_id,
                webhook_id=hook_id,
                status_code=answer.status_code,
                error=answer.error,
                dead=next_at is None,
            )
        self._results.append(
            DeliveryResult(
                delivery.id,
                delivery.endpoint_id,
                answer.delivered,
                now,
                first,
                answer.status_code,
                answer.error,
                next_at,
            )
        )

    async def _flush(self) -> None:
        if not self._results:
            return
        results, self._results = self._results, []
        try:
            paused = await self.store.record_webhook_results(self.owner, results, self.policy)
        except BaseException:
            self._results = results + self._results
            raise
        for endpoint_id, reason in paused:
            log.warning("callback endpoint paused", endpoint=endpoint_id, reason=reason)

    async def _publish_health(self) -> None:
        while not self._stopping.is_set():
            try:
                endpoints = await self.store.list_webhooks(None)
                health = await self.store.webhook_health([e["id"] for e in endpoints])
                now = time.time()
                for endpoint in endpoints:
                    found = health.get(endpoint["id"], {})
                    oldest = found.get("oldest_pending_at")
                    self.metrics.callback_lag.labels(endpoint["id"]).set(max(0.0, now - oldest) if oldest else 0.0)
                    self.metrics.callback_dead.labels(endpoint["id"]).set(
                        found.get("counts", {}).get(DeliveryState.DEAD, 0)
                    )
                    self.metrics.callback_paused.labels(endpoint["id"]).set(endpoint["state"] == EndpointState.PAUSED)
            except Exception as exc:  # noqa: BLE001 - the gauges keep their last values until the next read
                survived(self.metrics, "callback-health", "reading callback health failed", exc)
            await self._idle(HEALTH_SECONDS)

    async def _prune_every_interval(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.prune()
            except Exception as exc:  # noqa: BLE001 - what is left is deleted at the next interval
                survived(self.metrics, "callback-retention", "deleting old callback deliveries failed", exc)
            await self._idle(self.settings.prune_interval_seconds)

    async def prune(self) -> int:
        """Delete the finished deliveries past retention, a small batch per transaction so the writer
        is never held long; the count deleted."""
        s = self.settings
        total = 0
        for state, before in retention_horizons(
            time.time(), delivered_days=s.delivered_retention_days, dead_days=s.dead_retention_days
        ):
            deleted = await self._prune_state(state, before)
            if deleted:
                log.info("callback deliveries past retention deleted", state=str(state), deleted=deleted)
            total += deleted
        return total

    async def _prune_state(self, state: DeliveryState, before: float) -> int:
        batch, total = self.settings.prune_batch_size, 0
        while not self._stopping.is_set():
            deleted = await self.store.prune_webhook_deliveries(state, before, batch)
            total += deleted
            if deleted < batch:
                break
            await self._idle(PRUNE_PAUSE_SECONDS)
        return total

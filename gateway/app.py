"""Assembles the gateway: store, providers, HTTP API and worker, with an orderly start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import signal
import socket
import sys
from collections.abc import Coroutine
from typing import Any, Literal

import structlog
from aiohttp import web

from gateway.api import ops
from gateway.api.auth import Authenticator, TenantRateLimiter
from gateway.api.bodies import BODY_READ_TIMEOUT
from gateway.api.connection_limits import ConnectionLimits
from gateway.api.context import CONTEXT, ApiContext
from gateway.api.problems import problem_middleware
from gateway.api.server import GatewayAppRunner
from gateway.background import survived
from gateway.callback_delivery import CallbackDispatcher
from gateway.callback_intake import CallbackIntake
from gateway.content_service import ContentService
from gateway.domain import regions
from gateway.domain.content import folding
from gateway.domain.jobs import JobLimits
from gateway.domain.limits import parse_limits
from gateway.domain.pricing import cheapest_channel_costs
from gateway.domain.quiet_hours import parse_quiet_hours
from gateway.domain.retry import RetryBudgetPolicy
from gateway.domain.routing import RoutingConfig, parse_routing
from gateway.gate import PolicyGate
from gateway.key_provisioning import provision_keys
from gateway.link_redirects import Redirects
from gateway.link_tracking import LinkTracker
from gateway.metrics import Metrics
from gateway.number_pool import NumberPool, reputation_of
from gateway.pacer import ThroughputPacer
from gateway.parent_watch import watch_parent
from gateway.provider_registry import ProviderRegistry, build_providers
from gateway.retry_budget import RetryBudget
from gateway.settings import Settings
from gateway.state.base import State, open_state
from gateway.store.port import Store
from gateway.store.store import SqlStore
from gateway.worker import Worker

Role = Literal["api", "worker", "all", "callbacks"]
SERVING_ROLES = ("api", "all")  # the roles that serve the API's routes, the click redirect among them
log = structlog.get_logger("gateway")


def build_web_app(ctx: ApiContext, role: Role) -> web.Application:
    app = web.Application(middlewares=[problem_middleware], client_max_size=ctx.settings.api.max_batch_body_bytes + 1)
    app[CONTEXT] = ctx
    app[BODY_READ_TIMEOUT] = ctx.settings.api.body_read_timeout_seconds
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)
    if role in SERVING_ROLES:
        # Imported here: a worker or callbacks process serves health and metrics only, and starts
        # without the API's handlers and the console.
        from gateway.api.routes import mount_api

        mount_api(app, ctx)
    return app


class Gateway:
    def __init__(
        self, settings: Settings, role: Role = "all", *, state: State | None = None, reuse_port: bool = False
    ) -> None:
        self.settings = settings
        self.role = role
        self.reuse_port = reuse_port
        self.metrics = Metrics()
        self.store: Store = SqlStore.open(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            pool_size=settings.db_pool_size,
            group_commit_ms=settings.api.group_commit_ms,
            group_commit_max_rows=settings.api.group_commit_max_rows,
            sqlite_cache_mib=settings.sqlite_cache_mib,
            sqlite_busy_timeout=settings.sqlite_busy_timeout_seconds,
            sqlite_intake_first=settings.sqlite_intake_first_ms / 1000,
            outage_log_seconds=settings.db_outage_log_seconds,
            transaction_pooling=settings.db_transaction_pooling,
            listen_url=settings.work_listen_url if role in ("worker", "all") else None,
            click_synchronous=settings.links.click_synchronous,
            queued_click_commit_ms=settings.links.queued_click_commit_ms,
        )
        self.state: State = state if state is not None else open_state(settings.redis_url)
        self.providers: ProviderRegistry | None = None
        self.content = ContentService(settings.content, self.store, self.metrics)
        self.worker: Worker | None = None
        self.callbacks: CallbackDispatcher | None = None
        self.numbers = NumberPool(
            self.store, self.state, settings.numbers, reputation=reputation_of(settings.numbers), metrics=self.metrics
        )
        self.runner: web.AppRunner | None = None
        self.first_key: str | None = None
        self._background: list[asyncio.Task[None]] = []
        self.port: int = settings.port

    def _bind(self) -> socket.socket:
        # Bound before anything else so port 0 resolves early: callbacks (receipts) need the real URL.
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:  # API processes of one `gateway serve`: the kernel spreads connections over them
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.settings.host, self.settings.port))
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def start(self) -> None:
        sock = self._bind()
        s = self.settings
        if s.port == 0 and not s.public_url:
            s = self.settings = s.model_copy(update={"port": self.port})
        await self.store.migrate()
        if self.role != "callbacks":
            # The folding table is read on first use; read here so that no request waits on it and
            # gc.freeze() below keeps it out of the collector's walks. A callbacks process reads no text.
            folding.preload()
        await self.content.start()  # before anything needs closing: unreadable lists stop start-up
        self.first_key = await provision_keys(self.store, self.settings)
        secrets = {"sandbox": await self.store.get_or_create_secret("sandbox_receipts")}
        dispatching = self.role in ("worker", "all")
        await self.numbers.sync_config()
        if dispatching and await self._locates_recipients():
            # Where a number is (4.5 MB of tables, ~110 MB in memory, 0.3 s to read), read before the
            # first job needs it, by the processes that route on it only.
            regions.preload()
        self.providers = build_providers(self.settings, secrets=secrets, dispatching=dispatching)
        intake = CallbackIntake(self.store, self.metrics, self.numbers, s.limits, s.tenants)
        if dispatching:
            # Providers that push receipts over their own connections (SMPP) open them where jobs are
            # dispatched, and record what arrives there as the HTTP callbacks do.
            self.providers.attach(intake)
        await self.providers.start()
        click_secret = await self.store.get_or_create_secret("click_ip")
        claim_secret = (await self.store.get_or_create_secret("claim_tokens")).encode()
        ctx = ApiContext(
            settings=s,
            store=self.store,
            state=self.state,
            metrics=self.metrics,
            auth=Authenticator(
                self.store, TenantRateLimiter(s.api.tenant_requests_per_second, s.api.tenant_request_burst)
            ),
            providers=self.providers,
            limits=JobLimits(allow_http_webhooks=s.api.allow_http_webhooks),
            content=self.content,
            numbers=self.numbers,
            routing=self._accept_routing(),
            sleeping=parse_limits(s.limits).sleeping,
            intake=intake,
            redirects=Redirects(self.store, s.links, claim_secret, click_secret),
        )
        self.runner = GatewayAppRunner(
            build_web_app(ctx, self.role),
            limits=ConnectionLimits(s.api.header_read_timeout_seconds, s.api.max_connections_per_client),
            redirects=ctx.redirects if self.role in SERVING_ROLES else None,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5.0,
        )
        await self.runner.setup()
        await web.SockSite(self.runner, sock).start()
        if dispatching:
            limits = parse_limits(s.limits)
            gate = PolicyGate(
                self.store,
                self.state,
                limits,
                parse_quiet_hours(s.limits.get("quiet_hours")),
                content=self.content if s.content.enforce_at_dispatch else None,
                tenant_zone=lambda tenant_id: s.tenant(tenant_id).time_zone,
            )
            pacer = ThroughputPacer(self.state, limits.throughput, self.providers.accounts, self.metrics)
            budget = RetryBudget(
                self.state,
                RetryBudgetPolicy(
                    s.worker.retry_budget_ratio, s.worker.retry_budget_floor, s.worker.retry_budget_window_seconds
                ),
                self.metrics,
            )
            self.worker = Worker(
                self.store,
                self.providers,
                s.worker,
                self.metrics,
                self.state,
                gate,
                pacer,
                budget,
                parse_routing(s.routing),
                links=await self._link_tracker(),
                numbers=self.numbers,
            )
            self.worker.start()
            self._spawn(self._track_queue_depth())
        if self._delivers_callbacks():
            self.callbacks = CallbackDispatcher(self.store, s.webhooks, self.metrics)
            await self.callbacks.start()
        # Cooldowns, probation and reputation checks run where jobs are dispatched.
        self.numbers.start(ticking=dispatching)
        self._spawn(self._release_idempotency_keys())
        if dispatching and s.retention.content_days > 0:
            self._spawn(self._purge_content())
        self._spawn(self._audit_key_use(ctx.auth))
        # Everything built so far (the contract's validators, the routing tables, the word lists) lives
        # as long as the process: out of the collector's reach, a full collection no longer walks it
        # while requests wait (it showed as p99 spikes of tens of milliseconds on accept).
        gc.collect()
        gc.freeze()
        log.info(
            "gateway started",
            role=self.role,
            host=s.host,
            port=self.port,
            database=s.database_url.split("@")[-1],
            state="redis" if s.redis_url else type(self.state).__name__,
            pid=os.getpid(),
        )

    async def _locates_recipients(self) -> bool:
        """Whether dispatch will ask where a recipient is: region rules or price tables in routing, or
        numbers placed in countries or regions. A number placed later has its first lookup read the tables."""
        routing = parse_routing(self.settings.routing)
        if routing.rules or routing.prices:
            return True
        return any(number.countries or number.region for number in await self.numbers.load())

    def _delivers_callbacks(self) -> bool:
        """The status-callback loops run in a `callbacks` process, and in the dispatching ones unless
        [webhooks] delivery_process says they have a process of their own."""
        if self.role == "callbacks":
            return True
        return self.role in ("worker", "all") and self.settings.webhooks.delivery_process != "own"

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._background.append(asyncio.create_task(coro))

    async def stop(self) -> None:
        """Stop taking requests, let the worker finish or hand back its jobs, then close the record."""
        log.info("gateway stopping", role=self.role)
        if self.runner is not None:
            # Listening stops first; requests already inside finish and are committed.
            await self.runner.cleanup()
        if self.worker is not None:
            await self.worker.stop()
        if self.callbacks is not None:
            await self.callbacks.stop()
        await self.numbers.close()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.content.close()
        if self.providers is not None:
            await self.providers.close()
        await self.store.close()
        await self.state.close()
        log.info("gateway stopped", role=self.role)

    async def _track_queue_depth(self) -> None:
        while True:
            try:
                for status, count in (await self.store.status_counts()).items():
                    self.metrics.queue_depth.labels(status).set(count)
            except Exception as exc:  # noqa: BLE001 - the gauge keeps its last value until the next read
                survived(self.metrics, "queue-depth", "reading the queue depth failed", exc)
            await asyncio.sleep(5.0)

    async def _audit_key_use(self, authenticator: Authenticator) -> None:
        try:
            while True:
                await asyncio.sleep(self.settings.api.key_use_audit_seconds)
                await self._record_key_use(authenticator)
        finally:
            # On the way out, the last minute of use is recorded too.
            await self._record_key_use(authenticator)

    async def _record_key_use(self, authenticator: Authenticator) -> None:
        try:
            await authenticator.flush_uses()
        except Exception as exc:  # noqa: BLE001 - an audit record lost must not stop the recorder
            survived(self.metrics, "key-use", "recording API key use failed", exc)

    def _accept_routing(self) -> RoutingConfig:
        """Routing as accept sees it: `channel_order: "cost"` ranks by routing.costs, else by the
        price tables (each channel's first priced provider, in routing order)."""
        routing = parse_routing(self.settings.routing)
        if routing.costs or not routing.prices or self.providers is None:
            return routing
        order = {c: routing.channels.get(c) or names for c, names in self.providers.by_channel.items()}
        return dataclasses.replace(routing, costs=cheapest_channel_costs(routing.prices, order))

    async def _link_tracker(self) -> LinkTracker | None:
        s = self.settings
        tracker = LinkTracker(
            (s.links.base_url or s.base_url).rstrip("/"),
            s.links.tracking,
            s.links.routes,
            (await self.store.get_or_create_secret("campaign_links")).encode(),
        )
        return tracker if tracker.enabled else None

    async def _purge_content(self) -> None:
        retention = self.settings.retention
        while True:
            try:
                purged = await self.store.purge_content(retention.content_days)
                if purged:
                    log.info("message content purged", messages=purged, older_than_days=retention.content_days)
            except Exception as exc:  # noqa: BLE001 - retention runs again at the next interval
                survived(self.metrics, "retention", "content purge failed; next try at the next interval", exc)
            await asyncio.sleep(retention.purge_interval_seconds)

    async def _release_idempotency_keys(self) -> None:
        while True:
            await asyncio.sleep(60.0)
            try:
                await self.store.release_idempotency_keys()
            except Exception as exc:  # noqa: BLE001 - expired keys are released at the next round
                survived(self.metrics, "idempotency-keys", "releasing expired idempotency keys failed", exc)


async def serve(
    settings: Settings, role: Role, *, state: State | None = None, reuse_port: bool = False, parent: int | None = None
) -> None:
    """Run one gateway process until SIGTERM/SIGINT; `parent`: the supervisor whose death stops it too."""
    gateway = Gateway(settings, role, state=state, reuse_port=reuse_port)
    stop = asyncio.Event()
    # The signals are ours from the start: a SIGTERM while starting (a database that does not answer
    # yet, or a supervisor stopping everything as a child comes up) gives the start up and stops
    # what it began, instead of killing the process mid-way with its work half done.
    starting = asyncio.ensure_future(gateway.start())

    def on_signal() -> None:
        stop.set()
        starting.cancel()  # once started, nothing

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    try:
        await starting
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        log.info("stopped while starting", role=role)
        await gateway.stop()
        return
    if gateway.first_key:
        print(f"API key for tenant 'default' (shown once; store it now): {gateway.first_key}", flush=True)
    print(f"delivery-gateway {role} listening on http://{settings.host}:{gateway.port}", file=sys.stderr, flush=True)
    watch = asyncio.create_task(watch_parent(parent, stop)) if parent is not None else None
    await stop.wait()
    if watch is not None:
        watch.cancel()
    await gateway.stop()

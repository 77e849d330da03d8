"""`gateway serve` on several cores: API processes sharing the port and worker processes, supervised.

The supervisor prepares the database once (schema, the first API key, shown once), holds the
port, serves the memory State to its children when there is no Redis (gateway.state.shared),
starts `gateway serve --role api` N times with SO_REUSEPORT, `--role worker` M times and
`--role callbacks` (the status-callback delivery, process_layout.py) on ports of their own, and
restarts a child that dies, with a backoff. SIGTERM or SIGINT stops every child gracefully (each
finishes or hands back its work) before the supervisor exits.
Children stop on their own when the supervisor dies (gateway.parent_watch).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

import structlog

from gateway.key_provisioning import provision_keys
from gateway.process_layout import Layout
from gateway.settings import Settings
from gateway.state.shared import SOCKET_NAME, StateServer, state_directory
from gateway.store.store import SqlStore

log = structlog.get_logger("gateway")

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
HEALTHY_AFTER = 30.0  # a child that ran this long starts its next restart from FIRST_DELAY again
DRAIN_MARGIN = 30.0  # beyond worker.shutdown_grace_seconds, for handing back claimed jobs and closing
CONFIGURATION_ERROR = 2  # what `gateway serve` exits with on a bad setting: restarting will not help


@dataclass
class Child:
    role: str
    index: int
    env: dict[str, str]
    args: list[str]
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    delay: float = FIRST_DELAY
    restarts: int = field(default=0)


def restart_delay(previous: float, ran_for: float) -> float:
    """Doubling from FIRST_DELAY up to MAX_DELAY; back to FIRST_DELAY after a healthy run."""
    return FIRST_DELAY if ran_for >= HEALTHY_AFTER else min(MAX_DELAY, previous * 2)


class Supervisor:
    def __init__(self, settings: Settings, layout: Layout) -> None:
        self.settings = settings
        self.layout = layout
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self.children: list[Child] = []

    async def run(self) -> int:
        first_key = await self._prepare_database()
        holder = self._hold_port()
        port = holder.getsockname()[1]
        state_dir = None if self.settings.redis_url else state_directory()  # 0700: only this user reaches it
        server = None if state_dir is None else StateServer(os.path.join(state_dir, SOCKET_NAME))
        try:
            if server is not None:
                await server.start()
            self.children = self._plan_children(port, server.path if server else None)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stopping.set)
            if first_key:
                print(f"API key for tenant 'default' (shown once; store it now): {first_key}", flush=True)
            keepers = [asyncio.create_task(self._keep(child)) for child in self.children]
            print(
                f"delivery-gateway listening on http://{self.settings.host}:{port}: "
                f"{self.layout.api} API process(es), {self.layout.workers} worker process(es), "
                f"{self.layout.callbacks} callbacks process(es)",
                file=sys.stderr,
                flush=True,
            )
            await self.stopping.wait()
            await self._drain()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        finally:
            if server is not None:
                await server.close()
            if state_dir is not None:
                shutil.rmtree(state_dir, ignore_errors=True)
            holder.close()
        log.info("gateway stopped", role="supervisor")
        return self.exit_code

    async def _prepare_database(self) -> str | None:
        """Schema and keys once, before the children race for them."""
        s = self.settings
        store = SqlStore.open(
            s.database_url, synchronous=s.sqlite_synchronous, transaction_pooling=s.db_transaction_pooling
        )
        try:
            await store.migrate()
            return await provision_keys(store, s)
        finally:
            await store.close()

    def _hold_port(self) -> socket.socket:
        """Bound (not listening) for the supervisor's life: port 0 resolves once for every API
        process, and the port stays ours while an API process restarts."""
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.settings.host, self.settings.port))
        return sock

    def _plan_children(self, port: int, state_socket: str | None) -> list[Child]:
        s = self.settings
        base = ["--supervisor-pid", str(os.getpid())]
        if state_socket:
            base += ["--state-socket", state_socket]
        api_env = {"GATEWAY_PORT": str(port)}
        rate, burst, share = s.api.tenant_requests_per_second, s.api.tenant_request_burst, self.layout.api
        if rate > 0:
            # Each API process limits its own share, so a tenant's total stays within the setting.
            api_env["GATEWAY_API__TENANT_REQUESTS_PER_SECOND"] = repr(rate / share)
            api_env["GATEWAY_API__TENANT_REQUEST_BURST"] = str(math.ceil(burst / share))
        # Workers answer /healthz, /readyz and /metrics on a port of their own, off the API's port;
        # callbacks they announce (receipt URLs) still name the API's.
        worker_env = {"GATEWAY_PORT": "0", "GATEWAY_PUBLIC_URL": s.model_copy(update={"port": port}).base_url}
        children = [Child("api", i, api_env, ["--role", "api", "--reuse-port", *base]) for i in range(self.layout.api)]
        if self.layout.callbacks:
            # The status callbacks go out from their own process: the workers leave them alone.
            worker_env["GATEWAY_WEBHOOKS__DELIVERY_PROCESS"] = "own"
        children += [Child("worker", i, worker_env, ["--role", "worker", *base]) for i in range(self.layout.workers)]
        children += [
            Child("callbacks", i, worker_env, ["--role", "callbacks", *base]) for i in range(self.layout.callbacks)
        ]
        return children

    async def _start(self, child: Child) -> None:
        child.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", *child.args, env={**os.environ, **child.env}
        )
        child.started = time.monotonic()
        log.info("gateway process started", role=child.role, index=child.index, child_pid=child.proc.pid)

    async def _keep(self, child: Child) -> None:
        """Start the child, and again whenever it dies while the gateway is not stopping."""
        while not self.stopping.is_set():
            await self._start(child)
            assert child.proc is not None
            code = await child.proc.wait()
            if self.stopping.is_set():
                return
            ran_for = time.monotonic() - child.started
            if code == CONFIGURATION_ERROR:
                log.error("gateway process refused its configuration; stopping", role=child.role, exit_code=code)
                self.exit_code = CONFIGURATION_ERROR
                self.stopping.set()
                return
            child.delay = restart_delay(child.delay, ran_for) if child.restarts else FIRST_DELAY
            child.restarts += 1
            log.error(
                "gateway process died; restarting",
                role=child.role,
                index=child.index,
                child_pid=child.proc.pid,
                exit_code=code,
                ran_seconds=round(ran_for, 1),
                restart_in_seconds=child.delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), child.delay)

    async def _drain(self) -> None:
        """SIGTERM to every child: API processes stop listening and finish their requests, workers
        finish or hand back their jobs. Whatever has not exited after the workers' shutdown grace and
        DRAIN_MARGIN is killed."""
        living = [c.proc for c in self.children if c.proc is not None and c.proc.returncode is None]
        log.info("gateway stopping", role="supervisor", children=len(living))
        for proc in living:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(p.wait() for p in living)), self.settings.worker.shutdown_grace_seconds + DRAIN_MARGIN
            )
        for proc in living:
            if proc.returncode is None:
                log.error("gateway process did not stop in time; killing it", child_pid=proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

"""Newly due work announced across processes: PostgreSQL NOTIFY from whoever commits it, LISTEN in workers.

A commit that makes jobs due (an accept batch, a requeue, a fallback move) sends one NOTIFY in its own
transaction, so it reaches listeners exactly when the rows are visible, once per commit however many
jobs it carried (PostgreSQL also folds identical notifications of one transaction into one). A
worker process holds one connection of its own that LISTENs and sets the store's `work_available`
event; polling stays the fallback for everything a notification does not cover (jobs that become
due by the clock: retries, `send_at`) and for the time the listener is away. The listener
reconnects after the server restarts, and wakes the worker once on reconnecting, since a
notification sent meanwhile was lost.

LISTEN needs a session of its own: through a pooler in transaction mode (PgBouncer
`pool_mode = transaction`) the session is not ours between transactions, so there the listener
needs a direct URL (`database_listen_url`), or workers poll only.
"""

from __future__ import annotations

import asyncio
import contextlib

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

log = structlog.get_logger("gateway.store")

CHANNEL = "gateway_work"
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 10.0


def notify_work(conn: Connection) -> None:
    """Tell listening workers that this transaction made work due (sent at its commit)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"NOTIFY {CHANNEL}"))


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes postgresql:// and postgres://, not SQLAlchemy's +driver spelling."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class WorkListener:
    """Holds a LISTEN connection and sets `wake` on every notification, reconnecting when it drops."""

    def __init__(self, url: str, wake: asyncio.Event) -> None:
        self.url = asyncpg_dsn(url)
        self.wake = wake
        self.listening = asyncio.Event()  # set while a LISTEN is in place (tests and /metrics may look)
        self.connects = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="work-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = RECONNECT_FIRST
        while True:
            try:
                await self._listen_until_lost()
                log.warning("the connection listening for new work was lost; polling meanwhile")
                delay = RECONNECT_FIRST
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - polling carries dispatch meanwhile; try again
                log.warning("cannot listen for new work; polling meanwhile", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX, delay * 2)

    async def _listen_until_lost(self) -> None:
        import asyncpg

        lost = asyncio.Event()
        conn = await asyncpg.connect(self.url, statement_cache_size=0)
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._notified)
            self.connects += 1
            self.listening.set()
            if self.connects > 1:
                log.info("listening for new work again", channel=CHANNEL)
                self.wake.set()  # whatever was announced while we were away
            while not lost.is_set():
                # A server that vanished without closing the socket is found by a round trip.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 5.0)
                    return
                await asyncio.wait_for(conn.execute("SELECT 1"), 5.0)
        finally:
            self.listening.clear()
            if not conn.is_closed():
                conn.terminate()

    def _notified(self, *_args: object) -> None:
        self.wake.set()

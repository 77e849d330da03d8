"""What one client's connections may hold: the time to send a request's head, and how many
connections one address keeps open at once (slowloris, connection floods).

aiohttp has neither: its keep-alive timer does not run while a request's head trickles in, and it
takes any number of connections. The handler below adds both, on aiohttp's own protocol: a timer
from the moment a request's head is awaited (the connection opening, or the first byte after a
kept-alive pause) to the moment the parser has the whole head, and a count of open connections per
peer address. Its cost on the accept path is two attribute checks per chunk of bytes received.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.api.protocol_errors import ProblemRequestHandler

log = structlog.get_logger("gateway.api")
REFUSAL_LOG_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    head_timeout_seconds: float
    per_client: int  # 0: no limit


class ClientConnections:
    """Open connections per peer address, shared by every connection of one server. Refusals and
    cut-off heads are logged once per interval with counts, so a flood does not flood the log."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._open: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._last_client: dict[str, str] = {}
        self._logged_at = 0.0

    def admit(self, client: str) -> bool:
        if self.per_client and self._open[client] >= self.per_client:
            self.note("refused: too many connections from one address", client)
            return False
        self._open[client] += 1
        return True

    def release(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]

    def note(self, what: str, client: str) -> None:
        self._unlogged[what] += 1
        self._last_client[what] = client
        now = time.monotonic()
        if now - self._logged_at < REFUSAL_LOG_SECONDS:
            return
        for event, count in self._unlogged.items():
            log.warning(f"connections {event}", connections=count, last_client=self._last_client[event])
        self._unlogged.clear()
        self._logged_at = now


def peer_address(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class GuardedRequestHandler(ProblemRequestHandler):
    def __init__(self, *args: Any, limits: ConnectionLimits, clients: ClientConnections, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._clients = clients
        self._client: str | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        client = peer_address(transport)
        if client is not None:
            if not self._clients.admit(client):
                self.force_close()
                return
            self._client = client
        self._await_head(client)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._client is not None:
            self._clients.release(self._client)
            self._client = None
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # aiohttp's own state: parsed requests waiting in _messages; _waiter is set while the
        # connection waits for the next request (between requests, not while one is handled).
        if self._messages:
            self._stop_head_timer()
        elif self._head_timer is None and self._waiter is not None:
            self._await_head(self._client)

    def _await_head(self, client: str | None) -> None:
        self._head_timer = self._loop.call_later(self._limits.head_timeout_seconds, self._head_too_slow, client)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self, client: str | None) -> None:
        self._head_timer = None
        if not self._messages and self._waiter is not None:
            self._clients.note("closed: request head too slow", client or "?")
            self.force_close()

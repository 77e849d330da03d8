"""When the database is not there for us: which errors mean "unavailable just now" (answered 503, worth
a retry) rather than a bug, and a log that reports an outage when it starts, once per interval while
it lasts, with the count of failed operations, and when it ends; never once per request. Reads and
writes keep separate logs: a SQLite file locked by another process still serves reads, and a read
that succeeds does not mean that writes do."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import sqlalchemy as sa
import structlog

log = structlog.get_logger("gateway.store")


class DatabaseUnavailable(Exception):
    """The database cannot be reached or written just now; the same operation may succeed later."""


# SQLite primary result codes: busy or locked past the busy timeout, read-only, I/O error, disk full,
# cannot open the file.
_SQLITE_CODES = frozenset({5, 6, 8, 10, 13, 14})
# SQLSTATE classes: 08 connection exception, 53 insufficient resources (too many connections, disk
# full), 57P operator intervention (shutting down, crashed, not yet accepting connections).
_POSTGRES_STATES = ("08", "53", "57P")


def _driver_error(exc: BaseException) -> BaseException:
    return exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    error = _driver_error(exc)
    if isinstance(error, sqlite3.Error):
        return error.sqlite_errorcode & 0xFF in _SQLITE_CODES
    state = getattr(error, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(_POSTGRES_STATES)
    # Connecting failed (refused, unreachable, timed out), or no pooled connection came free in time.
    return isinstance(error, OSError | sa.exc.TimeoutError)


def describe(exc: BaseException) -> str:
    error = _driver_error(exc)
    return f"{type(error).__name__}: {error}"[:300]


class OutageLog:
    def __init__(
        self, operations: str, interval_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.operations = operations
        self.interval = interval_seconds
        self._clock = clock
        self.since: float | None = None
        self._logged_at = 0.0
        self._failed = 0
        self._failed_unlogged = 0

    def failed(self, exc: BaseException) -> None:
        now = self._clock()
        self._failed += 1
        self._failed_unlogged += 1
        if self.since is None:
            self.since = now
        elif now - self._logged_at < self.interval:
            return
        log.error(
            "database unavailable",
            operations=self.operations,
            error=describe(exc),
            failed_operations=self._failed_unlogged,
            for_seconds=round(now - self.since, 1),
        )
        self._logged_at = now
        self._failed_unlogged = 0

    def succeeded(self) -> None:
        if self.since is None:
            return
        log.warning(
            "database available again",
            operations=self.operations,
            after_seconds=round(self._clock() - self.since, 1),
            failed_operations=self._failed,
        )
        self.since = None
        self._failed = self._failed_unlogged = 0

"""Runs store functions on SQLite or PostgreSQL behind one interface.

Store functions are plain synchronous SQLAlchemy Core code taking a Connection. On SQLite they run
on one writer thread (SQLite has one writer; a dedicated thread keeps fsync off the event loop)
and a few reader threads. On PostgreSQL they run through asyncpg via SQLAlchemy's run_sync, so
there is one SQL layer and no second hand-written store.
"""

from __future__ import annotations

import asyncio
import enum
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from gateway.store.batcher import Committed
from gateway.store.intake_turn import IntakeTurn
from gateway.store.outage import DatabaseUnavailable, OutageLog, describe, is_unavailable

P = ParamSpec("P")
T = TypeVar("T")

# A commit that promises nothing outside the database, so a later synced commit may put it on disk:
# on SQLite written at synchronous=NORMAL (no sync of its own); on PostgreSQL as any commit (its WAL
# flush waits off the loop already, and turning it off would cost a statement).
COVERED_BY_NEXT_SYNC = "COVERED_BY_NEXT_SYNC"

Peekable = sa.Select[Any] | sa.CompoundSelect[Any]  # what Database.peek asks: one statement
Compilable = Peekable | sa.Update  # what compiled_query compiles once


class Database:
    """`write` runs a function in one write transaction, `read` in a read-only one. Either raises
    DatabaseUnavailable when the database cannot be reached or written just now; such outages are
    logged once per interval (`write_outage`, `read_outage`), not once per failure."""

    dialect: str
    write_outage: OutageLog
    read_outage: OutageLog

    def _outage_logs(self, interval_seconds: float) -> None:
        self.write_outage = OutageLog("writes", interval_seconds)
        self.read_outage = OutageLog("reads", interval_seconds)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            result = await self._write(fn, *args)
        except Exception as exc:
            _raise_if_unavailable(exc, self.write_outage)
            raise
        self.write_outage.succeeded()
        return result

    async def write_beside_loop(
        self, fn: Callable[..., T], *args: Any, synchronous: str | None = None, intake: bool = False
    ) -> T:
        """`write`, for a transaction whose commit may wait on the disk while the loop works on.
        `synchronous` NORMAL commits without waiting for the disk (kept through a crash of the process,
        not of the machine): SQLite's synchronous for this commit, PostgreSQL's synchronous_commit off;
        COVERED_BY_NEXT_SYNC, for a commit whose loss with the machine loses nothing promised.
        `intake`: accepts, which on SQLite take the write lock ahead of the other writes of this kind
        (gateway.store.intake_turn)."""
        committed = await self.commit_beside_loop(fn, *args, synchronous=synchronous, intake=intake)
        if committed.durable is not None:
            await asyncio.shield(committed.durable)  # the sync goes on for the commits it covers
        return committed.value

    async def commit_beside_loop(
        self, fn: Callable[..., T], *args: Any, synchronous: str | None = None, intake: bool = False
    ) -> Committed[T]:
        """`write_beside_loop`, answered once committed: its `durable` ends when the commit is on disk
        (SQLite: the WAL synced after the write lock is let go). Whoever acts on the answer outside the
        database (a reply, a send) waits for `durable` first."""
        try:
            committed = await self._commit_beside_loop(fn, *args, synchronous=synchronous, intake=intake)
        except Exception as exc:
            _raise_if_unavailable(exc, self.write_outage)
            raise
        self.write_outage.succeeded()
        return committed

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            result = await self._read(fn, *args)
        except Exception as exc:
            _raise_if_unavailable(exc, self.read_outage)
            raise
        self.read_outage.succeeded()
        return result

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def peek(self, query: Peekable, params: dict[str, Any]) -> list[tuple[Any, ...]] | None:
        """A small read outside any transaction, its SQL compiled once, straight on the driver; or
        None when it could not be asked (the caller then does the real work, which reports what is
        wrong). For questions asked very often whose answer is mostly "nothing", e.g. an idle
        worker's poll: SQLAlchemy's per-statement work (cache key, result metadata, pool checkout,
        BEGIN/COMMIT) made such a poll cost ~100 x the question itself."""
        return None

    async def _commit_beside_loop(
        self, fn: Callable[..., T], *args: Any, synchronous: str | None = None, intake: bool = False
    ) -> Committed[T]:
        return Committed(await self._write(fn, *args))

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


_COMPILED: dict[tuple[Compilable, str], tuple[str, tuple[str, ...], dict[str, Any]]] = {}


def compiled_query(query: Compilable, dialect: sa.Dialect, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The query's SQL for this dialect (compiled once) and its positional parameters: every bound
    parameter has a default in the query; `params` override them by name."""
    key = (query, dialect.name)
    if key not in _COMPILED:
        compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        defaults = {k: v.value if isinstance(v, enum.Enum) else v for k, v in compiled.params.items()}
        _COMPILED[key] = (str(compiled), tuple(compiled.positiontup or ()), defaults)
    sql, names, defaults = _COMPILED[key]
    values = {**defaults, **params}
    return sql, tuple(values[name] for name in names)


def _raise_if_unavailable(exc: Exception, outage: OutageLog) -> None:
    if is_unavailable(exc):
        outage.failed(exc)
        raise DatabaseUnavailable(f"the database is unavailable: {describe(exc)}") from exc


WRITE_BUSY_TIMEOUT_SECONDS = 30.0
# Each connection caches up to this many MiB of pages; a process opens up to 7 connections (the
# accept connection, the inline writer, the writer thread's, one per reader thread): docs/DEPLOYMENT.md.
DEFAULT_CACHE_MIB = 64


def _sqlite_engine(
    path: str,
    synchronous: str,
    immediate: bool,
    busy_timeout: float = WRITE_BUSY_TIMEOUT_SECONDS,
    cache_mib: int = DEFAULT_CACHE_MIB,
) -> Engine:
    engine = sa.create_engine(
        f"sqlite:///{path}",
        connect_args={"check_same_thread": False, "timeout": busy_timeout, "isolation_level": None},
        poolclass=NullPool if path == ":memory:" else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size={-1024 * cache_mib}")  # negative: KiB, not pages
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading a read.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


# How a write beside the loop waits for the write lock another connection holds (_begin_accept_soon).
LOCK_POLLS = 50
INTAKE_FIRST_SECONDS = 0.01
CHECKPOINT_FRAMES = 1000  # SQLite's wal_autocheckpoint default
# How often commits have the checkpoint thread look at the WAL (SQLite looks at every commit; a thread
# hop per commit cost ~10 % of a trickled message's CPU): the WAL may pass CHECKPOINT_FRAMES by what
# 50 ms of commits add.
CHECKPOINT_LOOK_SECONDS = 0.05
WAL_INDEX_FRAMES, WAL_INDEX_FRAMES_AT = struct.Struct("=I"), 16  # mxFrame in the WAL-index header, native order
DURABLE_AT_COMMIT = frozenset({"FULL", "EXTRA"})
LOCK_POLL_SECONDS = 0.001


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(
        self,
        path: str,
        synchronous: str = "FULL",
        readers: int = 4,
        cache_mib: int = DEFAULT_CACHE_MIB,
        busy_timeout: float = WRITE_BUSY_TIMEOUT_SECONDS,
        outage_log_seconds: float = 10.0,
        intake_first_seconds: float = INTAKE_FIRST_SECONDS,
    ) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._outage_logs(outage_log_seconds)
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._writer_engine = _sqlite_engine(
            path, synchronous, immediate=True, busy_timeout=busy_timeout, cache_mib=cache_mib
        )
        # Writes run on the event loop's own thread when the lock is free: a group commit takes a
        # millisecond or two there, while a thread hop per commit costs more in GIL hand-offs than
        # the write itself. If another process holds the lock, the write waits on the writer thread.
        self._inline_engine = _sqlite_engine(path, synchronous, immediate=True, busy_timeout=0.0, cache_mib=cache_mib)
        self._reader_engine = _sqlite_engine(
            path, synchronous, immediate=False, busy_timeout=busy_timeout, cache_mib=cache_mib
        )
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="sqlite-reader")
        # The hot group commits (accepts, sending marks, outcomes): one connection, their statements and
        # commits on the loop, one at a time; their syncs on a thread (_sync_wal).
        self._accept_engine = _sqlite_engine(path, synchronous, immediate=True, busy_timeout=0.0, cache_mib=cache_mib)
        self._accept_connection: Connection | None = None
        self._accept_synchronous = synchronous  # the accept connection's, switched per transaction
        self._accept_turn = asyncio.Lock()
        # The accept connection does not checkpoint in its commits (on the loop's thread): this thread does.
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._checkpoint_connection: sqlite3.Connection | None = None
        self._checkpoint_look_at = 0.0  # when a commit next has that thread look at the WAL's frame count
        self._wal_index: int | None = None  # a descriptor of the -shm file, read by that thread
        # The beside-the-loop commits are written at synchronous=NORMAL, and the WAL synced after (if
        # they asked for FULL) on this thread, out of the write lock: _sync_wal.
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-sync")
        self._sync_lock = threading.Lock()
        self._commits = 0
        self._synced = 0
        self._wal = False  # known once the accept connection is open
        self._peeker: sqlite3.Connection | None = None
        self._intake = IntakeTurn(path) if path != ":memory:" and intake_first_seconds > 0 else None
        self._intake_first = intake_first_seconds
        self._last_turn = 0.0

    async def peek(self, query: Peekable, params: dict[str, Any]) -> list[tuple[Any, ...]] | None:
        """On the loop's thread, on a read-only connection of its own: in WAL mode a read never waits
        for the writer, so the loop is not held up."""
        if self.path == ":memory:":
            return None
        sql, values = compiled_query(query, self._reader_engine.dialect, params)
        try:
            if self._peeker is None:
                self._peeker = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
                self._peeker.execute("PRAGMA busy_timeout=50")
            return self._peeker.execute(sql, values).fetchall()
        except sqlite3.Error:
            return None  # the caller does the real work, which reports what is wrong

    def _run(self, engine: Engine, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with engine.begin() as conn:
            return fn(conn, *args)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        if self._accept_turn.locked():
            # A group commit beside the loop holds the write lock until its thread commits: wait for
            # it here rather than fail inline and sleep in SQLite's busy handler on the writer thread.
            # Nothing runs between the release and the inline write below (no await in between).
            async with self._accept_turn:
                pass
        try:
            return self._run(self._inline_engine, fn, args)
        except sa.exc.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._run, self._writer_engine, fn, args)

    async def _commit_beside_loop(
        self, fn: Callable[..., T], *args: Any, synchronous: str | None = None, intake: bool = False
    ) -> Committed[T]:
        """The statements and the commit run here on the loop's thread, the commit at synchronous
        NORMAL (it writes the WAL and lets go of the write lock); the fsync that FULL would have done
        inside the lock runs after, on a thread of its own (_sync_wal), while the loop works on and
        other writers take the lock. Running the statements on a thread made the two threads trade
        the GIL for every row inserted (a tenth of the single-job accept rate); committing on one held
        the write lock while that thread waited for the GIL."""
        if synchronous == COVERED_BY_NEXT_SYNC:
            synchronous = "NORMAL"
        if not intake and self._intake is not None:
            await self._after_waiting_intake(self._intake)
        transaction = await self._take_turn(synchronous or self._synchronous, intake)
        if transaction is None:
            # Another connection holds the write lock: wait for it on the writer thread.
            try:
                loop = asyncio.get_running_loop()
                return Committed(await loop.run_in_executor(self._writer, self._run, self._writer_engine, fn, args))
            finally:
                self._accept_turn.release()
        try:
            result = fn(transaction.connection, *args)
        except BaseException:
            try:
                transaction.rollback()
            except Exception:  # noqa: BLE001 - the batch's own error is raised below; this one only retires the connection
                self._drop_accept_connection()  # a connection that cannot roll back is not reused
            finally:
                self._accept_turn.release()
            raise
        try:
            committed = self._commit_accept(transaction)
        finally:
            self._accept_turn.release()
        now = time.monotonic()
        if now >= self._checkpoint_look_at:
            self._checkpoint_look_at = now + CHECKPOINT_LOOK_SECONDS
            self._checkpointer.submit(self._checkpoint_if_large)
        if not self._syncs_after_commit(synchronous or self._synchronous):
            return Committed(result)
        loop = asyncio.get_running_loop()
        return Committed(result, loop.run_in_executor(self._syncer, self._sync_wal, committed))

    async def _take_turn(self, synchronous: str, intake: bool) -> sa.RootTransaction | None:
        """This connection's turn (`_accept_turn`, held until the commit ends) and, mostly, the lock."""
        await self._accept_turn.acquire()
        try:
            return await self._begin_accept_soon(synchronous, intake)
        except BaseException:
            self._accept_turn.release()
            raise

    async def _after_waiting_intake(self, turn: IntakeTurn) -> None:
        """While accepts wait for the write lock, this process's next write waits until
        `intake_first_seconds` after its last one (gateway.store.intake_turn)."""
        due = self._last_turn + self._intake_first
        while turn.waiting() and time.monotonic() < due:  # noqa: ASYNC110 - no Event crosses processes
            await asyncio.sleep(LOCK_POLL_SECONDS)
        self._last_turn = time.monotonic()

    async def _begin_accept_soon(self, synchronous: str, intake: bool = False) -> sa.RootTransaction | None:
        """The write lock, asked for again every millisecond while another connection (mostly another
        process's: the worker's, the API's) holds it, for up to LOCK_POLLS tries. Waiting on the writer
        thread instead, SQLite's busy handler sleeps 25-100 ms between tries once contention lasts, and
        a process committing often takes the lock again meanwhile: single-job accepts beside a worker
        draining a backlog took ~27 ms each, at half Jasmin's rate (bench/smpp.py). None after that:
        the caller waits on the writer thread, with the busy timeout and its error as before.
        An `intake` write keeps the intake flag up while it polls."""
        transaction = self._begin_accept(synchronous)
        turn = self._intake if intake else None
        for _ in range(LOCK_POLLS):
            if transaction is not None:
                break
            if turn is not None:
                turn.raise_flag()
            await asyncio.sleep(LOCK_POLL_SECONDS)
            transaction = self._begin_accept(synchronous)
        return transaction

    def _begin_accept(self, synchronous: str) -> sa.RootTransaction | None:
        """BEGIN IMMEDIATE on the accept connection, or None when another connection has the lock."""
        if self._accept_connection is None:
            self._accept_connection = self._accept_engine.connect()
            self._accept_synchronous = self._synchronous
            dbapi = self._accept_connection.connection.dbapi_connection
            assert dbapi is not None
            dbapi.execute("PRAGMA wal_autocheckpoint=0")  # _checkpoint_if_large, off the loop
            # Not in WAL mode (a file system without shared memory, or :memory:), a commit is synced
            # inside it as asked, as before.
            self._wal = dbapi.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        sqlite = self._accept_connection.connection.dbapi_connection
        assert sqlite is not None
        if self._syncs_after_commit(synchronous):
            synchronous = "NORMAL"  # the commit writes the WAL; _sync_wal syncs it after the lock
        if synchronous != self._accept_synchronous:
            # In WAL mode a per-connection setting, read at each commit: this transaction's alone.
            sqlite.execute(f"PRAGMA synchronous={synchronous}")
            self._accept_synchronous = synchronous
        # Not waiting for the lock here keeps the loop running; once it is ours, the statements and
        # the commit wait out a passing busy state (WAL recovery, a checkpoint) as every writer does.
        sqlite.execute("PRAGMA busy_timeout=0")
        try:
            transaction = self._accept_connection.begin()
        except sa.exc.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return None  # the connection stays usable: no transaction was begun
            self._drop_accept_connection()
            raise
        sqlite.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        return transaction

    def _commit_accept(self, transaction: sa.RootTransaction) -> int:
        """Commits (its WAL frames written, not yet synced: the lock goes to the next writer at once)
        and numbers the commit for _sync_wal."""
        try:
            transaction.commit()
        except BaseException:
            # Whatever state a failed commit left, the next accept starts on a new connection.
            self._drop_accept_connection()
            raise
        self._commits += 1  # on the loop's thread
        return self._commits

    def _syncs_after_commit(self, synchronous: str) -> bool:
        return self._wal and synchronous in DURABLE_AT_COMMIT

    def _checkpoint_if_large(self) -> None:
        """SQLite's automatic checkpoint, for the accept connection's commits: once the WAL holds
        CHECKPOINT_FRAMES frames, as much of it as no reader still needs is copied into the database.
        The count is the WAL-index's mxFrame (the -shm file's header, sqlite.org/walformat.html): the WAL
        file keeps its size when it is reused from the start after a checkpoint."""
        try:
            if self._wal_index is None:
                # Kept open until every connection is closed: closing a descriptor of a file drops every
                # POSIX lock this process holds on it, SQLite's on the WAL-index among them.
                self._wal_index = os.open(f"{self.path}-shm", os.O_RDONLY)
            header = os.pread(self._wal_index, WAL_INDEX_FRAMES.size, WAL_INDEX_FRAMES_AT)
            if WAL_INDEX_FRAMES.unpack(header)[0] < CHECKPOINT_FRAMES:
                return
            if self._checkpoint_connection is None:
                self._checkpoint_connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._checkpoint_connection.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            self._checkpoint_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except (OSError, sqlite3.Error, struct.error) as exc:
            log.warning("checkpoint not done", error=str(exc))  # a later commit asks again

    def _sync_wal(self, commit: int) -> None:
        """What synchronous=FULL does at each commit in WAL mode, after the write lock is let go: the
        WAL file to disk. One fsync covers every commit written before it, this process's and others';
        a commit already covered by a later one's sync returns at once. A checkpoint in between does
        not lose frames: SQLite syncs the WAL before it copies them into the database."""
        with self._sync_lock:
            if self._synced >= commit:
                return
            covered = self._commits
            try:
                fd = os.open(f"{self.path}-wal", os.O_RDONLY)
            except FileNotFoundError:  # removed after a checkpoint of all of it, which synced the database
                self._synced = covered
                return
            try:
                os.fsync(fd)
            except OSError as exc:
                # As a failed write is: 503 and the outage log (the commit is in the file, not known to
                # be on disk; the client's retry with its key is answered from it).
                _raise_if_unavailable(exc, self.write_outage)
                raise
            finally:
                os.close(fd)
            self._synced = covered

    def _drop_accept_connection(self) -> None:
        connection, self._accept_connection = self._accept_connection, None
        if connection is not None:
            connection.invalidate()

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run, self._reader_engine, fn, args)

    async def close(self) -> None:
        if self._peeker is not None:
            self._peeker.close()
            self._peeker = None
        async with self._accept_turn:  # a commit still running ends first
            self._checkpointer.shutdown(wait=True)
            if self._checkpoint_connection is not None:
                self._checkpoint_connection.close()
                self._checkpoint_connection = None
            if self._accept_connection is not None:
                self._accept_connection.close()
                self._accept_connection = None
        self._syncer.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._writer_engine.dispose()
        self._inline_engine.dispose()
        self._accept_engine.dispose()
        self._reader_engine.dispose()
        if self._wal_index is not None:  # after every connection: see _checkpoint_if_large
            os.close(self._wal_index)
            self._wal_index = None
        if self._intake is not None:
            self._intake.close()
            self._intake = None


# PostgreSQL ends one of two transactions that wait on each other's rows (deadlock_detected: seen
# crashing the worker's hand-off tasks under load, with SMPP throttling) or that cannot be serialized:
# the one ended wrote nothing and succeeds when run again.
RETRIED_SQLSTATES = frozenset({"40P01", "40001"})
TRANSACTION_ATTEMPTS = 3
log = structlog.get_logger("gateway.store")


def _sqlstate(exc: BaseException | None) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) if isinstance(exc, sa.exc.DBAPIError) else None


def _log_run_again(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    work = getattr(state.args[0], "__name__", "?")  # _transaction's fn
    log.warning("transaction run again", sqlstate=_sqlstate(exc), attempt=state.attempt_number, work=work)


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(
        self, url: str, pool_size: int = 10, outage_log_seconds: float = 10.0, transaction_pooling: bool = False
    ) -> None:
        self._outage_logs(outage_log_seconds)
        async_url = url.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
            "postgres://", "postgresql+asyncpg://", 1
        )
        # Behind a pooler in transaction mode the server session changes between transactions, so a
        # named prepared statement may be missing there or clash with another client's: with both caches
        # off asyncpg prepares each statement unnamed, within the transaction that runs it.
        connect_args = {"statement_cache_size": 0, "prepared_statement_cache_size": 0} if transaction_pooling else {}
        self._engine: AsyncEngine = create_async_engine(
            async_url, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args
        )

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run_again_if_ended(fn, args, None)

    async def _commit_beside_loop(
        self, fn: Callable[..., T], *args: Any, synchronous: str | None = None, intake: bool = False
    ) -> Committed[T]:
        return Committed(await self._run_again_if_ended(fn, args, synchronous))

    async def _run_again_if_ended(self, fn: Callable[..., T], args: tuple[Any, ...], synchronous: str | None) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: _sqlstate(exc) in RETRIED_SQLSTATES),
            stop=stop_after_attempt(TRANSACTION_ATTEMPTS),
            before_sleep=_log_run_again,
            reraise=True,
        )
        return await retrying(self._transaction, fn, args, synchronous)

    async def _transaction(self, fn: Callable[..., T], args: tuple[Any, ...], synchronous: str | None) -> T:
        async with self._engine.begin() as conn:
            if synchronous == "NORMAL":
                # Committed without waiting for the WAL flush: lost only if the server itself crashes.
                await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            return await conn.run_sync(fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._engine.connect() as conn:
            result = await conn.run_sync(fn, *args)
            await conn.rollback()
            return result

    async def peek(self, query: Peekable, params: dict[str, Any]) -> list[tuple[Any, ...]] | None:
        """On a pooled connection, straight on asyncpg, in no transaction (one round trip)."""
        sql, values = compiled_query(query, self._engine.dialect, params)
        try:
            async with self._engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver = raw.driver_connection
                assert driver is not None
                return [tuple(row) for row in await driver.fetch(sql, *values)]
        except Exception:  # noqa: BLE001 - the caller does the real work, which reports what is wrong
            return None

    async def close(self) -> None:
        await self._engine.dispose()


def open_database(
    url: str,
    *,
    synchronous: str = "FULL",
    pool_size: int = 10,
    sqlite_cache_mib: int = DEFAULT_CACHE_MIB,
    sqlite_busy_timeout: float = WRITE_BUSY_TIMEOUT_SECONDS,
    sqlite_intake_first: float = INTAKE_FIRST_SECONDS,
    outage_log_seconds: float = 10.0,
    transaction_pooling: bool = False,
) -> Database:
    if url.startswith("sqlite:///"):
        return SqliteDatabase(
            url.removeprefix("sqlite:///") or ":memory:",
            synchronous,
            cache_mib=sqlite_cache_mib,
            busy_timeout=sqlite_busy_timeout,
            outage_log_seconds=outage_log_seconds,
            intake_first_seconds=sqlite_intake_first,
        )
    return PostgresDatabase(
        url, pool_size=pool_size, outage_log_seconds=outage_log_seconds, transaction_pooling=transaction_pooling
    )

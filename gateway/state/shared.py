"""The memory State shared by the processes of one `gateway serve`, over a Unix socket.

Without Redis, caps, throughput, the retry budget and sender numbers' health counts live in one
MemoryState held by the supervisor; every API and worker process it starts reaches that one
storage through `SharedState`. Each call is one round trip carrying a whole batch (the State port
is batch-first), and the supervisor's loop runs each call without awaiting in between, so the
decisions are as atomic as in one process.

Calls travel pickled: the socket lives in a directory only the gateway's user may open (0700),
so only the processes it started can speak on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import shutil
import socket
import stat
import struct
import tempfile
from collections.abc import Sequence
from typing import Any

from gateway.state.base import (
    CapDecision,
    CapReservation,
    State,
    ThroughputDecision,
    ThroughputRequest,
    WindowCounter,
)
from gateway.state.memory import MemoryState

_LENGTH = struct.Struct("!I")
STATE_DIR_PREFIX = "gateway-state-"
SOCKET_NAME = "state.sock"
_METHODS = frozenset({"acquire_throughput", "reserve_caps", "release_caps", "incr_counters", "read_counters", "ping"})


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return pickle.loads(await reader.readexactly(size))  # peers are our own processes (see above)


def _frame(value: object) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


class StateServer:
    """Serves one MemoryState to the supervisor's children."""

    def __init__(self, path: str, state: State | None = None) -> None:
        self.path = path
        self.state = state or MemoryState()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                method, args = await _read_frame(reader)
                writer.write(_frame(await self._answer(method, args)))
                await writer.drain()
        writer.close()

    async def _answer(self, method: str, args: tuple[object, ...]) -> tuple[str, object]:
        if method not in _METHODS:
            return ("error", f"no State method {method!r}")
        try:
            return ("ok", await getattr(self.state, method)(*args))
        except Exception as exc:  # noqa: BLE001 - the caller raises it; the server serves on
            return ("error", f"{type(exc).__name__}: {exc}")


class SharedStateError(RuntimeError):
    pass


class SharedState:
    """The State port, answered by the supervisor's MemoryState. One connection, one call at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def _call(self, method: str, *args: object) -> Any:
        async with self._lock:
            try:
                if self._streams is None:
                    self._streams = await asyncio.open_unix_connection(self.path)
                reader, writer = self._streams
                writer.write(_frame((method, args)))
                await writer.drain()
                outcome, value = await _read_frame(reader)
            except (asyncio.IncompleteReadError, OSError) as exc:
                self._streams = None
                raise SharedStateError(f"the supervisor's state is unreachable: {exc}") from exc
        if outcome == "error":
            raise SharedStateError(value)
        return value

    async def acquire_throughput(self, requests: Sequence[ThroughputRequest]) -> list[ThroughputDecision]:
        return list(await self._call("acquire_throughput", list(requests)))

    async def reserve_caps(self, reservations: Sequence[CapReservation]) -> list[CapDecision]:
        return list(await self._call("reserve_caps", list(reservations)))

    async def release_caps(self, reservations: Sequence[CapReservation]) -> list[bool]:
        return list(await self._call("release_caps", list(reservations)))

    async def incr_counters(self, increments: Sequence[tuple[WindowCounter, int]]) -> list[int]:
        return list(await self._call("incr_counters", list(increments)))

    async def read_counters(self, counters: Sequence[WindowCounter]) -> list[int]:
        return list(await self._call("read_counters", list(counters)))

    async def ping(self) -> bool:
        try:
            return bool(await self._call("ping"))
        except SharedStateError:
            return False

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


# A Unix socket's path must fit in sun_path: 108 bytes on Linux, 104 on the BSDs and macOS, the
# terminating NUL included.
SOCKET_PATH_MAX = 103
# mkdtemp's folder name: the prefix, a pid (up to 7 digits), "-" and 8 random characters.
_FOLDER_NAME_MAX = len(STATE_DIR_PREFIX) + 7 + 1 + 8
LAST_RESORT = "/tmp"


def state_directory() -> str:
    """A private (0700) folder for the State's socket, named after this process; folders that
    supervisors killed with -9 left behind are removed first (nothing else would: a killed process
    runs no clean-up). It is made in the first of `state_parents()` short enough for the socket."""
    remove_stale_state_directories()
    parent = next((p for p in state_parents() if _socket_fits(p)), LAST_RESORT)
    return tempfile.mkdtemp(prefix=f"{STATE_DIR_PREFIX}{os.getpid()}-", dir=parent)


def state_parents() -> list[str]:
    """Where State folders are made, in order: the temporary folder ($TMPDIR), then, for a $TMPDIR
    too long for a socket path, the user's runtime folder ($XDG_RUNTIME_DIR) and /tmp."""
    candidates = [tempfile.gettempdir(), os.environ.get("XDG_RUNTIME_DIR", ""), LAST_RESORT]
    parents: list[str] = []
    for candidate in candidates:
        usable = candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK)
        if usable and candidate not in parents:
            parents.append(candidate)
    return parents


def _socket_fits(parent: str) -> bool:
    longest = os.path.join(parent, "x" * _FOLDER_NAME_MAX, SOCKET_NAME)
    return len(os.fsencode(longest)) <= SOCKET_PATH_MAX


def remove_stale_state_directories(parent: str | None = None) -> list[str]:
    """Remove this user's State folders whose supervisor is gone: its pid (in the name) is not a
    living process here, and nothing answers on the socket (a supervisor in another PID namespace
    sharing this folder would). Looks in `parent`, or in every one of `state_parents()`. Returns the
    folders removed."""
    removed: list[str] = []
    for folder in [parent] if parent else state_parents():
        removed += _remove_stale_in(folder)
    return removed


def _remove_stale_in(parent: str) -> list[str]:
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        if name.startswith(STATE_DIR_PREFIX) and _is_stale(name, path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _is_stale(name: str, path: str) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    owner = name.removeprefix(STATE_DIR_PREFIX).split("-", 1)[0]
    if owner.isdigit() and _alive(int(owner)):
        return False
    return not _answers(os.path.join(path, SOCKET_NAME))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True

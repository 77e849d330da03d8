"""The memory State's socket folders: a supervisor killed with -9 leaves its folder behind, and the
next supervisor to start removes it, and only such folders; a $TMPDIR too long for a socket path
puts the folder in a short one."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.state.shared import (
    SOCKET_NAME,
    SharedState,
    StateServer,
    remove_stale_state_directories,
    state_directory,
)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder with a short path (pytest's own can be too long for the sockets bound in it)."""
    path = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def set_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Sets this process's $TMPDIR (as tempfile has read it) for the test."""
    return lambda path: monkeypatch.setattr(tempfile, "tempdir", str(path))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def folder(parent: Path, name: str, *, socket_file: bool = True) -> Path:
    path = parent / name
    path.mkdir(mode=0o700)
    if socket_file:
        # Bound and closed: the socket file stays, as after a kill -9, and nothing answers on it.
        with socket.socket(socket.AF_UNIX) as left:
            left.bind(str(path / SOCKET_NAME))
    return path


def test_folders_of_dead_supervisors_are_removed_and_the_others_kept(short_tmp: Path) -> None:
    killed = folder(short_tmp, f"gateway-state-{dead_pid()}-a1b2c3")
    killed_before_pids_in_names = folder(short_tmp, "gateway-state-x7k2m9q1")
    killed_with_redis = folder(short_tmp, f"gateway-state-{dead_pid()}-d4e5f6", socket_file=False)
    running = folder(short_tmp, f"gateway-state-{os.getpid()}-g7h8i9")
    elsewhere = folder(short_tmp, f"gateway-state-{dead_pid()}-j1k2l3", socket_file=False)
    listener = socket.socket(socket.AF_UNIX)  # a supervisor whose pid this namespace cannot see
    listener.bind(str(elsewhere / SOCKET_NAME))
    listener.listen()
    not_ours = short_tmp / "gateway-statements"
    not_ours.mkdir()
    a_file = short_tmp / f"gateway-state-{dead_pid()}-file"
    a_file.write_text("")
    try:
        removed = remove_stale_state_directories(str(short_tmp))
    finally:
        listener.close()
    assert sorted(removed) == sorted(str(p) for p in (killed, killed_before_pids_in_names, killed_with_redis))
    assert not killed.exists() and not killed_before_pids_in_names.exists() and not killed_with_redis.exists()
    assert running.exists() and elsewhere.exists() and not_ours.exists() and a_file.exists()


def test_a_new_folder_is_private_and_named_after_its_supervisor(
    short_tmp: Path, set_tmpdir: Callable[[Path], None]
) -> None:
    stale = folder(short_tmp, f"gateway-state-{dead_pid()}-zzz999")
    set_tmpdir(short_tmp)
    made = Path(state_directory())
    assert made.parent == short_tmp and made.name.startswith(f"gateway-state-{os.getpid()}-")
    assert made.stat().st_mode & 0o777 == 0o700
    assert not stale.exists()


def long_folder(parent: Path, length: int = 200) -> Path:
    path = parent / ("t" * (length - len(str(parent)) - 1))
    path.mkdir()
    assert len(str(path)) == length
    return path


def serves(folder: Path) -> bool:
    """A State server on the folder's socket, and a client's round trip to it."""

    async def round_trip() -> bool:
        server = StateServer(str(folder / SOCKET_NAME))
        await server.start()
        client = SharedState(server.path)
        try:
            return await client.ping()
        finally:
            await client.close()
            await server.close()

    return asyncio.run(round_trip())


def test_a_tmpdir_too_long_for_a_socket_puts_the_folder_in_the_runtime_folder(
    short_tmp: Path, set_tmpdir: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = short_tmp / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    set_tmpdir(long_folder(short_tmp))
    stale = folder(runtime, f"gateway-state-{dead_pid()}-zzz999")
    made = Path(state_directory())
    assert made.parent == runtime and made.name.startswith(f"gateway-state-{os.getpid()}-")
    assert made.stat().st_mode & 0o777 == 0o700
    assert serves(made)
    assert not stale.exists(), "a killed supervisor's folder there is removed as in $TMPDIR"


def test_a_tmpdir_too_long_for_a_socket_without_a_runtime_folder_puts_it_in_tmp(
    short_tmp: Path, set_tmpdir: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    set_tmpdir(long_folder(short_tmp))
    made = Path(state_directory())
    try:
        assert made.parent == Path("/tmp") and made.name.startswith(f"gateway-state-{os.getpid()}-")
        assert made.stat().st_mode & 0o777 == 0o700
        assert serves(made)
    finally:
        shutil.rmtree(made)

"""The memory State's socket folders: a supervisor killed with -9 leaves its folder behind, and the
next supervisor to start removes it, and only such folders."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

from gateway.state.shared import SOCKET_NAME, remove_stale_state_directories, state_directory


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


def test_folders_of_dead_supervisors_are_removed_and_the_others_kept(tmp_path: Path) -> None:
    killed = folder(tmp_path, f"gateway-state-{dead_pid()}-a1b2c3")
    killed_before_pids_in_names = folder(tmp_path, "gateway-state-x7k2m9q1")
    killed_with_redis = folder(tmp_path, f"gateway-state-{dead_pid()}-d4e5f6", socket_file=False)
    running = folder(tmp_path, f"gateway-state-{os.getpid()}-g7h8i9")
    elsewhere = folder(tmp_path, f"gateway-state-{dead_pid()}-j1k2l3", socket_file=False)
    listener = socket.socket(socket.AF_UNIX)  # a supervisor whose pid this namespace cannot see
    listener.bind(str(elsewhere / SOCKET_NAME))
    listener.listen()
    not_ours = tmp_path / "gateway-statements"
    not_ours.mkdir()
    a_file = tmp_path / f"gateway-state-{dead_pid()}-file"
    a_file.write_text("")
    try:
        removed = remove_stale_state_directories(str(tmp_path))
    finally:
        listener.close()
    assert sorted(removed) == sorted(str(p) for p in (killed, killed_before_pids_in_names, killed_with_redis))
    assert not killed.exists() and not killed_before_pids_in_names.exists() and not killed_with_redis.exists()
    assert running.exists() and elsewhere.exists() and not_ours.exists() and a_file.exists()


def test_a_new_folder_is_private_and_named_after_its_supervisor(tmp_path: Path) -> None:
    stale = folder(tmp_path, f"gateway-state-{dead_pid()}-zzz999")
    original = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)
    try:
        made = Path(state_directory())
    finally:
        tempfile.tempdir = original
    assert made.parent == tmp_path and made.name.startswith(f"gateway-state-{os.getpid()}-")
    assert made.stat().st_mode & 0o777 == 0o700
    assert not stale.exists()

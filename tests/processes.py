"""Gateways as real OS processes, for tests that kill them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tests.harness import API_KEY
from tests.servers import free_port


def gateway_command(database: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `gateway ARGS` on a database (a SQLite file, or any database URL), as an operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = database if isinstance(database, str) else f"sqlite:///{database}"
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, env=env, timeout=60)


class GatewayProcess:
    def __init__(
        self,
        workdir: Path,
        env: dict[str, str] | None = None,
        role: str = "all",
        port: int | None = None,
        cwd: Path | None = None,
        serve_args: tuple[str, ...] | None = None,
    ) -> None:
        self.workdir = workdir
        self.cwd = cwd or workdir  # the folder the process is started from
        self.port = port or free_port()
        self.role = role
        self.serve_args = serve_args if serve_args is not None else ("--role", role)
        self.env = {
            # The fuzz test's own knobs (GATEWAY_FUZZ_EXAMPLES, _SEED) are no setting: the gateway refuses them.
            **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_FUZZ_")},
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_DATABASE_URL": f"sqlite:///{workdir / 'gateway.db'}",
            "GATEWAY_API_KEY": API_KEY,
            "GATEWAY_SANDBOX__LEDGER_PATH": str(workdir / "sandbox-ledger.ndjson"),
            "GATEWAY_LOG_LEVEL": "info",
            "GATEWAY_LIMITS": '{"quiet_hours": {"marketing": "00:00-24:00"}}',
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        start_together([self], timeout)
        return self

    def launch(self) -> GatewayProcess:
        """Start the process without waiting for it to be ready."""
        self._launch()
        return self

    def _launch(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it after we return
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", *self.serve_args],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"gateway not ready in {timeout}s: {self.log_path.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_together(processes: Sequence[GatewayProcess], timeout: float = 60.0) -> None:
    """Starts the processes at once, then waits until each is ready: their start-ups (a second or
    more each, most of it imports) overlap instead of queueing one behind the other."""
    try:
        for process in processes:
            process._launch()
        for process in processes:
            process._wait_ready(timeout)
    except BaseException:
        # The caller never gets the processes to stop: one left running would hold its port and
        # CPU for the rest of the run (and its supervised children with it).
        for process in processes:
            process.stop_quietly()
        raise


def child_pids(pid: int) -> set[int]:
    """The living children of a process (Linux)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return set()
    return {int(p) for p in text.split()}


def alive(pid: int) -> bool:
    """Running (not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def connection_owners(pids: set[int], port: int, state: str = "01") -> dict[int, int]:
    """For each of `pids`, how many TCP sockets it holds on local `port` in `state` (Linux; 01 is
    ESTABLISHED, 0A LISTEN)."""
    established: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                    established.add(fields[9])  # the socket's inode
    owners: dict[int, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in established:
                owners[pid] = owners.get(pid, 0) + 1
    return owners

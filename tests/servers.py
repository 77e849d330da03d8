"""Real Redis and PostgreSQL servers for the tests, started on loopback in temporary directories.

A test run uses servers named by GATEWAY_TEST_REDIS_URL / GATEWAY_TEST_POSTGRES_URL when set
(CI or a developer's own), otherwise it starts its own from the binaries on PATH, so the same
command works on a laptop and in CI.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


# Below Linux's ephemeral ports (32768-60999), which the kernel hands to bind(0) and connect().
_OWN_PORTS = range(20000, 32000)
_handed_out = itertools.count(random.randrange(len(_OWN_PORTS)))  # a child process starts elsewhere


def free_port() -> int:
    """A loopback port nothing is bound to now, for a server the caller starts next.

    Under pytest-xdist each test process hands out the ports of a slice of its own, in turn: the
    kernel's choice (bind to port 0) could give two processes the same port in the moment between
    one's free_port() and its server binding it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    size = len(_OWN_PORTS) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    first = _OWN_PORTS.start + int(worker.removeprefix("gw")) * size
    for _ in range(size):
        port = first + next(_handed_out) % size
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken, or still in TIME_WAIT
            return port
    raise OSError(f"no free port in {first}-{first + size - 1}")


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _pg_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for bin_dir in PG_BIN_DIRS:
        if (bin_dir / name).exists():
            return str(bin_dir / name)
    return None


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """Yields a redis:// URL, or None when no Redis is available here."""
    url = os.environ.get("GATEWAY_TEST_REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="gw-redis-") as workdir:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


class PostgresServer:
    """A PostgreSQL of our own in a temporary folder, which a test may stop and start again (same
    port, same data) to play an outage."""

    def __init__(self, workdir: Path, initdb: str, postgres: str) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = free_port()
        self.postgres = postgres
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses to run as root; the Debian package creates the postgres user.
            os.chmod(workdir, 0o777)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*self.run_as, initdb, "-D", str(self.data), "-U", "gateway", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://gateway@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *self.run_as,
                self.postgres,
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.workdir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        time.sleep(0.3)

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown: sessions are cut, as in a crash or failover of the server."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                # Signalled directly: runuser does not pass SIGINT on to the postmaster.
                os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
            except (OSError, ValueError, IndexError):
                self.proc.terminate()
            self.proc.wait(timeout=timeout)
        self.proc = None


def postgres_binaries() -> tuple[str, str] | None:
    initdb, postgres = _pg_tool("initdb"), _pg_tool("postgres")
    return None if initdb is None or postgres is None else (initdb, postgres)


@contextlib.contextmanager
def own_postgres_server() -> Iterator[PostgresServer | None]:
    """A PostgreSQL of the caller's own (never the shared one named by GATEWAY_TEST_POSTGRES_URL),
    or None when no binaries are here."""
    binaries = postgres_binaries()
    if binaries is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="gw-pg-") as workdir:
        server = PostgresServer(Path(workdir), *binaries)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def postgres_server() -> Iterator[str | None]:
    """Yields a postgresql:// URL, or None when no PostgreSQL is available here."""
    url = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with own_postgres_server() as server:
        yield None if server is None else server.url


@contextlib.contextmanager
def pgbouncer(postgres_url: str, pool_size: int = 4) -> Iterator[str | None]:
    """A real PgBouncer (Debian's `pgbouncer` package) in transaction pooling mode in front of the
    PostgreSQL at `postgres_url`, any database name passed through; yields the URL of the same
    database through it, or None when no pgbouncer binary is here. Few server connections, so
    client sessions really do share them."""
    binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if binary is None:
        yield None
        return
    rest = postgres_url.split("@", 1)[1]
    host_port, database = rest.split("/", 1)
    host, port = host_port.rsplit(":", 1)
    user = postgres_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[0]
    listen = free_port()
    with tempfile.TemporaryDirectory(prefix="gw-pgbouncer-") as workdir:
        folder = Path(workdir)
        (folder / "userlist.txt").write_text(f'"{user}" ""\n')
        (folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {listen}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {folder / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 1000\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {folder / 'pgbouncer.log'}\n"
            f"pidfile = {folder / 'pgbouncer.pid'}\n"
        )
        run_as: list[str] = []
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            os.chmod(folder, 0o777)
            for name in ("userlist.txt", "pgbouncer.ini"):
                os.chmod(folder / name, 0o644)
            run_as = ["runuser", "-u", "postgres", "--"]
        proc = subprocess.Popen(
            [*run_as, binary, str(folder / "pgbouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(listen)
            yield f"postgresql://{user}@127.0.0.1:{listen}/{database}"
        finally:
            with contextlib.suppress(OSError, ValueError):
                # Signalled directly: runuser does not pass signals on.
                os.kill(int((folder / "pgbouncer.pid").read_text().split()[0]), signal.SIGINT)
            proc.terminate()
            proc.wait(timeout=10)

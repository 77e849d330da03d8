"""SMPP delivery, ours against Jasmin 0.11.1, on one SMSC simulator in the same launch (issue 22).

    JASMIN_DIR=/work/peer-jasmin .venv/bin/python bench/smpp.py --runs 3 --seconds 20

The SMSC is tests/fakes/smsc.py in its own process on 127.0.0.1:<--smsc-port>, answering every
submit_sm at once and logging when it took each one and for which destination. Every request of
the load carries a different destination, so each message's accept-to-submit_sm latency is the
SMSC's time for it minus the client's send time (one clock, one machine), the same way for both.

1. Sustained paced load: an open-loop client offers R requests/s for --seconds (ours: POST
   /v1/messages; Jasmin: GET /send); delivered rate = messages the SMSC took within the load window
   plus one second, over the window; p50/p99 latency over all delivered messages.
2. Backlog drain: --drain jobs accepted with dispatch off (ours: `--role api`, batch requests;
   Jasmin: its connector stopped), then dispatch on (ours: `--role worker`; Jasmin: the connector
   started): messages the SMSC took per second, first to last.
3. HTTP accept while draining: a backlog drains for 5 s idle, then a closed-loop client saturates
   the API for --seconds, from each of --accept-connections in its own run (a closed loop measures a
   server's rate only once more connections no longer raise it: each system's best is its rate); the
   accepted rate and the answers' p50/p99, the dispatch rate during the saturation against the idle
   one, and the cores each process used meanwhile (which one waits rather than works).
4. Cost (`--parts cost`, not in the default parts): CPU per delivered message at a trickle and
   draining a backlog, each system as it runs (ours `gateway serve`; Jasmin with its connector on):
   the trickle offers --trickle-rate requests/s open loop for --trickle-seconds; the backlog is
   --cost-backlog jobs offered as fast as each API takes them (ours: batch requests of 1,000;
   Jasmin: GET /send from 32 connections). Each phase counts, from its first request until the SMSC
   took its last message, the CPU of the system's own processes (ours: every process of `gateway
   serve`; Jasmin: jasmind, RabbitMQ and its Redis), not the SMSC's nor the client's: what a trickled
   message costs each against what it costs in bulk.

Ours runs the gateway (SQLite, uvloop) with `binds` x `window`; Jasmin with the same number of
connectors (the recipe in ../shared/peers/jasmin/, prepared beforehand: RabbitMQ, Redis, jasmind,
jcli_setup.py pointing its connector `smsc1` at --smsc-port). Neither asks for receipts
(Jasmin's /send does not by default). When Jasmin's HTTP API or jCli does not answer, its rows
are skipped with the reason. Results: docs/benchmarks/smpp.md; summary in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    PYTHON,
    ServerProcess,
    fmt,
    free_port,
    load_average,
    machine_info,
    markdown_table,
    median,
    source_revision,
    temporary_directory,
    write_doc,
)

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key-0123456789abcdef"
JASMIN_HTTP = 1401
JCLI = 8990
JASMIN_DIR = Path(os.environ.get("JASMIN_DIR", "/work/peer-jasmin"))  # the peer recipe's scratch folder


# --- the SMSC -----------------------------------------------------------------------------------


class Smsc:
    """The fake SMSC in its own process, logging each taken submit_sm ("time destination")."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.log = workdir / f"smsc-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Smsc:
        self.log.write_text("")
        argv = [PYTHON, "-m", "tests.fakes.smsc", "--port", str(self.port), "--log", str(self.log)]
        argv += ["--account", "acme:secret", "--account", "smppclient1:password", "--max-seconds", "3000"]
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "listening" not in line:
            raise RuntimeError(f"the SMSC did not start: {line}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def taken(self) -> dict[str, float]:
        """destination -> when the SMSC took it (the log is flushed every second)."""
        time.sleep(1.2)
        seen: dict[str, float] = {}
        for line in self.log.read_text().splitlines():
            at, destination = line.split(" ", 1)
            seen.setdefault(destination, float(at))
        return seen

    def count(self) -> int:
        return sum(1 for _ in self.log.open())


# --- HTTP clients (open loop and closed loop), raw asyncio streams --------------------------------


@dataclass
class Target:
    system: str  # "ours" or "jasmin"
    port: int
    pid: int | None = None  # ours: the `gateway serve` process, whose children are the roles

    def request(self, destination: str) -> bytes:
        if self.system == "jasmin":
            path = f"/send?username=foo&password=bar&to={destination}&from=TEST&content=hello+world"
            return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        body = json.dumps(
            {"channel": "sms", "to": "+" + destination, "content": {"text": "hello world"}, "category": "transactional"}
        ).encode()
        head = (
            f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length, chunked = 0, False
    for line in head.split(b"\r\n"):
        lowered = line.lower()
        if lowered.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        elif lowered.startswith(b"transfer-encoding:") and b"chunked" in lowered:
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status


def destinations(prefix: str, count: int) -> list[str]:
    """`prefix` is "8613" and a digit per phase, then a random base: a valid mobile number each."""
    base = int(prefix[5:] or 0)
    return [f"{prefix[:5]}{base + i:08d}" for i in range(count)]


def phase_prefix(digit: int) -> str:
    return f"8613{digit}{random.randrange(0, 90_000_000)}"


async def paced(target: Target, rate: float, seconds: float, prefix: str, connections: int = 64) -> dict[str, Any]:
    """Request i is due at t0 + i/rate; returns due and send times by destination and the answers."""
    wanted = destinations(prefix, int(rate * seconds))
    sent: dict[str, float] = {}
    due: dict[str, float] = {}
    statuses: dict[int, int] = {}
    answered: list[float] = []  # each request's round trip, s
    state = {"next": 0}
    t0 = time.time() + 0.3

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        try:
            while state["next"] < len(wanted):
                index = state["next"]
                state["next"] += 1
                delay = t0 + index / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                destination = wanted[index]
                due[destination] = t0 + index / rate
                sent[destination] = time.time()
                writer.write(target.request(destination))
                status = await _answer(reader)
                answered.append(time.time() - sent[destination])
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(connection() for _ in range(connections))), seconds + 30)
    answered.sort()
    accept_ms = {
        f"p{p}": round(answered[min(len(answered) - 1, int(len(answered) * p / 100))] * 1000, 1) for p in (50, 99)
    }
    return {"t0": t0, "sent": sent, "due": due, "statuses": statuses, "accept_ms": accept_ms if answered else None}


async def closed_loop(target: Target, seconds: float, prefix: str, connections: int = 32) -> dict[str, Any]:
    counter = {"n": 0, "ok": 0}
    answered_in: list[float] = []  # each accepted request's round trip, seconds
    deadline = time.time() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        try:
            while time.time() < deadline:
                counter["n"] += 1
                sent = time.perf_counter()
                writer.write(target.request(f"{prefix[:5]}{int(prefix[5:]) + counter['n']:08d}"))
                if await _answer(reader) in (200, 202):
                    counter["ok"] += 1
                    answered_in.append(time.perf_counter() - sent)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    answered_in.sort()

    def pct(p: float) -> float | None:
        return (
            round(answered_in[min(len(answered_in) - 1, int(p * len(answered_in)))] * 1000, 1) if answered_in else None
        )

    return {
        "connections": connections,
        "accepted": counter["ok"],
        "accepted_per_s": counter["ok"] / seconds,
        "answer_p50_ms": pct(0.50),
        "answer_p99_ms": pct(0.99),
    }


def run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# --- ours ------------------------------------------------------------------------------------


def gateway_env(workdir: Path, smsc_port: int, binds: int, window: int) -> dict[str, str]:
    provider = {
        "host": "127.0.0.1",
        "port": smsc_port,
        "system_id": "acme",
        "password": "secret",
        "binds": binds,
        "window": window,
        "source_addr": "ACME",
        "registered_delivery": False,
    }
    return {
        "GATEWAY_DATABASE_URL": f"sqlite:///{workdir / 'gateway.db'}",
        "GATEWAY_API_KEY": API_KEY,
        "GATEWAY_PROVIDERS": json.dumps({"smpp": provider}),
        "GATEWAY_ROUTING": json.dumps({"channels": {"sms": ["smpp"]}}),
        "GATEWAY_SANDBOX__ENABLED": "false",
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_LINKS__TRACKING": "off",
    }


@contextlib.contextmanager
def gateway(workdir: Path, smsc_port: int, binds: int, window: int, flags: str = "") -> Iterator[Target]:
    """`flags` "": `gateway serve` as a user starts it; else e.g. "--role api" or "--processes 1 --workers 1"."""
    port = free_port()
    env = {**gateway_env(workdir, smsc_port, binds, window), "GATEWAY_PORT": str(port)}
    argv = [PYTHON, "-m", "gateway", "serve", *flags.split()]
    with ServerProcess(argv, ready_url=f"http://127.0.0.1:{port}/healthz", env=env, cwd=workdir) as server:
        time.sleep(0.5)  # the binds come up
        yield Target("ours", port, server.proc.pid if server.proc is not None else None)


def role_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (all threads) of a gateway and its children, by role (`--role X`; the parent: serve)."""
    totals: dict[str, float] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        proc = Path(f"/proc/{current}")
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            children = (proc / "task" / str(current) / "children").read_text().split()
        except OSError:
            continue
        role = argv[argv.index(b"--role") + 1].decode() if b"--role" in argv else "serve"
        totals[role] = totals.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pending += [int(child) for child in children]
    return totals


def preload(target: Target, count: int, prefix: str) -> None:
    """Jobs accepted in batches of 1000 (the fastest accept path)."""
    import urllib.request

    for start in range(0, count, 1000):
        jobs = [
            {
                "channel": "sms",
                "to": "+" + d,
                "content": {"text": "hello world"},
                "category": "transactional",
                "idempotency_key": d,
            }
            for d in destinations(prefix, count)[start : start + 1000]
        ]
        request = urllib.request.Request(
            f"http://127.0.0.1:{target.port}/v1/messages/batch",
            data=json.dumps({"messages": jobs}).encode(),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200


# --- Jasmin ------------------------------------------------------------------------------------


async def jcli(*commands: str) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", JCLI), 5)
    out = []
    try:
        # jCli asks for the user name only after telnet option negotiation, which this client skips.
        await asyncio.wait_for(reader.readuntil(b"Authentication required."), 5)
        writer.write(b"jcliadmin\r\n")
        await asyncio.wait_for(reader.readuntil(b"Password: "), 5)
        writer.write(b"jclipwd\r\n")
        await asyncio.wait_for(reader.readuntil(b"jcli : "), 5)
        for command in commands:
            writer.write(command.encode() + b"\r\n")
            out.append((await asyncio.wait_for(reader.readuntil(b"jcli : "), 15)).decode(errors="replace"))
        writer.write(b"quit\r\n")
    finally:
        writer.close()
    return "".join(out)


def jasmin_ready() -> str | None:
    """None when Jasmin answers on HTTP and jCli with its connector bound; else why not."""
    try:
        listing = run_async(jcli("smppccm --list"))
    except (OSError, TimeoutError) as exc:
        return f"Jasmin's jCli (127.0.0.1:{JCLI}) does not answer ({exc}); prepare it per ../shared/peers/jasmin/"
    if "smsc1" not in listing:
        return "Jasmin has no connector smsc1: run jcli_setup.py 1 <smsc port> from the peer recipe"
    return None


def purge_jasmin() -> None:
    """Empty the connector's RabbitMQ queue (the peer recipe's rabbitmqctl, its HOME under --jasmin-dir)."""
    env = {**os.environ, "HOME": str(JASMIN_DIR / "rabbitmq" / "home"), "RABBITMQ_NODENAME": "rabbit@localhost"}
    ctl = "/usr/lib/rabbitmq/bin/rabbitmqctl"
    subprocess.run([ctl, "-q", "purge_queue", "submit.sm.smsc1"], env=env, capture_output=True, check=False)


# --- measurements -------------------------------------------------------------------------------


def latency_figures(
    sent: dict[str, float], due: dict[str, float], taken: dict[str, float], t0: float, seconds: float
) -> dict[str, Any]:
    """Latency from the client's send, and from when the request was due (the open loop's own
    delay included: a client held back by slow answers shows here, not in the first)."""
    delays = sorted(taken[d] - at for d, at in sent.items() if d in taken)
    from_due = sorted(taken[d] - at for d, at in due.items() if d in taken)
    in_window = sum(1 for d in sent if d in taken and taken[d] <= t0 + seconds + 1.0)

    def pct(values: list[float], p: float) -> float | None:
        return values[min(len(values) - 1, int(p * len(values)))] * 1000 if values else None

    return {
        "requested": len(sent),
        "sent_in_window": sum(1 for at in sent.values() if at <= t0 + seconds),
        "delivered_total": len(delays),
        "delivered_per_s": in_window / seconds,
        "p50_ms": pct(delays, 0.50),
        "p99_ms": pct(delays, 0.99),
        "p99_from_due_ms": pct(from_due, 0.99),
    }


def sustained(
    system: str, rate: float, seconds: float, smsc: Smsc, binds: int, window: int, flags: str, connections: int
) -> dict:
    prefix = phase_prefix(5)
    if system == "ours":
        with temporary_directory("smpp-bench-") as tmp, gateway(tmp, smsc.port, binds, window, flags) as target:
            assert target.pid is not None
            cpu = role_cpu(target.pid)
            result = run_async(paced(target, rate, seconds, prefix, connections))
            time.sleep(2.0)
            used = {role: seconds - cpu.get(role, 0.0) for role, seconds in role_cpu(target.pid).items()}
    else:
        purge_jasmin()  # what an earlier rate left queued would be counted against this one
        result = run_async(paced(Target("jasmin", JASMIN_HTTP), rate, seconds, prefix, connections))
        time.sleep(2.0)
        purge_jasmin()
    figures = latency_figures(result["sent"], result["due"], smsc.taken(), result["t0"], seconds)
    if system == "ours" and figures["delivered_total"]:
        # CPU per delivered message of each role over the load and the 2 s after it.
        figures["cpu_ms_per_message"] = {
            role: round(used[role] * 1000 / figures["delivered_total"], 3) for role in sorted(used)
        }
    # The HTTP answer's round trip: the paced client's 64 connections keep pace only while it stays short.
    figures["accept_round_trip_ms"] = result["accept_ms"]
    return {"system": system, "offered": rate, **figures, "statuses": result["statuses"]}


def drain_rate(smsc: Smsc, prefix: str, count: int, within: float) -> dict[str, Any]:
    wanted = set(destinations(prefix, count))
    deadline = time.time() + within
    while time.time() < deadline:
        taken = smsc.taken()
        mine = sorted(at for d, at in taken.items() if d in wanted)
        if len(mine) >= count:
            break
    span = mine[-1] - mine[0] if len(mine) > 1 else 0.0
    return {"drained": len(mine), "seconds": span, "per_s": len(mine) / span if span else None}


def drain(system: str, count: int, smsc: Smsc, binds: int, window: int) -> dict[str, Any]:
    prefix = phase_prefix(6)
    if system == "ours":
        with temporary_directory("smpp-bench-") as tmp:
            with gateway(tmp, smsc.port, binds, window, flags="--role api") as target:
                preload(target, count, prefix)
            with gateway(tmp, smsc.port, binds, window, flags="--role worker"):
                return {"system": system, **drain_rate(smsc, prefix, count, 300)}
    run_async(jcli("smppccm -0 smsc1"))
    time.sleep(1)
    run_async(paced(Target("jasmin", JASMIN_HTTP), 1e9, count / 1e9, prefix, connections=32))
    accepted_by = time.time()
    run_async(jcli("smppccm -1 smsc1"))
    result = drain_rate(smsc, prefix, count, 300)
    return {"system": system, **result, "accept_s": accepted_by}


def worker_processes(pid: int) -> list[int]:
    """The pids of a `gateway serve`'s dispatching children (`--role worker` and `--role callbacks`)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"--role" in argv and argv[argv.index(b"--role") + 1] in (b"worker", b"callbacks"):
            found.append(int(child))
    return found


def renice(pid: int, niceness: int) -> None:
    """Every thread of the process (a thread's niceness is its own on Linux)."""
    for thread in os.listdir(f"/proc/{pid}/task"):
        os.setpriority(os.PRIO_PROCESS, int(thread), niceness)


def cores_used(system: str, pid: int | None, smsc: Smsc, window: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """What `window()` returns, and the cores each party used meanwhile: the load's client (this
    process), the SMSC, ours by role, Jasmin's jasmind (not its RabbitMQ and Redis)."""
    jasmind = JASMIN_DIR / "run" / "jasmind.pid"

    def sample() -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        taken = {"client": own.ru_utime + own.ru_stime}
        if smsc.proc is not None:
            taken["smsc"] = sum(role_cpu(smsc.proc.pid).values())
        if system == "ours" and pid is not None:
            taken |= role_cpu(pid)
        elif system == "jasmin" and jasmind.exists():
            taken["jasmind"] = sum(role_cpu(int(jasmind.read_text().split()[0])).values())
        return taken

    before, start = sample(), time.time()
    result = window()
    after, elapsed = sample(), time.time() - start
    return result, {name: round((after[name] - before.get(name, 0.0)) / elapsed, 3) for name in after}


def accept_while_draining(
    system: str,
    seconds: float,
    smsc: Smsc,
    binds: int,
    window: int,
    backlog: int,
    flags: str,
    worker_nice: int = 0,
    connections: int = 32,
) -> dict:
    prefix = phase_prefix(7)
    load_prefix = phase_prefix(8)

    def window_rate(start: float, end: float) -> float:
        taken = smsc.taken()
        return sum(1 for d, at in taken.items() if d.startswith(prefix[:5]) and start <= at < end) / (end - start)

    if system == "ours":
        with temporary_directory("smpp-bench-") as tmp:
            # Enough backlog that the idle window and the saturation both find work at ~4,000/s.
            with gateway(tmp, smsc.port, binds, window, flags="--role api") as target:
                preload(target, max(backlog, int(4_000 * (6 + seconds))), prefix)
            with gateway(tmp, smsc.port, binds, window, flags) as target:
                assert target.pid is not None
                for pid in worker_processes(target.pid) if worker_nice else []:
                    renice(pid, worker_nice)
                idle_start = time.time()
                time.sleep(5.0)
                busy_start = time.time()
                load, cores = cores_used(
                    system, target.pid, smsc, lambda: run_async(closed_loop(target, seconds, load_prefix, connections))
                )
                busy_end = time.time()
    else:
        run_async(jcli("smppccm -0 smsc1"))
        time.sleep(1)
        run_async(paced(Target("jasmin", JASMIN_HTTP), 1e9, backlog / 1e9, prefix, connections=32))
        before = smsc.count()
        run_async(jcli("smppccm -1 smsc1"))
        for _ in range(60):  # the connector binds: wait for its first submit
            time.sleep(0.5)
            if smsc.count() > before:
                break
        idle_start = time.time()
        time.sleep(5.0)
        busy_start = time.time()
        load, cores = cores_used(
            system,
            None,
            smsc,
            lambda: run_async(closed_loop(Target("jasmin", JASMIN_HTTP), seconds, load_prefix, connections)),
        )
        busy_end = time.time()
    idle = window_rate(idle_start + 1, busy_start)
    busy = window_rate(busy_start + 1, busy_end)
    if system == "jasmin":
        with contextlib.suppress(Exception):
            purge_jasmin()  # the rest of the backlog
            time.sleep(3)
    ratio = busy / idle if idle else None
    return {"system": system, "idle_per_s": idle, "busy_per_s": busy, "ratio": ratio, "cores": cores, **load}


def jasmin_cpu() -> dict[str, float]:
    """CPU seconds of Jasmin's own processes: jasmind, RabbitMQ (the Erlang VM on 5672) and its Redis."""
    taken: dict[str, float] = {}
    for name, pid in (
        ("jasmind", pid_file(JASMIN_DIR / "run" / "jasmind.pid")),
        ("rabbitmq", listening_pid(5672)),
        ("redis", pid_file(JASMIN_DIR / "run" / "redis.pid")),
    ):
        if pid is not None:
            taken[name] = sum(role_cpu(pid).values())
    return taken


def pid_file(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(path.read_text().split()[0])
    return None


def listening_pid(port: int) -> int | None:
    listing = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False).stdout
    found = listing.split("pid=", 1)
    return int(found[1].split(",", 1)[0]) if len(found) > 1 else None


def spent(before: dict[str, float], after: dict[str, float], messages: int) -> dict[str, float]:
    """CPU ms per message by process, and "all"."""
    per = {name: (after[name] - before.get(name, 0.0)) * 1000 / max(messages, 1) for name in after}
    return {**{name: round(ms, 3) for name, ms in per.items()}, "all": round(sum(per.values()), 3)}


def cost(system: str, args: argparse.Namespace, smsc: Smsc) -> dict[str, Any]:
    """CPU per delivered message at a trickle and draining a backlog (the part's docstring, point 4)."""
    trickle_prefix, backlog_prefix = phase_prefix(3), phase_prefix(4)
    trickle_jobs = int(args.trickle_rate * args.trickle_seconds)

    def phases(target: Target, sample: Callable[[], dict[str, float]], offer_backlog: Callable[[], None]) -> dict:
        before = sample()
        run_async(paced(target, args.trickle_rate, args.trickle_seconds, trickle_prefix, args.connections))
        trickled = drain_rate(smsc, trickle_prefix, trickle_jobs, 120)["drained"]
        middle = sample()
        offer_backlog()
        backlog = drain_rate(smsc, backlog_prefix, args.cost_backlog, 300)
        after = sample()
        trickle, drain = spent(before, middle, trickled), spent(middle, after, backlog["drained"])
        return {
            "trickled": trickled,
            "drained": backlog["drained"],
            "drain_per_s": backlog["per_s"],
            "trickle_ms": trickle,
            "drain_ms": drain,
            "ratio": round(trickle["all"] / drain["all"], 2) if drain["all"] else None,
        }

    if system == "ours":
        with (
            temporary_directory("smpp-bench-") as tmp,
            gateway(tmp, smsc.port, args.binds, args.window, args.serve_flags) as target,
        ):
            assert target.pid is not None
            pid = target.pid
            time.sleep(3.0)  # settled: the children's start-up is not the trickle's
            return {
                "system": system,
                **phases(target, lambda: role_cpu(pid), lambda: preload(target, args.cost_backlog, backlog_prefix)),
            }
    purge_jasmin()
    jasmin = Target("jasmin", JASMIN_HTTP)
    return {
        "system": system,
        **phases(
            jasmin,
            jasmin_cpu,
            lambda: run_async(paced(jasmin, 1e9, args.cost_backlog / 1e9, backlog_prefix, connections=32)),
        ),
    }


def cost_section(runs: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    rows = []
    for system in ("ours", "jasmin"):
        mine = [r for r in runs if r["system"] == system]
        if not mine:
            continue
        parties = sorted({name for r in mine for name in r["trickle_ms"] if name != "all"})

        def med(phase: str, name: str, of: list[dict[str, Any]] = mine) -> float | None:
            return median([r[phase].get(name) for r in of])

        rows.append(
            [
                system,
                fmt(med("trickle_ms", "all"), 3),
                fmt(med("drain_ms", "all"), 3),
                fmt(median([r["ratio"] for r in mine]), 2),
                fmt(median([r["drain_per_s"] for r in mine])),
                ", ".join(f"{n} {fmt(med('trickle_ms', n), 3)} / {fmt(med('drain_ms', n), 3)}" for n in parties),
            ]
        )
    return [
        "## Cost: CPU per delivered message, trickle against backlog (medians of the runs)",
        "",
        f"Trickle: {args.trickle_rate:g} requests/s open loop for {args.trickle_seconds:g} s; backlog:"
        f" {args.cost_backlog} jobs offered as fast as the API takes them; each phase from its first request"
        " until the SMSC took its last message; the system's own processes (not the SMSC's, not the client's).",
        "",
        markdown_table(
            ["system", "trickle CPU ms/msg", "backlog CPU ms/msg", "trickle / backlog", "backlog msg/s", "by process"],
            rows,
        ),
        "",
    ]


# --- the report ------------------------------------------------------------------------------------


def report(args: argparse.Namespace, results: dict[str, Any], skipped: str | None) -> str:
    rows = []
    for rate in args.rates:
        cells = [fmt(rate)]
        for system in ("ours", "jasmin"):
            runs = [r for r in results["sustained"] if r["system"] == system and r["offered"] == rate]
            if not runs:
                cells += ["skipped", "", "", ""]
                continue
            cells += [
                fmt(median([r["delivered_per_s"] for r in runs])),
                fmt(median([r["p50_ms"] for r in runs]), 1),
                fmt(median([r["p99_ms"] for r in runs]), 1),
                fmt(median([r["p99_from_due_ms"] for r in runs]), 1),
            ]
        rows.append(cells)
    sustained_table = markdown_table(
        [
            "offered/s",
            "ours delivered/s",
            "ours p50 ms",
            "ours p99 ms",
            "ours p99 from due ms",
            "Jasmin delivered/s",
            "p50 ms",
            "p99 ms",
            "p99 from due ms",
        ],
        rows,
    )
    drains = {s: median([r["per_s"] for r in results["drain"] if r["system"] == s]) for s in ("ours", "jasmin")}
    accepts = {s: [r for r in results["accept"] if r["system"] == s] for s in ("ours", "jasmin")}

    def accept_rows(system: str) -> list[list[str]]:
        if not accepts[system]:
            return [[system, "skipped", "", "", "", "", "", ""]]
        rows = []
        for connections, runs in by_connections(accepts[system]).items():
            answered = [r for r in runs if r.get("answer_p99_ms") is not None]
            rows.append(
                [
                    system,
                    str(connections),
                    fmt(median([r["accepted_per_s"] for r in runs])),
                    fmt(median([r["answer_p99_ms"] for r in answered]), 1) if answered else "-",
                    fmt(median([r["idle_per_s"] for r in runs])),
                    fmt(median([r["busy_per_s"] for r in runs])),
                    fmt(median([r["ratio"] for r in runs]), 2),
                    ", ".join(
                        f"{name} {median([r['cores'].get(name, 0.0) for r in runs]):.2f}" for name in runs[0]["cores"]
                    ),
                ]
            )
        return rows

    header = [
        "# SMPP: ours against Jasmin (bench/smpp.py)",
        "",
        f"Command: `.venv/bin/python bench/smpp.py {' '.join(sys.argv[1:])}`",
        f"Machine: {machine_info()}; load average before: {results['load_before']}, after: {load_average()};"
        f" source {source_revision(ROOT)}; binds/connectors {args.binds}, window {args.window};"
        f" ours as `gateway serve {args.serve_flags or '(no flags)'}` in the sustained, accept and cost parts.",
        "",
        f"Jasmin: {skipped or 'measured in the same launch, one connector per bind, against the same SMSC'}",
        "",
    ]
    sections = {
        "sustained": ["## Sustained paced load (medians of the runs)", "", sustained_table, ""],
        "drain": [
            "## Backlog drain",
            "",
            markdown_table(
                ["system", f"{args.drain} jobs drained per s", "vs Jasmin"],
                [
                    [
                        "ours",
                        fmt(drains["ours"]),
                        fmt(drains["ours"] / drains["jasmin"], 2) if drains["jasmin"] else "-",
                    ],
                    ["jasmin", fmt(drains["jasmin"]), "1.00" if drains["jasmin"] else "skipped"],
                ],
            ),
            "",
        ],
        "accept": [
            "## Single-job accept while dispatching (closed loop, medians of the runs)",
            "",
            markdown_table(
                [
                    "system",
                    "connections",
                    "accepted/s",
                    "answer p99 ms",
                    "idle dispatch/s",
                    "dispatch/s under accept load",
                    "ratio",
                    "cores used meanwhile",
                ],
                accept_rows("ours") + accept_rows("jasmin"),
            ),
            "",
            accept_summary(accepts),
            "",
        ],
        "cost": cost_section(results["cost"], args),
    }
    lines = (
        header
        + [line for part, kept in sections.items() if part in args.parts for line in kept]
        + [
            "## Every run",
            "",
            "```json",
            json.dumps(results, indent=1, default=str)[:60_000],
            "```",
        ]
    )
    return "\n".join(lines)


def by_connections(outcomes: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The accept part's runs by their client's connections, fewest first."""
    grouped: dict[int, list[dict[str, Any]]] = {}
    for outcome in sorted(outcomes, key=lambda r: r["connections"]):
        grouped.setdefault(outcome["connections"], []).append(outcome)
    return grouped


def accept_summary(accepts: dict[str, list[dict[str, Any]]]) -> str:
    """Each system's accept rate is the highest of its medians over the connection counts (a closed loop
    measures the server only once more connections no longer raise it); and the ratio at each count."""
    medians: dict[str, dict[int, float]] = {}
    for system, outcomes in accepts.items():
        for connections, runs in by_connections(outcomes).items():
            rate = median([r["accepted_per_s"] for r in runs])
            if rate:
                medians.setdefault(system, {})[connections] = rate
    if set(medians) != {"ours", "jasmin"}:
        return ""
    ours, jasmin = medians["ours"], medians["jasmin"]
    best_ours, best_jasmin = max(ours, key=ours.__getitem__), max(jasmin, key=jasmin.__getitem__)
    same = ", ".join(f"{c}: {ours[c] / jasmin[c]:.2f} x" for c in ours if c in jasmin)
    return (
        f"Best of each: ours {fmt(ours[best_ours])}/s ({best_ours} connections), Jasmin"
        f" {fmt(jasmin[best_jasmin])}/s ({best_jasmin}): **{ours[best_ours] / jasmin[best_jasmin]:.2f} x**."
        f" At the same connections: {same}."
    )


def rates(value: str) -> list[float]:
    return [float(x) for x in value.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--rates", type=lambda v: [float(x) for x in v.split(",")], default=[100, 500, 1000, 2000, 4000]
    )
    parser.add_argument("--drain", type=int, default=20_000)
    parser.add_argument("--binds", type=int, default=1)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--smsc-port", type=int, default=12775, help="Jasmin's connector must point here")
    parser.add_argument("--only", choices=["ours", "jasmin"], default=None)
    parser.add_argument("--parts", default="sustained,drain,accept", help="any of sustained, drain, accept, cost")
    parser.add_argument("--trickle-rate", type=float, default=100.0, help="the cost part's trickle, requests/s")
    parser.add_argument("--trickle-seconds", type=float, default=30.0)
    parser.add_argument("--cost-backlog", type=int, default=10_000, help="the cost part's backlog, jobs")
    parser.add_argument(
        "--serve-flags",
        default="",
        help="ours in the sustained and accept parts: `gateway serve` with these flags (default none, as a user"
        " starts it; e.g. '--role all' for one process)",
    )
    parser.add_argument("--connections", type=int, default=64, help="the paced client's connections")
    parser.add_argument(
        "--accept-connections",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[32, 64, 128],
        help="the accept part's closed-loop connections, each its own run (default 32,64,128): a rate is the"
        " server's only once more connections no longer raise it",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="ours in the accept part: the worker and callbacks processes reniced to this once started (an"
        " experiment: intake first on the CPU)",
    )
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks" / "smpp.md")
    args = parser.parse_args()
    skipped = None if args.only != "ours" else "not run (--only ours)"
    systems = ["ours"] if args.only == "ours" else ["jasmin"] if args.only == "jasmin" else ["ours", "jasmin"]
    results: dict[str, Any] = {"load_before": load_average(), "sustained": [], "drain": [], "accept": [], "cost": []}
    with temporary_directory("smpp-smsc-") as work, Smsc(args.smsc_port, work) as smsc:
        if "jasmin" in systems:
            time.sleep(4)  # Jasmin's connector rebinds to the new SMSC
            skipped = jasmin_ready()
            if skipped:
                print(f"Jasmin skipped: {skipped}", flush=True)
                systems.remove("jasmin")
        for run in range(args.runs):
            for system in systems:
                if "sustained" in args.parts:
                    for rate in args.rates:
                        knobs = (args.binds, args.window, args.serve_flags, args.connections)
                        outcome = sustained(system, rate, args.seconds, smsc, *knobs)
                        print(json.dumps({"run": run, **{k: v for k, v in outcome.items()}}), flush=True)
                        results["sustained"].append(outcome)
                if "drain" in args.parts:
                    outcome = drain(system, args.drain, smsc, args.binds, args.window)
                    print(json.dumps({"run": run, **outcome}), flush=True)
                    results["drain"].append(outcome)
                if "cost" in args.parts:
                    outcome = cost(system, args, smsc)
                    print(json.dumps({"run": run, **outcome}), flush=True)
                    results["cost"].append(outcome)
                for connections in args.accept_connections if "accept" in args.parts else []:
                    outcome = accept_while_draining(
                        system,
                        args.seconds,
                        smsc,
                        args.binds,
                        args.window,
                        args.drain * 2,
                        args.serve_flags,
                        args.worker_nice,
                        connections,
                    )
                    print(json.dumps({"run": run, **outcome}), flush=True)
                    results["accept"].append(outcome)
    write_doc(args.doc, report(args, results, skipped))
    print(f"written {args.doc}", flush=True)


if __name__ == "__main__":
    main()

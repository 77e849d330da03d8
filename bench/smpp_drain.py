"""Where an SMPP backlog drain spends its time (issue 22's drain target, taken apart), A/B in one launch.

    .venv/bin/python bench/smpp_drain.py --jobs 20000 --runs 3 [--gateway-root DIR] [--binds 1 --window 32]

The fake SMSC (tests/fakes/smsc.py) runs in its own process; --jobs jobs are accepted through a
`--role api` gateway (batch requests), then the worker runs in a bench process on the embedded
default (SQLite, uvloop) until the SMSC has taken them all. Reported per run: the drain rate; CPU per
message of the worker process (all its threads) and of the SMSC; how full the binds' windows were
(outstanding submit_sm sampled every 10 ms); how long a job waited at each stage (claim, policy
gate, the `sending` commit, the SMPP send, the outcome commit); and the group commits' sizes.

With --gateway-root (e.g. a `git archive` of main, unpacked) each run drains once with that source
(the baseline) and once with this tree, alternating, and the medians are reported as ratios
to the baseline. With --py-spy the worker of the last run is sampled (folded stacks to the file).
Nothing here is compared with a target: bench/smpp.py is the acceptance bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if os.environ.get("SMPP_DRAIN_SOURCE"):  # a child run: the gateway under test comes first
    sys.path.insert(0, os.environ["SMPP_DRAIN_SOURCE"])

from bench.common import PYTHON, free_port, load_average, median, source_revision, temporary_directory  # noqa: E402
from bench.smpp import Smsc, gateway, gateway_env, phase_prefix, preload, run_async  # noqa: E402

Stats = dict[str, list[float]]  # name -> [calls, items, seconds]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(stats: Stats, name: str, fn: Callable[..., Awaitable[Any]], batch: bool = False) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            entry = stats.setdefault(name, [0, 0, 0.0])
            entry[0] += 1
            entry[1] += len(args[0]) if batch else 1
            entry[2] += time.perf_counter() - started

    return wrapper


def instrument(stats: Stats, gw: Any, provider: Any) -> None:
    """Wrap what exists in the source under test (an older tree may lack a stage)."""
    store = gw.store
    for name, committer in [
        ("commit: sending marks", "_marks"),
        ("commit: outcomes", "_outcomes"),
        ("commit: marks and outcomes together", "_handoffs"),
    ]:
        owner = getattr(store, committer, None)
        if owner is not None:
            owner._flush = timed(stats, name, owner._flush, batch=True)
    for name, owner, attribute in [
        ("wait: claim (per batch)", store, "claim_due"),
        ("wait: policy gate (per batch)", gw.worker.gate, "judge"),
        ("wait: throughput pacing", gw.worker.pacer, "admit"),
        ("wait: sending mark committed", store, "mark_sending"),
        ("wait: SMPP send", provider, "send"),
        ("wait: outcome committed", store, "record_outcome"),
    ]:
        if hasattr(owner, attribute):
            setattr(owner, attribute, timed(stats, name, getattr(owner, attribute)))


def cpu_timed(stats: Stats, name: str, fn: Callable[..., Any], batch_arg: int | None = None) -> Callable[..., Any]:
    """CPU of the calling thread in a synchronous store function (SQLite's own work included)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = stats.setdefault(name, [0, 0, 0.0])
            entry[0] += 1
            entry[1] += len(args[batch_arg]) if batch_arg is not None else 1
            entry[2] += time.thread_time() - started

    return wrapper


def instrument_cpu(stats: Stats) -> None:
    """Thread CPU of the store's hot functions, in whichever modules of the source under test call them."""
    import importlib

    from gateway.store import database

    for module_name, attribute, name in [
        ("gateway.store.sql.leases", "claim_due", "cpu: claim statements"),
        ("gateway.store.sql.leases", "mark_sending", "cpu: sending-mark statements"),
        ("gateway.store.sql.handoffs", "mark_sending", "cpu: sending-mark statements"),
        ("gateway.store.sql.outcomes", "record_outcomes", "cpu: outcome statements"),
        ("gateway.store.sql.handoffs", "record_outcomes", "cpu: outcome statements"),
    ]:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, attribute):
            batch = None if attribute == "claim_due" else 1
            setattr(module, attribute, cpu_timed(stats, name, getattr(module, attribute), batch))
    sqlite = database.SqliteDatabase
    sqlite._commit_accept = cpu_timed(stats, "cpu: hand-off COMMITs (commit thread)", sqlite._commit_accept)  # type: ignore[method-assign]


async def drain(smsc_pid: int, smsc_log: Path, jobs: int, window: int) -> dict[str, Any]:
    from gateway.app import Gateway
    from gateway.logging import configure_logging
    from gateway.settings import Settings

    stats: Stats = {}
    instrument_cpu(stats)
    settings = Settings()
    configure_logging(settings.log_level)  # warning, as the bench's gateways run
    gw = Gateway(settings, "worker")
    await gw.start()
    assert gw.worker is not None and gw.providers is not None
    provider = gw.providers.get("smpp")
    instrument(stats, gw, provider)
    cpu, smsc_cpu = time.process_time(), cpu_seconds(smsc_pid)
    outstanding: list[int] = []
    while sum(1 for _ in smsc_log.open()) < jobs:
        for _ in range(50):
            await asyncio.sleep(0.01)
            outstanding.append(sum(s.in_flight for s in provider.sessions))  # type: ignore[attr-defined]
    cpu, smsc_cpu = time.process_time() - cpu, cpu_seconds(smsc_pid) - smsc_cpu
    await gw.stop()
    binds = len(provider.sessions) or 1  # type: ignore[attr-defined]
    return {
        "gateway_cpu_ms_per_message": round(cpu * 1000 / jobs, 3),
        "smsc_cpu_ms_per_message": round(smsc_cpu * 1000 / jobs, 3),
        "outstanding_mean": round(statistics.mean(outstanding), 1),
        "window_full_share": round(sum(1 for n in outstanding if n >= binds * window) / len(outstanding), 3),
        "stages": {
            name: {
                "calls": int(calls),
                "items_per_call": round(items / calls, 1),
                "ms_per_call": round(seconds * 1000 / calls, 2),
            }
            for name, (calls, items, seconds) in stats.items()
        },
    }


def child(args: argparse.Namespace) -> None:
    """One drain with the source named by SMPP_DRAIN_SOURCE, printed as JSON."""
    with (
        temporary_directory("smpp-drain-") as work,
        Smsc(free_port(), work) as smsc,
        temporary_directory("smpp-drain-db-") as db,
    ):
        prefix = phase_prefix(6)
        with gateway(db, smsc.port, args.binds, args.window, flags="--role api") as target:
            preload(target, args.jobs, prefix)
        os.environ.update(gateway_env(db, smsc.port, args.binds, args.window))
        os.environ["GATEWAY_PORT"] = str(free_port())
        os.chdir(db)
        spy = None
        if args.spy:
            py_spy = [str(Path(PYTHON).parent / "py-spy"), "record", "--pid", str(os.getpid()), "-r", "100"]
            spy = subprocess.Popen([*py_spy, "-f", "raw", "-o", args.spy, "--nonblocking"], stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        assert smsc.proc is not None
        result = run_async(drain(smsc.proc.pid, smsc.log, args.jobs, args.window))
        if spy is not None:
            spy.send_signal(2)  # py-spy writes its file on SIGINT
            spy.wait()
        taken = sorted(smsc.taken().values())
        result = {"drained": len(taken), "per_s": round(len(taken) / (taken[-1] - taken[0]), 1), **result}
        print(json.dumps(result))


def one_run(source: Path, args: argparse.Namespace, spy: str | None) -> dict[str, Any]:
    argv = [PYTHON, __file__, "--child", "--jobs", str(args.jobs), "--binds", str(args.binds)]
    argv += ["--window", str(args.window)] + (["--py-spy", spy] if spy else [])
    env = {**os.environ, "SMPP_DRAIN_SOURCE": str(source), "PYTHONPATH": str(source)}
    load = load_average()
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    return {"load": load, **json.loads(out.strip().splitlines()[-1])}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def stage(name: str, key: str) -> float | None:
        return median([r["stages"][name][key] for r in runs if name in r["stages"]])

    return {
        "per_s": median([r["per_s"] for r in runs]),
        "gateway_cpu_ms_per_message": median([r["gateway_cpu_ms_per_message"] for r in runs]),
        "outcomes_per_commit": stage("commit: outcomes", "items_per_call"),
        "outcome_commits": stage("commit: outcomes", "calls"),
        "marks_per_commit": stage("commit: sending marks", "items_per_call"),
        "joint_commits": stage("commit: marks and outcomes together", "calls"),
        "writes_per_joint_commit": stage("commit: marks and outcomes together", "items_per_call"),
        "submit_wait_ms": stage("wait: SMPP send", "ms_per_call"),
        "outstanding_mean": median([r["outstanding_mean"] for r in runs]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binds", type=int, default=1)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--gateway-root", type=Path, default=None, help="the baseline source, run in the same launch")
    parser.add_argument("--py-spy", dest="spy", default=None, help="write py-spy's folded stacks here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sources = {"this tree": ROOT} | ({"baseline": args.gateway_root.resolve()} if args.gateway_root else {})
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
    for index in range(args.runs):
        for name, source in reversed(sources.items()) if index % 2 else sources.items():
            spy = args.spy if index == args.runs - 1 and name == "this tree" else None
            runs[name].append(one_run(source, args, spy))
            print(json.dumps({"source": name, "run": index + 1, **runs[name][-1]}), file=sys.stderr)
    report: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "sources": {name: f"{source} ({source_revision(source)})" for name, source in sources.items()},
        "medians": {name: summary(r) for name, r in runs.items()},
    }
    if args.gateway_root:
        mine, base = report["medians"]["this tree"], report["medians"]["baseline"]
        report["ratios_to_baseline"] = {
            key: round(mine[key] / base[key], 2) for key in mine if mine[key] is not None and base[key]
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

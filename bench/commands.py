"""What one `gateway <command>` costs to run, as an ops script calling it sees it: nearly all of it is
importing what the command needs.

    .venv/bin/python bench/commands.py [--runs 5] [--coverage] [--source DIR]

Each command runs --runs times on a SQLite database migrated beforehand; the table gives the lowest
wall time and the lowest CPU time (user + system, of the child) of the runs: on a shared machine the
lowest is the figure least disturbed by others. --coverage runs each command as the test suite does
(coverage started in the child from pyproject.toml's [tool.coverage]). --source DIR runs the gateway
from another checkout's sources (e.g. an export of main) for a before/after. Results go to
docs/BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    ["migrate"],
    ["keys", "list"],
    ["keys", "create"],
    ["templates", "list"],
    ["report", "failures"],
    ["export", "events"],
    ["numbers"],
    ["purge", "--older-than", "1d"],
    ["check", "hello"],
    ["config-example"],
]


def timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `python -m gateway ARGV`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gateway", *argv], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"gateway {' '.join(argv)} exited with {done.returncode}: {done.stderr[-500:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--coverage", action="store_true")
    parser.add_argument("--source", type=Path, default=None, help="run the gateway from this checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-commands-") as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "COVERAGE_"))}
        env["GATEWAY_DATABASE_URL"] = f"sqlite:///{work}/gateway.db"
        if args.source is not None:
            env["PYTHONPATH"] = str(args.source.resolve())
        if args.coverage:
            env["COVERAGE_PROCESS_START"] = str(ROOT / "pyproject.toml")
            env["COVERAGE_FILE"] = f"{work}/.coverage"
        timed(["migrate"], env, work)
        print(f"| command | wall, s | CPU, s |  ({args.runs} runs, lowest; coverage: {args.coverage})")
        print("|---|---:|---:|")
        for argv in COMMANDS:
            runs = [timed(argv, env, work) for _ in range(args.runs)]
            print(f"| `gateway {' '.join(argv)}` | {min(w for w, _ in runs):.2f} | {min(c for _, c in runs):.2f} |")


if __name__ == "__main__":
    main()

"""How many API and worker processes `gateway serve` starts, from the machine's cores.

Pure: the cores are given, nothing is read here. The defaults (`--processes auto`, `--workers auto`):

- 1 core: one process doing both (the API and the worker), as before; a supervisor and a second
  process would only take turns on the one core.
- 2 or more cores: one worker process per 4 cores (at least one) and an API process on each core
  left, sharing the port (SO_REUSEPORT). Under a sustained load a worker draining at full speed
  keeps a core busy itself; an API process on every core as well put three processes on two cores
  and measured worse (bench/smpp.py at 2,000 msg/s offered on 2 cores: p99 accept-to-submit
  0.57-0.80 s against 0.24-0.36 s with one of each; docs/BENCHMARKS.md).

`--processes N` sets the API processes, `--workers N` the worker processes. `--processes 1`
without `--workers` is the single process of the 1-core default.

Status callbacks are delivered by a process of their own whenever there are several (one; its
HTTP sends would otherwise take their share of a dispatching process's one core: docs/BENCHMARKS.md),
by the one process otherwise; `[webhooks] delivery_process` says "own" or "worker" to choose.
"""

from __future__ import annotations

from dataclasses import dataclass

CORES_PER_WORKER = 4


@dataclass(frozen=True, slots=True)
class Layout:
    api: int
    workers: int
    callbacks: int = 0

    @property
    def single(self) -> bool:
        """One process doing both, unsupervised: no worker process of its own."""
        return self.workers == 0 and self.callbacks == 0


def plan_layout(
    cores: int, processes: int | None = None, workers: int | None = None, callbacks: str = "auto"
) -> Layout:
    """`None` means auto; `callbacks` is [webhooks] delivery_process (auto, worker, own). Raises
    ValueError for counts below 1."""
    for name, given in (("--processes", processes), ("--workers", workers)):
        if given is not None and given < 1:
            raise ValueError(f"{name} must be auto or at least 1, got {given}")
    cores = max(1, cores)
    if workers is None and callbacks != "own" and (processes == 1 or (processes is None and cores == 1)):
        return Layout(api=1, workers=0)
    dispatchers = workers if workers is not None else max(1, cores // CORES_PER_WORKER)
    api = processes if processes is not None else max(1, cores - dispatchers)
    return Layout(api=api, workers=dispatchers, callbacks=0 if callbacks == "worker" else 1)


def parse_count(text: str) -> int | None:
    """'auto' -> None; a whole number >= 1 -> itself."""
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{text!r} is not auto or a whole number >= 1")
    return int(text)

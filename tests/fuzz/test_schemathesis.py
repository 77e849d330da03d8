"""API fuzzing: schemathesis generates requests from the live /openapi.json of a real gateway (sandbox on).

Every generated request must get no 5xx, and every response must conform to the documented schema.
Runs on both stores. Bounded: ``GATEWAY_FUZZ_EXAMPLES`` cases per operation and generation mode
(default 80) keeps one backend under ~60 s on 2 cores. Failures are collected (no shrinking) and
reported together, each with a curl command that reproduces it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from tests.harness import API_KEY, running_gateway  # noqa: E402

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "80"))
STATEFUL_EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_STATEFUL_EXAMPLES", "30"))
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHECKS = [not_a_server_error, response_schema_conformance]


class GatewayThread:
    """A real gateway on its own event loop in a thread, so schemathesis can call it synchronously."""

    def __init__(self, tmp_path: Path, postgres_server: str | None) -> None:
        self.tmp_path = tmp_path
        self.postgres_server = postgres_server
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzzed-gateway", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        database_url, name = None, None
        if self.postgres_server:
            import asyncpg

            name = f"gw_fuzz_{uuid.uuid4().hex[:12]}"
            admin = await asyncpg.connect(self.postgres_server)
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()
            database_url = self.postgres_server.rsplit("/", 1)[0] + "/" + name
        try:
            async with running_gateway(self.tmp_path, database_url=database_url) as gw:
                self.url = gw.url
                self._ready.set()
                await self._stop.wait()
        finally:
            if name:
                admin = await asyncpg.connect(self.postgres_server)
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                finally:
                    await admin.close()

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"the gateway did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture(params=["sqlite", "postgresql"])
def live_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayThread]:
    server = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with GatewayThread(tmp_path, server) as gateway:
        yield gateway


@dataclass
class Tally:
    cases: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # one per (operation, failure kind): repro + message
    unsatisfiable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def record(self, label: str, case: Any, response: Any) -> None:
        self.cases += 1
        self.by_operation[label] = self.by_operation.get(label, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=AUTH)
        except (
            Exception,  # noqa: BLE001 - any failed check is kept as a repro
            BaseExceptionGroup,
        ) as exc:  # a check failed: keep the first repro of each kind, go on fuzzing
            found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
            names = ", ".join(sorted({getattr(e, "title", type(e).__name__) for e in found}))
            kind = f"{label} -> {response.status_code}: {names}"
            if kind not in self.failures:
                self.failures[kind] = f"{case.as_curl_command(headers=AUTH)}\n{str(exc)[:1500]}"


def _fuzz_operation(operation: Any, mode: GenerationMode, base_url: str, tally: Tally) -> None:
    label = f"{operation.method.upper()} {operation.path} [{mode.value}]"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # failures are collected, not shrunk
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, headers=AUTH, timeout=30)
        tally.record(label, case, response)

    try:
        run()
    except Unsatisfiable:
        # e.g. no invalid request can be generated for an operation without parameters or body
        tally.unsatisfiable.append(label)


def _fuzz_stateful(schema: Any, base_url: str, tally: Tally) -> None:
    """Scenarios chained over inferred links (create -> get/retry/delete, list -> get, ...)."""
    workflow = schema.as_state_machine()

    class Scenario(workflow):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base_url, "headers": AUTH, "timeout": 30}

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            tally.record(f"stateful {case.operation.method.upper()} {case.operation.path}", case, response)

    try:
        Scenario.run(
            settings=settings(
                max_examples=STATEFUL_EXAMPLES,
                stateful_step_count=6,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
        )
    except FlakyStrategyDefinition:
        # Bundles fill from live responses, so a replayed scenario can draw differently; the steps
        # already run were counted and checked, which is what this run is for.
        tally.notes.append("stateful scenarios stopped early: server state changed between replays")


def test_generated_requests_get_no_5xx_and_conform_to_the_schema(live_gateway: GatewayThread) -> None:
    schema = schemathesis.openapi.from_url(live_gateway.url + "/openapi.json")
    tally = Tally()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, live_gateway.url, tally)
    stateless = tally.cases
    _fuzz_stateful(schema, live_gateway.url, tally)
    elapsed = time.monotonic() - started
    print(
        f"\nschemathesis {schemathesis.SCHEMATHESIS_VERSION}: {tally.cases} generated cases over "
        f"{len(tally.by_operation)} operation/mode pairs ({stateless} stateless, {tally.cases - stateless} in stateful "
        f"scenarios over the links schemathesis infers) in {elapsed:.1f}s; {len(tally.failures)} distinct failures"
    )
    for label, count in sorted(tally.by_operation.items()):
        print(f"  {count:4d}  {label}")
    for label in tally.unsatisfiable:
        print(f"  none  {label} (no such request can be generated)")
    for note in tally.notes:
        print(f"  note  {note}")
    for kind in tally.failures:
        print(f"  FAIL  {kind}")
    assert tally.cases > 0
    assert not tally.failures, "\n\n".join(f"{kind}\n{repro}" for kind, repro in tally.failures.items())

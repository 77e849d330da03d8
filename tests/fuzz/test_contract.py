"""The document and the server agree: `schemathesis run` against a real gateway's /openapi.json, with
every check, valid and invalid requests, finds nothing (no 5xx, no answer outside the document, no
valid request refused, no invalid one taken), and reaches the accept path.

The gateway's content policy is an operator's rule about words, links and a text's length in SMS
segments: it refuses with a documented 422 content-policy that JSON Schema cannot foresee, so the
fuzzed gateway allows as many segments as the document allows characters. Bounded by
``GATEWAY_FUZZ_EXAMPLES`` (default 100) examples per operation; the seed is fixed so a failure
reproduces (``GATEWAY_FUZZ_SEED`` to explore others).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.fuzz.fixture_template import FUZZ_PERSON, FUZZ_TEMPLATE, FUZZ_TEMPLATE_BODY, put_person
from tests.harness import API_KEY
from tests.processes import GatewayProcess

pytest.importorskip("schemathesis")
pytestmark = pytest.mark.fuzz

# 60 per operation over the ~60 operations keeps the suite's CI run short; a deeper run sets more.
EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "60"))
# The same document on PostgreSQL, fewer cases and no boundary (coverage) phase: what differs there is
# the store underneath (text without NUL, integer columns, isolation), not the validation in front of it.
POSTGRESQL_SHARE = 0.3
POSTGRESQL_PHASES = "examples,fuzzing,stateful"
SEED = os.environ.get("GATEWAY_FUZZ_SEED", "20261205")
ROOT = Path(__file__).resolve().parents[2]


def _accepted(metrics: str) -> float:
    return sum(float(v) for v in re.findall(r"^gateway_messages_accepted_total\{[^}]*\} (\S+)$", metrics, re.M))


def _publish_fixture_template(url: str) -> None:
    """The template generated jobs name (tests/fuzz/hooks.py)."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    body = json.dumps(FUZZ_TEMPLATE_BODY).encode()
    for path, data in (("/v1/templates", body), (f"/v1/templates/{FUZZ_TEMPLATE}/publish", b"{}")):
        request = urllib.request.Request(url + path, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201


def _schemathesis_env(url: str) -> dict[str, str]:
    """Schemathesis runs outside coverage measurement: the gateway process is what is measured, and
    tracing the generator's own code (it is CPU-bound) made the run about half as long again. The
    hooks reach the gateway themselves at `GATEWAY_FUZZ_URL` (tests/fuzz/hooks.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    return {**env, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "GATEWAY_FUZZ_URL": url}


def test_schemathesis_finds_no_disagreement_between_the_document_and_the_gateway(
    tmp_path: Path, database_url: str
) -> None:
    examples = EXAMPLES if database_url.startswith("sqlite") else max(10, int(EXAMPLES * POSTGRESQL_SHARE))
    env = {"GATEWAY_CONTENT__MAX_SEGMENTS": "30", "GATEWAY_LOG_LEVEL": "warning", "GATEWAY_DATABASE_URL": database_url}
    gateway = GatewayProcess(tmp_path, env=env)
    gateway.start()
    try:
        _publish_fixture_template(gateway.url)
        # The person generated jobs for a user_id without `to` name (tests/fuzz/hooks.py).
        assert put_person(gateway.url, FUZZ_PERSON) == 201
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{gateway.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {API_KEY}",
                "--checks",
                "all",
                "--mode",
                "all",
                "--max-examples",
                str(examples),
                "--seed",
                SEED,
                "--generation-database",
                "none",  # no examples replayed from an earlier run: the seed alone decides
                *([] if database_url.startswith("sqlite") else ["--phases", POSTGRESQL_PHASES]),
            ],
            cwd=ROOT,
            env=_schemathesis_env(gateway.url),
            capture_output=True,
            text=True,
            timeout=1800,  # a busy 2-core machine ran the SQLite pass in 14 minutes
        )
        with urllib.request.urlopen(gateway.url + "/metrics", timeout=10) as response:
            accepted = _accepted(response.read().decode())
    finally:
        gateway.stop_quietly()
    # Every failure with its curl repro, each line cut short (a generated value can be megabytes).
    start = run.stdout.find("FAILURES")
    report = "\n".join(line[:400] for line in run.stdout[start if start >= 0 else -8000 :].splitlines())
    print(report)
    assert run.returncode == 0, report
    # Generated requests reached the accept path, not only the refusals.
    assert accepted >= examples, f"only {accepted:.0f} messages accepted over the run\n{report}"

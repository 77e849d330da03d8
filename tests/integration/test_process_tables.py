"""What each kind of gateway process loads at start: phonenumbers' geocoder and carrier tables (~110 MB,
0.3 s to read) are read before the first job only by a dispatching process whose routing or number
pools ask where a recipient is; an API, a callbacks process and a worker that routes on nothing of the
kind go without."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import asyncio, sys
from tests.harness import running_gateway

async def main() -> None:
    env = __import__("json").loads(sys.argv[3])
    async with running_gateway(__import__("pathlib").Path(sys.argv[1]), env, role=sys.argv[2]):
        print("loaded:", sorted(m for m in ("phonenumbers.geocoder", "phonenumbers.carrier") if m in sys.modules))

asyncio.run(main())
"""


NUMBER_TABLES = "['phonenumbers.carrier', 'phonenumbers.geocoder']"


REGION_RULE = {"rules": [{"channel": "voice", "deny": {"province": "Xinjiang"}, "fallback": "sms"}]}
US_POOL = {"provider": "sandbox", "channel": "sms", "countries": ["US"], "senders": ["+14155550100"]}
PLACED_POOL = {"pools": {"us": US_POOL}}


@pytest.mark.parametrize(
    ("role", "env", "loaded"),
    [
        ("callbacks", {}, "[]"),
        ("api", {"GATEWAY_ROUTING": json.dumps(REGION_RULE)}, "[]"),
        ("worker", {}, "[]"),
        ("all", {}, "[]"),
        ("worker", {"GATEWAY_ROUTING": json.dumps(REGION_RULE)}, NUMBER_TABLES),
        ("all", {"GATEWAY_NUMBERS": json.dumps(PLACED_POOL)}, NUMBER_TABLES),
    ],
    ids=["callbacks", "api-with-region-rules", "worker", "all", "worker-with-region-rules", "all-with-placed-pool"],
)
def test_only_the_processes_that_locate_recipients_load_the_number_tables(
    tmp_path: Path, role: str, env: dict[str, str], loaded: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), role, json.dumps(env)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stdout.splitlines() if line.startswith("loaded: ")] == [f"loaded: {loaded}"]

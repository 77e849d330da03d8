"""What each kind of gateway process loads at start: a callbacks process places no number and reads no
text, so it goes without phonenumbers' geocoder and carrier tables (~110 MB); the others read them
before serving, so no request waits on them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import asyncio, sys
from tests.harness import running_gateway

async def main() -> None:
    async with running_gateway(__import__("pathlib").Path(sys.argv[1]), role=sys.argv[2]):
        print("loaded:", sorted(m for m in ("phonenumbers.geocoder", "phonenumbers.carrier") if m in sys.modules))

asyncio.run(main())
"""


NUMBER_TABLES = "['phonenumbers.carrier', 'phonenumbers.geocoder']"


@pytest.mark.parametrize(("role", "loaded"), [("callbacks", "[]"), ("worker", NUMBER_TABLES)])
def test_only_the_processes_that_place_numbers_load_the_number_tables(tmp_path: Path, role: str, loaded: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), role],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stdout.splitlines() if line.startswith("loaded: ")] == [f"loaded: {loaded}"]

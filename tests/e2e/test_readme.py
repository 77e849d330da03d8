"""The README's copy-paste example works as written against a real gateway process."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.processes import GatewayProcess

README = Path(__file__).parents[2] / "README.md"
pytestmark = pytest.mark.slow


def _blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_opens_with_the_two_commands() -> None:
    run, test = _blocks()[:2]
    assert "gateway serve" in run and "GATEWAY_API_KEY=" in run
    assert test.strip() == "./scripts/test"
    assert "./scripts/test" in (README.parents[0] / ".ci" / "run").read_text()


def test_the_curl_examples_show_delivered_clicked_and_reported(tmp_path: Path) -> None:
    run, _, example, loop = _blocks()[:4]
    key = re.search(r"GATEWAY_API_KEY=(\S+)", run)
    assert key is not None
    gateway = GatewayProcess(tmp_path, {"GATEWAY_API_KEY": key.group(1)}).start()
    try:
        results = []
        for block in (example, example.split("\n", 1)[0] + "\n" + loop):
            script = block.replace("127.0.0.1:8080", f"127.0.0.1:{gateway.port}")
            results.append(
                subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
            )
    finally:
        gateway.terminate()
    expected = re.search(r"^# (delivered .*)$", example, flags=re.M)
    assert expected is not None
    assert results[0].stdout.strip() == expected.group(1), results[0].stderr
    outputs = [line[2:] for line in loop.splitlines() if line.startswith("# ")]
    assert results[1].stdout.strip().splitlines() == outputs, results[1].stderr

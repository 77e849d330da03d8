"""`gateway serve` started outside the repository applies the shipped word lists, and one told to
use a directory that is not there refuses to start instead of running without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.harness import API_KEY
from tests.processes import GatewayProcess

pytestmark = pytest.mark.slow


def _content_check(url: str, text: str) -> dict[str, object]:
    request = urllib.request.Request(
        url + "/v1/content/check",
        data=json.dumps({"channel": "sms", "text": text}).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        report: dict[str, object] = json.loads(response.read())
    return report


def test_serve_started_elsewhere_applies_the_shipped_lists(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path).start()  # its working directory is tmp_path
    try:
        report = _content_check(gateway.url, "详情请加微信")
    finally:
        gateway.stop_quietly()
    assert report["ok"] is False
    assert [(v["rule"], v["match"]) for v in report["violations"]] == [("blocked_word", "加微信")]  # type: ignore[attr-defined]


def test_serve_with_a_missing_blocklist_dir_stops_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_CONTENT__BLOCKLIST_DIR"] = str(tmp_path / "lists")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "gateway: setting content.blocklist_dir (GATEWAY_CONTENT__BLOCKLIST_DIR): "
        f"no such directory (got '{tmp_path / 'lists'}')"
    ]
    assert not (tmp_path / "gateway.db").exists()


def test_serve_with_a_malformed_list_stops_with_one_line(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "global.txt").write_bytes("贷款\n".encode("gbk"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_CONTENT__BLOCKLIST_DIR": str(lists), "GATEWAY_API_KEY": API_KEY, "GATEWAY_PORT": "0"})
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"gateway: blocklist {lists / 'global.txt'} is not UTF-8 text"
    assert "Traceback" not in result.stderr

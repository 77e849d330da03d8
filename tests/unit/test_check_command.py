"""`gateway check`: a table of violations, exit status 1 when any text is blocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_CONTENT__BLOCKLIST_DIR"] = str(ROOT / "config" / "blocklists")
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )


def test_a_file_of_texts_reports_each_violation_and_exits_1(tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("点击https://t.cn/A6x进入\n周末特惠，详情加 微 信\nYour order has shipped\n", encoding="utf-8")
    result = _run("--file", str(texts), "--json")
    assert result.returncode == 1, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["line"], r["ok"]) for r in reports] == [(1, False), (2, False), (3, True)]
    assert reports[0]["violations"][0]["rule"] == "link_spacing"
    assert reports[1]["violations"][0]["match"] == "加 微 信"


def test_a_clean_text_exits_0_with_a_table() -> None:
    result = _run("Your order has shipped")
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == "1 text(s), 0 blocked"
    assert "GSM-7, 1 segment(s)" in result.stdout

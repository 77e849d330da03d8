"""`gateway check`: a table of violations, exit status 1 when any text is blocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _run(*args: str, cwd: Path = ROOT, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
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


# --- which lists apply, wherever the command runs ------------------------------------------------


def test_outside_the_repository_the_shipped_lists_apply(tmp_path: Path) -> None:
    result = _run("加微信领红包", "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    [report] = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(v["rule"], v["match"]) for v in report["violations"]] == [("blocked_word", "加微信")]
    assert result.stderr == ""


def test_a_relative_blocklist_dir_in_the_config_file_is_read_next_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    (folder / "lists").mkdir(parents=True)
    (folder / "lists" / "global.txt").write_text("暗号\n", encoding="utf-8")
    (folder / "gateway.toml").write_text('[content]\nblocklist_dir = "lists"\n', encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _run("本周暗号：春风", "--json", cwd=elsewhere, GATEWAY_CONFIG=str(folder / "gateway.toml"))
    assert result.returncode == 1, result.stderr
    assert [v["match"] for v in json.loads(result.stdout)["violations"]] == ["暗号"]
    # The operator's directory replaces the shipped lists, it does not add to them.
    assert _run("加微信", cwd=elsewhere, GATEWAY_CONFIG=str(folder / "gateway.toml")).returncode == 0


def test_a_missing_configured_blocklist_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text('[content]\nblocklist_dir = "lists"\n', encoding="utf-8")
    from_file = _run("hello", cwd=tmp_path, GATEWAY_CONFIG=str(tmp_path / "gateway.toml"))
    assert from_file.returncode == 2
    assert from_file.stderr.splitlines() == [
        "gateway: setting content.blocklist_dir (GATEWAY_CONTENT__BLOCKLIST_DIR): "
        f"no such directory (got '{tmp_path / 'lists'}')"
    ]
    from_env = _run("hello", cwd=tmp_path, GATEWAY_CONTENT__BLOCKLIST_DIR="nope")
    assert from_env.returncode == 2
    assert from_env.stderr.splitlines() == [
        "gateway: setting content.blocklist_dir (GATEWAY_CONTENT__BLOCKLIST_DIR): no such directory (got 'nope')"
    ]
    from_option = _run("hello", "--lists", str(tmp_path / "gone"), cwd=tmp_path)
    assert (from_option.returncode, from_option.stderr.splitlines()) == (
        2,
        [f"gateway check: blocklist directory {tmp_path / 'gone'} does not exist"],
    )
    assert from_option.stdout == ""


def test_a_malformed_list_file_is_one_line_naming_the_file_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "global.txt").write_text("贷款\n# severity: warn\n", encoding="utf-8")
    result = _run("hello", "--lists", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"gateway check: {tmp_path / 'global.txt'}:2: the severity line must come before the first word"
    ]


def test_turning_the_file_lists_off_is_explicit(tmp_path: Path) -> None:
    assert _run("加微信", cwd=tmp_path, GATEWAY_CONTENT__BLOCKLIST_DIR="").returncode == 0


def _columns(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def test_the_table_lines_up_when_matches_are_cjk(tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text(
        "点击https://t.cn/A6x进入\n详情加 微 信，低息贷款\nget f r e e m o n e y now\n" + "好" * 450 + "\n",
        encoding="utf-8",
    )
    result = _run("--file", str(texts))
    lines = result.stdout.splitlines()
    header, rows = lines[0], lines[1:-1]
    message_column = _columns(header[: header.index("MESSAGE")])
    assert len(rows) == 5
    for row in rows:
        assert _columns(row[: row.index(" the ") + 1]) == message_column, row
    # A long CJK match is cut to the column's width, not to a number of characters.
    assert f"{'好' * 12} the text needs 7 SMS segments" in rows[-1]

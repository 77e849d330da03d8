"""Word lists: validation, files, carriers, per-carrier and per-tenant scoping, messages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gateway.domain.content import (
    BlocklistError,
    ContentRules,
    WordLists,
    carrier_list_key,
    carrier_name,
    check_content,
    china_marketing_rules,
    load_blocklist_dir,
    parse_blocklist,
    validate_word_list,
)

REPO = Path(__file__).resolve().parents[3]
PLAIN = ContentRules()


# --- validate_word_list (what the tenant list API answers with) -------------------------------------


def test_a_clean_list_has_no_errors() -> None:
    assert validate_word_list(["加微信", "贷款", "free money"], "block") == []


def test_empty_and_blank_entries_are_named_by_index() -> None:
    errors = validate_word_list(["贷款", "", "   ", "博彩"], "warn")
    assert [index for index, _ in errors] == [1, 2]
    assert all("empty" in message for _, message in errors)


def test_duplicates_after_normalisation_point_at_the_first_entry() -> None:
    errors = validate_word_list(["加微信", "vx", "加 微 信", "ＶＸ", "V-X"], "block")
    assert [index for index, _ in errors] == [2, 3, 4]
    assert "entry 0" in errors[0][1]
    assert "entry 1" in errors[1][1] and "entry 1" in errors[2][1]


def test_invalid_severity_is_a_list_level_error() -> None:
    errors = validate_word_list(["贷款"], "deny")
    assert errors == [(None, "severity must be 'block' or 'warn', not 'deny'")]


def test_entries_that_cannot_match_or_are_not_strings_are_refused() -> None:
    errors = validate_word_list(["---", 42, "x" * 101], "block")
    assert [index for index, _ in errors] == [0, 1, 2]
    assert "no letters or digits" in errors[0][1]
    assert "string" in errors[1][1]
    assert "longer" in errors[2][1]


# --- building lists ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "tenant", "tenant:", "carrier:", "region:cn", "Global"])
def test_unknown_list_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="list key"):
        WordLists.build({key: (["贷款"], "block")})


def test_invalid_severity_is_refused_at_build() -> None:
    with pytest.raises(ValueError, match="severity"):
        WordLists.build({"global": (["贷款"], "deny")})  # type: ignore[dict-item]


def test_an_empty_word_list_finds_nothing() -> None:
    report = check_content("加微信贷款", channel="sms", rules=PLAIN, words=WordLists.empty())
    assert report.ok and report.violations == ()


# --- scoping: global, carrier, tenant ---------------------------------------------------------------

SCOPED = WordLists.build(
    {
        "global": (["贷款"], "block"),
        "carrier:china_mobile": (["中奖"], "block"),
        "tenant:alpha": (["贷款利息"], "warn"),
        "tenant:beta": (["竞品"], "block"),
    }
)


def test_another_tenants_longer_word_does_not_hide_a_global_word() -> None:
    for_gamma = check_content("贷款利息低", channel="sms", rules=PLAIN, words=SCOPED, tenant="gamma")
    assert [(v.match, v.severity) for v in for_gamma.violations] == [("贷款", "block")]
    for_alpha = check_content("贷款利息低", channel="sms", rules=PLAIN, words=SCOPED, tenant="alpha")
    assert [(v.match, v.severity) for v in for_alpha.violations] == [("贷款利息", "warn")]
    assert for_alpha.ok  # the tenant's longer entry is only a warning and covers the global word


def test_carrier_lists_apply_only_to_that_carrier() -> None:
    def blocked(carrier: str | None) -> bool:
        return not check_content("恭喜中奖", channel="sms", rules=PLAIN, words=SCOPED, carrier=carrier).ok

    assert blocked("china_mobile") and blocked("carrier:china_mobile")
    assert not blocked("china_unicom") and not blocked(None)


def test_a_word_on_a_block_and_a_warn_list_blocks_and_names_both_lists() -> None:
    words = WordLists.build({"global": (["秒杀"], "warn"), "tenant:alpha": (["秒 杀"], "block")})
    report = check_content("限时秒杀", channel="sms", rules=PLAIN, words=words, tenant="alpha")
    [violation] = report.violations
    assert violation.severity == "block" and not report.ok
    assert "global" in violation.message and "tenant:alpha" in violation.message


def test_a_rebuilt_list_applies_to_the_next_check() -> None:
    before = WordLists.build({"tenant:alpha": (["清仓"], "block")})
    after = WordLists.build({"tenant:alpha": ([], "block")})
    assert not check_content("清仓大促", channel="sms", rules=PLAIN, words=before, tenant="alpha").ok
    assert check_content("清仓大促", channel="sms", rules=PLAIN, words=after, tenant="alpha").ok


# --- files ------------------------------------------------------------------------------------------


def test_the_shipped_blocklists_load_and_are_valid() -> None:
    lists = load_blocklist_dir(REPO / "gateway" / "blocklists")
    assert {"global", "carrier:china_mobile", "carrier:china_unicom", "carrier:china_telecom"} <= set(lists)
    for words, severity in lists.values():
        assert words and validate_word_list(words, severity) == []
    assert lists["carrier:china_telecom"][1] == "warn"
    words = WordLists.build(lists)
    report = check_content("【某某】加 微 信办理无抵押贷款", channel="sms", rules=PLAIN, words=words)
    assert [v.match for v in report.violations] == ["加 微 信", "无抵押贷款"]


def test_blocklist_files_with_comments_severity_and_carrier_directory(tmp_path: Path) -> None:
    (tmp_path / "global.txt").write_text("# spam words\n\n贷款\n  博彩  \n", encoding="utf-8")
    (tmp_path / "seasonal.txt").write_text("# severity: warn\n# more\n秒杀\n", encoding="utf-8")
    (tmp_path / "carrier").mkdir()
    (tmp_path / "carrier" / "china_unicom.txt").write_text("一夜暴富\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not a list", encoding="utf-8")
    assert load_blocklist_dir(tmp_path) == {
        "global": (["贷款", "博彩"], "block"),
        "global:seasonal": (["秒杀"], "warn"),
        "carrier:china_unicom": (["一夜暴富"], "block"),
    }


def test_a_misplaced_or_invalid_severity_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="before the first word"):
        parse_blocklist("贷款\n# severity: warn\n", source="x.txt")
    with pytest.raises(ValueError, match=r"x\.txt:1"):
        parse_blocklist("# severity: maybe\n", source="x.txt")


def test_a_missing_blocklist_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BlocklistError, match=f"^blocklist directory {tmp_path / 'nope'} does not exist$"):
        load_blocklist_dir(tmp_path / "nope")


# --- carriers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("+8613800138000", "carrier:china_mobile"),
        ("+8618612345678", "carrier:china_unicom"),
        ("+8618912345678", "carrier:china_telecom"),
        ("+8619212345678", "carrier:china_broadnet"),
        ("+14155550100", None),
        ("not a number", None),
    ],
)
def test_carrier_list_key_from_the_number_prefix(number: str, key: str | None) -> None:
    assert carrier_list_key(number) == key


def test_carrier_name_feeds_check_content() -> None:
    words = WordLists.build({"carrier:china_mobile": (["中奖"], "block")})
    carrier = carrier_name("+8613900000000")
    assert not check_content("恭喜中奖", channel="sms", rules=PLAIN, words=words, carrier=carrier).ok


# --- messages and presets ------------------------------------------------------------------------------


def test_a_glued_link_message_names_the_link_the_neighbour_and_the_fix() -> None:
    report = check_content("详情见https://t.cn/x，谢谢", channel="sms", rules=PLAIN, words=WordLists.empty())
    [violation] = report.violations
    assert "https://t.cn/x" in violation.message
    assert "'见' before" in violation.message and "'，' after" in violation.message
    assert "space before and after" in violation.message


def test_china_marketing_preset_requires_signature_and_unsubscribe() -> None:
    rules = china_marketing_rules(ContentRules(max_links=1))
    assert rules.max_links == 1
    report = check_content("优惠来了", channel="sms", rules=rules, words=WordLists.empty())
    assert [v.rule for v in report.violations] == ["signature_missing", "unsubscribe_missing"]
    ok = check_content("【商城】优惠来了，拒收请回复R", channel="sms", rules=rules, words=WordLists.empty())
    assert ok.ok


@pytest.mark.parametrize(("channel", "category"), [("fax", "marketing"), ("sms", "promo")])
def test_unknown_channel_or_category_is_a_programming_error(channel: str, category: str) -> None:
    with pytest.raises(ValueError):
        check_content("hi", channel=channel, rules=PLAIN, words=WordLists.empty(), category=category)


def test_domain_modules_import_no_io_library() -> None:
    forbidden = {"aiohttp", "sqlalchemy", "redis", "aiosqlite", "asyncpg", "aiofiles", "asyncio", "socket", "httpx"}
    package = REPO / "gateway" / "domain" / "content"
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & forbidden, module.name


def test_every_shipped_list_file_is_package_data() -> None:
    """The lists must reach an installed gateway, not only a checkout of the repository."""
    import fnmatch
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["gateway"]
    shipped = REPO / "gateway" / "blocklists"
    files = [path.relative_to(REPO / "gateway").as_posix() for path in shipped.rglob("*") if path.is_file()]
    assert any(name.endswith(".txt") for name in files)
    assert [name for name in files if not any(fnmatch.fnmatch(name, pattern) for pattern in patterns)] == []

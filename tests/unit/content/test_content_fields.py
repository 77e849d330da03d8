"""check_fields: a message's texts checked one by one, each violation naming its field."""

from __future__ import annotations

from gateway.domain.content import ContentRules, WordLists, check_fields

RULES = ContentRules()
WORDS = WordLists.build({"global": (["贷款"], "block")})


def test_each_violation_points_into_its_own_field() -> None:
    report = check_fields({"subject": "低息贷款", "text": "点击t.cn/x领取"}, channel="email", rules=RULES, words=WORDS)
    assert report is not None and not report.ok
    assert [(v.field, v.rule, v.start, v.end, v.match) for v in report.violations] == [
        ("subject", "blocked_word", 2, 4, "贷款"),
        ("text", "link_spacing", 2, 8, "t.cn/x"),
    ]
    assert report.fixed == {"subject": "低息贷款", "text": "点击 t.cn/x 领取"}
    assert report.fixed_text == "点击 t.cn/x 领取"


def test_a_word_split_across_title_and_body_is_not_one_word() -> None:
    report = check_fields({"title": "低息贷", "body": "款到账"}, channel="push", rules=RULES, words=WORDS)
    assert report is not None and report.ok and report.violations == ()


def test_only_when_every_field_is_empty_is_the_message_empty() -> None:
    report = check_fields({"title": "", "body": "  "}, channel="push", rules=RULES, words=WORDS)
    assert report is not None
    assert [(v.field, v.rule) for v in report.violations] == [("body", "empty")]
    assert check_fields({"payload": {}}, channel="webhook", rules=RULES, words=WORDS) is None

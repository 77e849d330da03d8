"""Opt-out and opt-in keywords in inbound replies."""

from __future__ import annotations

import pytest

from gateway.domain.optout import ReplyClassification, ReplyIntent, classify_reply, is_opt_out, parse_opt_out


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop! ",
        "STOP.",
        "ＳＴＯＰ",
        "S\u200bTOP",
        "s t o p",
        "stop all",
        "STOPALL",
        "Unsubscribe",
        "cancel",
        "END",
        "quit",
        "退订",
        "【退订】",
        "T",
        "t",
        "TD",
        "R",
        "N",
        "取消",
        "回T退订",
        "回复TD退订",
        "回复 T 退订",
        "请帮我退订",
        "退订，谢谢",
        "ｔｄ",
    ],
)
def test_opt_out_replies(text):
    assert classify_reply(text).intent is ReplyIntent.OPT_OUT
    assert is_opt_out(text)


@pytest.mark.parametrize(
    "text",
    [
        "don't stop",
        "I'll be there at 3, no need to cancel",
        "The end is near",
        "TT",
        "Tomorrow",
        "no",
        "",
        "   ",
        "stopwatch",
        "ok thanks",
        "取消了吗?",
    ],
)
def test_ordinary_replies_are_not_opt_outs(text):
    assert classify_reply(text).intent is ReplyIntent.NONE


@pytest.mark.parametrize("text", ["START", "unstop", " Start. ", "ＳＴＡＲＴ"])
def test_opt_in_replies(text):
    assert classify_reply(text).intent is ReplyIntent.OPT_IN


def test_the_matched_keyword_is_reported():
    assert classify_reply("回复TD退订").keyword == "td"
    assert classify_reply(" Stop! ").keyword == "stop"


def test_keywords_are_configurable():
    kw = parse_opt_out({"keywords": ["ARRET"], "extra_keywords": ["STOPP"], "opt_in": ["GO"]})
    assert is_opt_out("arrêt".replace("ê", "e"), kw)
    assert is_opt_out("Stopp", kw)
    assert not is_opt_out("STOP", kw)  # replaced, not added
    assert classify_reply("go", kw).intent is ReplyIntent.OPT_IN
    assert classify_reply("start", kw).intent is ReplyIntent.NONE


def test_contains_phrases_are_configurable_and_can_be_switched_off():
    assert is_opt_out("我要退订")
    assert not is_opt_out("我要退订", parse_opt_out({"contains": []}))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"keywords": "STOP"}, "limits.opt_out.keywords: expected a list of strings"),
        ({"keywords": ["STOP", "  "]}, "limits.opt_out.keywords[1]: '  ' is not a non-empty keyword"),
        ({"opt_in": ["STOP"]}, "limits.opt_out: 'stop' is both an opt-out and an opt-in keyword"),
        ({"keyword": ["STOP"]}, "limits.opt_out.keyword: unknown key"),
        (["STOP"], "limits.opt_out: expected a mapping, got list"),
    ],
)
def test_bad_keyword_config_names_the_key(config, message):
    with pytest.raises(ValueError) as err:
        parse_opt_out(config)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("不要再发了", "不要再发"),
        ("请不要再发了，谢谢", "不要再发"),
        ("不要 再 发了", "不要再发"),
        ("别发了", "别发了"),
        ("别再发了！！烦死了", "别再发"),
        ("以后不要发了", "不要发了"),
        ("请勿再发", "勿再发"),
        ("拒收", "拒收"),
        ("拒收。", "拒收"),
        ("拒收请回复R", "r"),
    ],
)
def test_everyday_chinese_refusals_are_opt_outs(text, keyword):
    assert classify_reply(text) == ReplyClassification(ReplyIntent.OPT_OUT, keyword)


@pytest.mark.parametrize("text", ["我没拒收快递", "快递被拒收了吗？", "发了吗", "别急，我明天到"])
def test_refusal_words_with_another_meaning_are_not_opt_outs(text):
    assert classify_reply(text).intent is ReplyIntent.NONE


def test_the_refusal_phrases_are_configurable():
    only_tuiding = parse_opt_out({"contains": ["退订"]})
    assert not is_opt_out("不要再发了", only_tuiding)
    assert is_opt_out("请退订", only_tuiding)
    assert is_opt_out("不要再推送了", parse_opt_out({"contains": ["退订", "不要再推送"]}))
    assert not is_opt_out("拒收", parse_opt_out({"keywords": ["STOP"]}))

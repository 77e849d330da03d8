"""Templates (gateway.domain.templates, template_lint): what a body may hold, typed params, rendering,
and the lint of each body under the declared examples and the variables at their max lengths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.content import ContentRules, WordLists, check_content, check_fields, china_marketing_rules
from gateway.domain.template_jobs import TemplatePin, content_for_channel, job_content
from gateway.domain.template_lint import blocking, lint
from gateway.domain.templates import (
    TemplateContent,
    Variable,
    body_problem,
    judge_params,
    render,
    template_problems,
)

VARIABLES = {
    "name": Variable("string", required=True, max_length=20, example="张三"),
    "url": Variable("url", required=True, example="https://shop.example.com/o/1"),
    "vip": Variable("boolean"),
    "count": Variable("integer", example=3),
    "total": Variable("number", example=9.5),
    "day": Variable("date", example="2026-01-31"),
}
SMS = "【小店】{{ name }}，您的订单已发货 {{ url }} 拒收请回复R"
WORDS = WordLists.build({"global": (["加微信"], "block")})


def _template(**channels: Any) -> TemplateContent:
    return TemplateContent(VARIABLES, channels or {"sms": {"text": SMS}})


DEFAULT_RULES = ContentRules()


def _check(rules: ContentRules = DEFAULT_RULES) -> Any:
    def check(channel: str, content: Mapping[str, Any]) -> list[tuple[str | None, Any]]:
        report = check_fields(content, channel=channel, rules=rules, words=WORDS)
        return [] if report is None else [(None, report)]

    return check


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ ''.__class__.__mro__ }}", "reads an attribute ({{ x.y }})"),
        ("{{ name['x'] }}", "reads an item ({{ x['y'] }})"),
        ("{{ name.upper() }}", "calls a function"),
        ("{{ lipsum() }}", "calls a function"),
        ("{% for i in range(99999999) %}x{% endfor %}", "has a loop ({% for %})"),
        ("{% set x = 1 %}", "assigns a variable ({% set %})"),
        ("{% include 'x' %}", "includes another template"),
        ("{% macro m() %}{% endmacro %}", "defines a macro"),
        ("{{ name ~ url }}", "uses {{ … }} or {% … %} beyond placeholders (Concat)"),
        ("{{ count * 1000000 }}", "uses {{ … }} or {% … %} beyond placeholders (Mul)"),
        ("{{ name|attr('x') }}", "uses the filter 'attr'"),
        ("{{ name|default(url) }}", 'takes one constant text in default("…")'),
        ("{% if name == 'a' %}x{% endif %}", "tests something other than a variable in {% if %}"),
        ("{{ nobody }}", "uses {{ nobody }}, which is not a declared variable (declared: name, url, vip"),
        ("{{ name", "is not a valid template: unexpected end of template"),
    ],
)
def test_a_body_beyond_placeholders_is_refused_with_the_reason(source: str, reason: str) -> None:
    problem = body_problem(source, VARIABLES)
    assert problem is not None and problem.replace("'end of template'", "end of template").startswith(reason)


@pytest.mark.parametrize(
    "source",
    [
        "{{ name }}您好",
        "{{name|upper}} {{ name | trim | lower }}",
        '{{ vip|default("朋友") }}',
        "{% if vip %}尊贵的{% elif not count %}亲爱的{% else %}{% endif %}{{ name }}",
        "{# a note #}{% raw %}{{ literal }}{% endraw %}",
    ],
)
def test_placeholders_conditions_and_the_short_filter_list_are_allowed(source: str) -> None:
    assert body_problem(source, VARIABLES) is None


def test_problems_name_the_json_pointer_of_each_body() -> None:
    content = TemplateContent(
        {"name": Variable("integer", max_length=3, example="x")},
        {"sms": {"text": "{{ name.x }}"}, "push": {"title": "t", "body": "b", "data": {"a/b": "{% for %}"}}},
        {"en": {"sms": {"text": "{{ other }}"}, "voice": {"text": "hi"}}},
    )
    fields = [field for field, _ in template_problems(content)]
    assert fields == [
        "/variables/name/max_length",
        "/variables/name/example",
        "/channels/sms/text",
        "/channels/push/data/a~1b",
        "/locales/en/sms/text",
    ]


def test_params_are_judged_by_their_declared_types() -> None:
    judged, problems = judge_params(
        VARIABLES,
        {"name": "x" * 21, "url": "ftp://x", "vip": "yes", "count": 1.5, "total": True, "day": "2026-02-30", "x": 1},
    )
    assert judged == {}
    assert problems == [
        ("x", "is not a declared variable of this template"),
        ("name", "must be at most 20 characters (got 21)"),
        ("url", "must be an http or https URL without white space"),
        ("vip", "must be true or false"),
        ("count", "must be an integer"),
        ("total", "must be a number"),
        ("day", "must be a date in the form YYYY-MM-DD"),
    ]
    assert judge_params(VARIABLES, {})[1] == [("name", "is required"), ("url", "is required")]


def test_rendering_fills_placeholders_escapes_only_html_and_leaves_absent_optionals_empty() -> None:
    content = TemplateContent(
        VARIABLES,
        {
            "sms": {"text": '{{ name }}{% if vip %}(VIP){% endif %} {{ count|default("0") }} {{ url }}'},
            "email": {"subject": "{{ name }}", "text": "{{ name }}", "html": "<p>{{ name }}</p>"},
            "voice": {"text": "您好{{ name }}", "language": "{{ name }}"},
            "webhook": {"json": {"who": "{{ name }}", "n": 1}},
        },
        {"en": {"sms": {"text": "Hi {{ name }}"}}},
    )
    params = {"name": "<b>&", "url": "https://x.example/1", "vip": True}
    rendered = render(content, params)
    assert rendered["sms"] == {"text": "<b>&(VIP) 0 https://x.example/1"}
    assert rendered["email"] == {"subject": "<b>&", "text": "<b>&", "html": "<p>&lt;b&gt;&amp;</p>"}
    assert rendered["voice"] == {"text": "您好<b>&", "language": "{{ name }}"}  # a voice's language is no copy
    assert rendered["webhook"] == {"payload": {"who": "<b>&", "n": 1}}
    assert render(content, params, "en")["sms"] == {"text": "Hi <b>&"}
    assert render(content, {**params, "vip": False, "count": 7})["sms"]["text"] == "<b>& 7 https://x.example/1"


def test_lint_finds_a_placeholder_glued_to_text_and_a_blocked_word_by_the_body_field() -> None:
    content = _template(sms={"text": "点击{{url}}领取"}, push={"title": "加微信", "body": "{{ name }}"})
    findings = lint(content, _check())
    assert [(f.severity, f.rule, f.field, f.sample) for f in findings] == [
        ("block", "blocked_word", "/channels/push/title", "examples"),
        ("block", "link_spacing", "/channels/sms/text", "examples"),
    ]


def test_lint_measures_segments_with_each_variable_at_its_max_length() -> None:
    variables = {"name": Variable("string", max_length=300, example="张三")}
    content = TemplateContent(variables, {"sms": {"text": "{{ name }}您好"}})
    findings = lint(content, _check(ContentRules(max_segments=2)))
    assert [(f.rule, f.field, f.sample) for f in blocking(findings)] == [
        ("too_long", "/channels/sms/text", "max_length")
    ]
    short = TemplateContent(
        {"name": Variable("string", max_length=20, example="张三")}, {"sms": {"text": "{{ name }}"}}
    )
    assert lint(short, _check(ContentRules(max_segments=2))) == []


def test_lint_applies_the_china_rules_it_is_given_and_names_locale_bodies() -> None:
    content = TemplateContent(VARIABLES, {"sms": {"text": SMS}}, {"en": {"sms": {"text": "{{ name }} shipped"}}})
    findings = lint(content, _check(china_marketing_rules()))
    assert [(f.rule, f.field) for f in findings] == [
        ("signature_missing", "/locales/en/sms/text"),
        ("unsubscribe_missing", "/locales/en/sms/text"),
    ]


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
_PARAMS = st.fixed_dictionaries(
    {"name": _TEXT.filter(bool), "url": st.from_regex(r"\Ahttps://[a-z]{1,10}\.example/[a-z0-9]{0,10}\Z")},
    optional={
        "vip": st.booleans(),
        "count": st.integers(),
        "total": st.floats(allow_nan=False) | st.integers(),
        "day": st.dates().map(lambda d: d.isoformat()),
    },
)


@settings(max_examples=200, deadline=None)
@given(_PARAMS)
def test_any_params_within_the_declared_types_render_and_check_as_plain_text_would(params: dict[str, Any]) -> None:
    content = _template(
        sms={"text": '{{ name|trim|upper }}{% if vip %} VIP{% endif %} {{ url }} {{ count|default("-") }} {{ day }}'},
        push={"title": "{{ name }}", "body": "{{ total }} {{ url }}"},
    )
    judged, problems = judge_params(VARIABLES, params)
    assert problems == []
    rendered = render(content, judged)
    text = rendered["sms"]["text"]
    plain = check_content(text, channel="sms", rules=china_marketing_rules(), words=WORDS)
    as_template = check_fields(rendered["sms"], channel="sms", rules=china_marketing_rules(), words=WORDS)
    assert as_template is not None and (as_template.ok, as_template.segments) == (plain.ok, plain.segments)
    assert [v.rule for v in as_template.violations] == [v.rule for v in plain.violations]


def test_a_job_stores_its_channel_body_the_pin_and_the_bodies_of_its_fallback_channels() -> None:
    content = TemplateContent(
        VARIABLES,
        {"sms": {"text": SMS}, "voice": {"text": "您好{{ name }}", "language": "zh-CN"}},
        providers={"aliyun": {"template_code": "SMS_123", "sign_name": "小店"}, "twilio": {"content_sid": "HX1"}},
    )
    pin = TemplatePin("order_shipped", 3, None, {"name": "张三", "url": "https://x.example/1", "count": 2})
    stored = job_content(content, pin, ["sms", "voice"], {"sms": ["aliyun", "sandbox"], "voice": ["sandbox"]})
    assert stored is not None
    texts = {"name": "张三", "url": "https://x.example/1", "vip": "", "count": "2", "total": "", "day": ""}
    assert stored == {
        "text": "【小店】张三，您的订单已发货 https://x.example/1 拒收请回复R",
        "template_params": texts,
        "provider_templates": {"aliyun": {"template_code": "SMS_123", "sign_name": "小店"}},
        "template": {"name": "order_shipped", "version": 3, "locale": None, "params": dict(pin.params)},
        "fallback_content": {"voice": {"text": "您好张三", "language": "zh-CN"}},
    }
    assert list(stored["template_params"]) == list(VARIABLES)  # declared order
    assert content_for_channel(stored, "voice") == {"text": "您好张三", "language": "zh-CN"}
    assert "template" not in content_for_channel(stored, "sms") and "fallback_content" not in content_for_channel(
        stored, "sms"
    )
    assert job_content(content, pin, ["push"], {}) is None
    # An attempt by the provider with ids gets them and its template code; by another, neither.
    by_aliyun = content_for_channel(stored, "sms", "aliyun")
    assert (by_aliyun["template_code"], by_aliyun["template_params"]) == ("SMS_123", texts)
    by_sandbox = content_for_channel(stored, "sms", "sandbox")
    assert by_sandbox == {"text": stored["text"]}


def test_lint_refuses_a_body_that_renders_over_its_field_limit_at_max_lengths() -> None:
    variables = {"name": Variable("string", max_length=300, example="Ann")}
    content = TemplateContent(variables, {"push": {"title": "Hi {{ name }}", "body": "b"}})
    findings = lint(content, _check(), {("push", "title"): 256})
    assert [(f.severity, f.rule, f.field, f.sample) for f in findings] == [
        ("block", "field_too_long", "/channels/push/title", "max_length")
    ]
    assert findings[0].message == "renders 303 characters; a push title takes at most 256"

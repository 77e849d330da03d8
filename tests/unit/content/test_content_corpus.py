"""The table-driven corpus (tests/data/content_cases.json) against check_content."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gateway.domain.content import ContentRules, SignatureRule, WordLists, check_content

CORPUS = json.loads((Path(__file__).resolve().parents[2] / "data" / "content_cases.json").read_text(encoding="utf-8"))


@cache
def corpus_words() -> WordLists:
    return WordLists.build({key: (spec["words"], spec["severity"]) for key, spec in CORPUS["lists"].items()})


def rules_for(name: str) -> ContentRules:
    spec: dict[str, Any] = dict(CORPUS["rulesets"][name])
    if "signature" in spec:
        spec["signature"] = SignatureRule(**spec["signature"])
    for key in ("unsubscribe_suffixes", "link_domain_allowlist"):
        if key in spec:
            spec[key] = tuple(spec[key])
    return ContentRules(**spec)


def test_corpus_is_large_and_covers_every_rule() -> None:
    cases = CORPUS["cases"]
    assert len(cases) >= 150
    rules_seen = {violation["rule"] for case in cases for violation in case["expect"]["violations"]}
    assert rules_seen == {
        "blocked_word", "link_spacing", "too_many_links", "link_domain", "too_long", "empty",
        "hard_max", "signature_missing", "signature_length", "unsubscribe_missing", "hidden_control",
        "link_fullwidth", "link_non_ascii",
    }  # fmt: skip


@pytest.mark.parametrize("case", CORPUS["cases"], ids=[case["id"] for case in CORPUS["cases"]])
def test_corpus_case(case: dict[str, Any]) -> None:
    report = check_content(
        case["text"],
        channel=case["channel"],
        rules=rules_for(case["ruleset"]),
        words=corpus_words(),
        carrier=case.get("carrier"),
        tenant=case.get("tenant"),
        category=case.get("category", "marketing"),
    )
    expect = case["expect"]
    actual = [
        {"rule": v.rule, "severity": v.severity, "start": v.start, "end": v.end, "match": v.match}
        for v in report.violations
    ]
    assert actual == expect["violations"]
    assert report.ok is expect["ok"]
    assert report.fixed_text == expect.get("fixed_text", case["text"])
    if "encoding" in expect:
        assert report.encoding == expect["encoding"]
    if "segments" in expect:
        assert report.segments == expect["segments"]
    for violation in report.violations:
        assert case["text"][violation.start : violation.end] == violation.match
        # An operator reading the message must see which link or signature is meant.
        if violation.rule in (
            "link_spacing", "link_domain", "too_many_links", "signature_length", "link_fullwidth", "link_non_ascii"
        ):  # fmt: skip
            assert violation.match in violation.message

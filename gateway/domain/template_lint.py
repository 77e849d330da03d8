"""A template's lint at save and publish: every channel body rendered with the declared examples and
again with each text variable at its max_length, and each rendering run through the content policy
(blocked words, link spacing — a placeholder glued to text such as `点击{{url}}领取` renders a glued
link —, SMS segments, the route's China rules). Pure: the caller hands in the check."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.domain.content import ContentReport
from gateway.domain.templates import LENGTH_TYPES, TemplateContent, Variable, pointer_token, render

# A check of one channel's rendered content: the reports per route whose rules applied (route None:
# the default rules).
Check = Callable[[str, Mapping[str, Any]], Sequence[tuple[str | None, ContentReport]]]

# What a variable declared without an example is linted with.
TYPE_EXAMPLES: dict[str, Any] = {
    "string": "示例",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "url": "https://example.com/x",
    "date": "2026-01-31",
}


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # block or warn
    rule: str
    field: str  # JSON pointer of the template body: /channels/sms/text, /locales/en/sms/text
    message: str
    sample: str  # examples or max_length: the params the body was rendered with
    route: str | None = None  # the provider whose route rules found it; None: the default rules

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "rule": self.rule,
            "field": self.field,
            "message": self.message,
            "sample": self.sample,
            "route": self.route,
        }


def example_params(variables: Mapping[str, Variable]) -> dict[str, Any]:
    return {
        name: var.example if var.example is not None else TYPE_EXAMPLES[var.type] for name, var in variables.items()
    }


def _at_max_length(variable: Variable, example: Any) -> Any:
    """The variable at its longest, written like its example (so an SMS is measured in the example's
    alphabet: a Chinese name makes a UCS-2 message)."""
    limit = variable.max_length
    if limit is None or variable.type not in LENGTH_TYPES:
        return example
    text = str(example) or "x"
    if variable.type == "url":
        return (text + "0" * limit)[:limit] if len(text) < limit else text
    return (text * (limit // len(text) + 1))[:limit]


def samples(variables: Mapping[str, Variable]) -> list[tuple[str, dict[str, Any]]]:
    examples = example_params(variables)
    longest = {name: _at_max_length(var, examples[name]) for name, var in variables.items()}
    found = [("examples", examples)]
    if longest != examples:
        found.append(("max_length", longest))
    return found


RULE_FIELD_TOO_LONG = "field_too_long"


def lint(content: TemplateContent, check: Check, limits: Mapping[tuple[str, str], int] | None = None) -> list[Finding]:
    """Every finding of every channel body (base and locale variants) under each sample, once per
    body field, rule and route (the examples' finding first). `limits`: the most characters a job's
    content field takes, by (channel, field): a rendering over it could never be sent."""
    findings: dict[tuple[str, str, str | None], Finding] = {}
    for locale in (None, *content.locales):
        overrides = content.locales.get(locale, {}) if locale is not None else {}
        for label, params in samples(content.variables):
            for channel, body in render(content, params, locale).items():
                if locale is not None and channel not in overrides:
                    continue  # the base body, linted already
                for name, limit in (limits or {}).items():
                    text = body.get(name[1]) if name[0] == channel else None
                    if isinstance(text, str) and len(text) > limit:
                        field = _field(content, locale, channel, name[1])
                        message = f"renders {len(text)} characters; a {channel} {name[1]} takes at most {limit}"
                        findings.setdefault(
                            (field, RULE_FIELD_TOO_LONG, None),
                            Finding("block", RULE_FIELD_TOO_LONG, field, message, label),
                        )
                for route, report in check(channel, body):
                    for violation in report.violations:
                        field = _field(content, locale, channel, violation.field or "text")
                        key = (field, violation.rule, route)
                        findings.setdefault(
                            key, Finding(violation.severity, violation.rule, field, violation.message, label, route)
                        )
    return sorted(findings.values(), key=lambda f: (f.severity != "block", f.field, f.rule))


def _field(content: TemplateContent, locale: str | None, channel: str, name: str) -> str:
    if locale is not None and name in content.locales[locale].get(channel, {}):
        return f"/locales{pointer_token(locale)}/{channel}/{name}"
    return f"/channels/{channel}/{name}"


def blocking(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "block"]

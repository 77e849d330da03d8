"""A message is checked field by field: an e-mail's subject and body, a push's title and body are
separate texts on the handset, so a violation names the field it is in (its span points into that
field) and each field gets its own fixed text."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from gateway.domain.content.policy import ContentReport, ContentRules, check_content
from gateway.domain.content.words import WordLists

# The fields of `content` a recipient reads, per channel; the first one named in MAIN_FIELD is the
# one a single-text check (fixed_text, encoding, segments) speaks of.
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "sms": ("text",),
    "voice": ("text",),
    "push": ("title", "body"),
    "email": ("subject", "text"),
    "webhook": (),
}
MAIN_FIELD = {"sms": "text", "voice": "text", "push": "body", "email": "text"}


def check_fields(
    content: Mapping[str, object],
    *,
    channel: str,
    rules: ContentRules,
    words: WordLists,
    carrier: str | None = None,
    category: str = "marketing",
    tenant: str | None = None,
) -> ContentReport | None:
    """Each text field of the channel checked on its own; None for a channel without text."""
    main = MAIN_FIELD.get(channel)
    if main is None:
        return None
    texts = {name: value for name in TEXT_FIELDS[channel] if isinstance(value := content.get(name), str)}
    # An optional field left empty is not a message; only when every field is empty is that reported.
    to_check = {name: text for name, text in texts.items() if text.strip()} or {main: texts.get(main, "")}
    reports = {
        name: check_content(
            text, channel=channel, rules=rules, words=words, carrier=carrier, category=category, tenant=tenant
        )
        for name, text in to_check.items()
    }
    first = reports.get(main) or next(iter(reports.values()))
    fixed = {**texts, **{name: report.fixed_text for name, report in reports.items()}}
    return ContentReport(
        ok=all(report.ok for report in reports.values()),
        encoding=first.encoding,
        segments=first.segments,
        violations=tuple(
            dataclasses.replace(violation, field=name)
            for name, report in reports.items()
            for violation in report.violations
        ),
        fixed_text=fixed.get(main, first.fixed_text),
        fixed=fixed,
    )

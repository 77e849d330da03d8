"""What changed between two versions of a template, per channel body (the console's version diff).

Each body (base and locale variants) is laid out as lines `field: text` (a multi-line field over
several lines, a webhook JSON indented), and the two layouts are compared line by line."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BodyDiff:
    section: str  # "sms", "en/sms", "variables"
    lines: tuple[tuple[str, str], ...]  # (" " | "-" | "+", text): the whole body, each line marked

    @property
    def changed(self) -> bool:
        return any(mark in "-+" for mark, _ in self.lines)


def sections(content: Mapping[str, Any]) -> dict[str, list[str]]:
    """A template's content as the lines each section reads: its variables, then each channel body."""
    laid_out: dict[str, list[str]] = {}
    variables = content.get("variables") or {}
    if variables:
        laid_out["variables"] = [f"{name}: {json.dumps(spec, ensure_ascii=False)}" for name, spec in variables.items()]
    for channel, body in (content.get("channels") or {}).items():
        laid_out[channel] = _body_lines(body)
    for locale, channels in (content.get("locales") or {}).items():
        for channel, body in channels.items():
            laid_out[f"{locale}/{channel}"] = _body_lines(body)
    return laid_out


def _body_lines(body: Mapping[str, Any]) -> list[str]:
    lines = []
    for field, value in body.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
        first, *rest = text.split("\n")
        lines.append(f"{field}: {first}")
        lines += [f"  {line}" for line in rest]
    return lines


def diff_contents(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[BodyDiff]:
    """Every section of either content, in the newer's order then the older's own, each with its diff."""
    before, after = sections(old), sections(new)
    names = list(after) + [name for name in before if name not in after]
    return [BodyDiff(name, _unified(before.get(name, []), after.get(name, []))) for name in names]


def _unified(before: list[str], after: list[str]) -> tuple[tuple[str, str], ...]:
    if before == after:
        return tuple((" ", line) for line in after)
    # Bodies are a few lines: the whole of each is shown, as one hunk, without its header.
    whole = difflib.unified_diff(before, after, lineterm="", n=len(before) + len(after))
    return tuple((line[0], line[1:]) for line in whole if not line.startswith(("---", "+++", "@@")))

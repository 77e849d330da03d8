"""Invisible control characters that change what a recipient sees without being seen themselves.

Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069; the "Trojan
Source" set, CVE-2021-42574) reorder the text around them: "点击 https://a.cn/\u202eexe.gpj" shows
the link's end reversed, so a link reads as another one. C0 and C1 control characters (other than
tab, line feed, form feed and carriage return) have no glyph; some handsets drop them, others show
a box, and they split words so a filter reading the raw text misses them. The left-to-right and
right-to-left marks (U+200E, U+200F, U+061C) are left alone: Arabic and Hebrew text needs them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

_HIDDEN_CONTROLS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]+")


class ControlRun(NamedTuple):
    start: int
    end: int


def find_hidden_controls(text: str) -> list[ControlRun]:
    """Runs of consecutive hidden control characters, as spans into the text."""
    return [ControlRun(found.start(), found.end()) for found in _HIDDEN_CONTROLS.finditer(text)]


def remove_hidden_controls(text: str) -> str:
    return _HIDDEN_CONTROLS.sub("", text)


def describe(chars: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE' for each distinct character, in order of appearance."""
    seen = dict.fromkeys(chars)
    return ", ".join(f"U+{ord(char):04X} {_name(char)}" for char in seen)


def _name(char: str) -> str:
    # Control characters have no Unicode name; their block is the best description then.
    return unicodedata.name(char, "C0 CONTROL" if char < "\x80" else "C1 CONTROL")

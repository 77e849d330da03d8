"""The normal form blocked words are matched in, robust to the usual filter-evasion tricks.

A character folds to its NFKC + case-folded form, keeping only letters and digits. Everything else
(spaces, punctuation, symbols, zero-width and other format characters, combining marks) folds to
nothing, so "加 微 信", "加\u200b微信", "V-X" and "ｖｘ" all fold to the same text as "加微信" / "vx".
Folding works character by character so that every folded character can be traced back to the
original character it came from; a violation's span must point into the text the operator wrote.
"""

from __future__ import annotations

import unicodedata


def fold_char(char: str) -> str:
    # casefold can produce characters that NFKC changes again (and NFKC can produce upper case),
    # so apply NFKC on both sides to reach a fixed point.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", char).casefold())
    return "".join(part for part in folded if unicodedata.category(part)[0] in "LN")


class _FoldTable(dict[int, str | None]):
    """A str.translate table filled on first sight of each code point.

    Precomputing all 1.1 million code points would cost about a second at import; texts use a few
    thousand. Concurrent fills from several threads are harmless: they store the same value.
    """

    def __missing__(self, code_point: int) -> str | None:
        folded = fold_char(chr(code_point)) or None  # None makes str.translate delete the character
        self[code_point] = folded
        return folded


_FOLD_TABLE = _FoldTable()
for _code_point in range(128):
    _FOLD_TABLE[_code_point]


def fold(text: str) -> str:
    return text.translate(_FOLD_TABLE)


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each folded character, the index of the original character it came from."""
    folded_parts: list[str] = []
    offsets: list[int] = []
    table = _FOLD_TABLE
    for index, char in enumerate(text):
        folded = table[ord(char)]
        if folded:
            folded_parts.append(folded)
            offsets.extend([index] * len(folded))
    return "".join(folded_parts), offsets

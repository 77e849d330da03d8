"""China SMS rules: the 【signature】 that opens every message and the unsubscribe suffix of marketing.

Chinese carriers and SMS providers reject or silently drop messages without a registered
signature in 【】 at the start, and marketing messages without the opt-out instruction the provider
registered ("拒收请回复R", "回T退订", ...). Both vary by provider and route, hence configuration.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from gateway.domain.content.folding import fold

SIGNATURE_OPEN = "【"
SIGNATURE_CLOSE = "】"
COMMON_UNSUBSCRIBE_SUFFIXES = ("拒收请回复R", "回T退订")


@dataclass(frozen=True, slots=True)
class SignatureRule:
    min_chars: int = 2
    max_chars: int = 12
    categories: tuple[str, ...] = ("marketing", "transactional")

    def __post_init__(self) -> None:
        if not 1 <= self.min_chars <= self.max_chars:
            raise ValueError("signature bounds need 1 <= min_chars <= max_chars")


def signature_end(text: str) -> int:
    """The index just past the closing 】 of the signature that opens text, 0 when there is none."""
    if not text.startswith(SIGNATURE_OPEN):
        return 0
    return text.find(SIGNATURE_CLOSE, 1) + 1


def ends_with_unsubscribe(text: str, suffixes: tuple[str, ...]) -> bool:
    if text.endswith(suffixes):
        return True
    # Full-width "Ｒ" or lower-case "回t退订" reach the handset as the same instruction, so compare
    # folded forms; folding also ignores trailing spaces and punctuation such as "回T退订。".
    folded_tail = fold(text[-_LONGEST_TAIL_CHECKED:])
    return folded_tail.endswith(_folded_suffixes(suffixes))


_LONGEST_TAIL_CHECKED = 64


@functools.lru_cache(maxsize=64)
def _folded_suffixes(suffixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(folded for folded in map(fold, suffixes) if folded)

"""China SMS rules: the 【signature】 that opens every message and the unsubscribe suffix of marketing.

Chinese carriers and SMS providers reject or silently drop messages without a registered
signature in 【】 at the start, and marketing messages without the opt-out instruction the provider
registered ("拒收请回复R", "回T退订", ...). Both vary by provider and route, hence configuration.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class SignatureFinding:
    start: int
    end: int  # past the closing bracket; equal to start when no signature was found
    name: str


def find_signature(text: str) -> SignatureFinding | None:
    if not text.startswith(SIGNATURE_OPEN):
        return None
    close = text.find(SIGNATURE_CLOSE, 1)
    if close < 0:
        return None
    return SignatureFinding(0, close + 1, text[1:close])


def ends_with_unsubscribe(text: str, suffixes: tuple[str, ...]) -> bool:
    # Full-width "Ｒ" or lower-case "回t退订" reach the handset as the same instruction, so compare
    # folded forms; folding also ignores trailing spaces and punctuation such as "回T退订。".
    folded_text = fold(text[-64:])
    return any(folded_text.endswith(fold(suffix)) for suffix in suffixes)

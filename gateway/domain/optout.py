"""Opt-out and opt-in keywords in inbound replies.

A reply is an opt-out when the whole message, once normalised, is a keyword ("STOP", " stop! ",
"ＳＴＯＰ", "退订", "拒收", "T"), or echoes a Chinese footer such as "回T退订" / "回复TD退订" /
"拒收请回复R", or contains a phrase that cannot mean anything else in a reply ("退订", and the
everyday refusals "不要再发了", "别发了"). Whole-message matching is what carriers do for
the English keywords: "don't stop" or "I'll be there at 3, no need to cancel" must not opt
anybody out, and single letters (T, R, N) only make sense alone.

When in doubt between opt-out and opt-in ("STOP START"), nothing is decided: the message is
neither, and a human can read it in the inbound log.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_OPT_OUT = (
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "REVOKE",
    "退订",
    "T",
    "TD",
    "R",
    "N",
    "取消",
    "退订全部",
    "取消订阅",
    # "Refuse to receive": the word of the common footer "拒收请回复R". Only as the whole reply,
    # because inside a sentence it is as often about a parcel ("我没拒收快递").
    "拒收",
)
DEFAULT_OPT_IN = ("START", "UNSTOP", "SUBSCRIBE")
# Substrings that are an opt-out wherever they appear: in Chinese replies the request usually
# comes wrapped ("请帮我退订", "退订谢谢", "别再发了！烦"), and these have no innocent reading in a
# reply to a message: people who want no more messages write "don't send again" far more often
# than the keyword. Matched on the normalised text without spaces ("不要 再发了" too).
DEFAULT_CONTAINS = ("退订", "不要再发", "不要发了", "别再发", "别发了", "勿再发")

# "回T退订", "回复TD退订", "回复 T 退订", "退订回T", "拒收请回复R" - the user pasted the footer back.
_ECHO_RE = re.compile(
    r"^(?:回复?|reply)(?P<kw>[a-z0-9]{1,8})退订$|^退订回复?(?P<kw2>[a-z0-9]{1,8})$|^拒收请?回复?(?P<kw3>[a-z0-9]{1,8})$"
)


class ReplyIntent(enum.StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ReplyClassification:
    intent: ReplyIntent
    keyword: str | None = None  # the configured keyword (normalised) that matched


def normalise(text: str) -> str:
    """NFKC (full-width letters, compatibility forms), casefold, drop zero-width and other format
    characters, trim surrounding white space, punctuation and symbols, collapse inner spaces."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = "".join(ch for ch in t if unicodedata.category(ch) != "Cf")
    t = " ".join(t.split())
    start, end = 0, len(t)
    while start < end and _is_trim(t[start]):
        start += 1
    while end > start and _is_trim(t[end - 1]):
        end -= 1
    return t[start:end]


def _is_trim(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "PSZ"


@dataclass(frozen=True)
class OptOutKeywords:
    opt_out: frozenset[str]
    opt_in: frozenset[str]
    contains: tuple[str, ...]

    @classmethod
    def of(
        cls,
        opt_out: Iterable[str] = DEFAULT_OPT_OUT,
        opt_in: Iterable[str] = DEFAULT_OPT_IN,
        contains: Iterable[str] = DEFAULT_CONTAINS,
    ) -> OptOutKeywords:
        return cls(
            frozenset(normalise(k) for k in opt_out if normalise(k)),
            frozenset(normalise(k) for k in opt_in if normalise(k)),
            tuple(normalise(k) for k in contains if normalise(k)),
        )

    def classify(self, text: str) -> ReplyClassification:
        t = normalise(text)
        if not t:
            return ReplyClassification(ReplyIntent.NONE)
        # "S T O P" and "stop all" count as their spaceless forms.
        forms = (t, t.replace(" ", ""))
        for form in forms:
            if form in self.opt_out:
                return ReplyClassification(ReplyIntent.OPT_OUT, form)
            if form in self.opt_in:
                return ReplyClassification(ReplyIntent.OPT_IN, form)
        m = _ECHO_RE.match(forms[1])
        if m is not None:
            kw = m.group("kw") or m.group("kw2") or m.group("kw3")
            return ReplyClassification(ReplyIntent.OPT_OUT, kw if kw in self.opt_out else "退订")
        hits_in = [k for k in self.opt_in if _has_word(forms[0], k)]
        for phrase in self.contains:
            if phrase in forms[1] and not hits_in:
                return ReplyClassification(ReplyIntent.OPT_OUT, phrase)
        return ReplyClassification(ReplyIntent.NONE)


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


DEFAULT_KEYWORDS = OptOutKeywords.of()


def classify_reply(text: str, keywords: OptOutKeywords = DEFAULT_KEYWORDS) -> ReplyClassification:
    return keywords.classify(text)


def is_opt_out(text: str, keywords: OptOutKeywords = DEFAULT_KEYWORDS) -> bool:
    return keywords.classify(text).intent is ReplyIntent.OPT_OUT


def parse_opt_out(value: Any, key: str = "limits.opt_out") -> OptOutKeywords:
    """`{"keywords": [...], "opt_in": [...], "contains": [...]}`; each list replaces its default,
    `extra_keywords` adds to the default opt-out list."""
    if value is None:
        return DEFAULT_KEYWORDS
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a mapping, got {type(value).__name__}")
    known = {"keywords", "extra_keywords", "opt_in", "contains"}
    for k in value:
        if k not in known:
            raise ValueError(f"{key}.{k}: unknown key (known: {', '.join(sorted(known))})")

    def words(name: str, default: Iterable[str]) -> list[str]:
        v = value.get(name, list(default))
        if isinstance(v, str) or not isinstance(v, list | tuple):
            raise ValueError(f"{key}.{name}: expected a list of strings")
        for i, w in enumerate(v):
            if not isinstance(w, str) or not normalise(w):
                raise ValueError(f"{key}.{name}[{i}]: {w!r} is not a non-empty keyword")
        return list(v)

    opt_out = words("keywords", DEFAULT_OPT_OUT) + words("extra_keywords", ())
    opt_in = words("opt_in", DEFAULT_OPT_IN)
    clash = {normalise(w) for w in opt_out} & {normalise(w) for w in opt_in}
    if clash:
        raise ValueError(f"{key}: {sorted(clash)[0]!r} is both an opt-out and an opt-in keyword")
    return OptOutKeywords.of(opt_out, opt_in, words("contains", DEFAULT_CONTAINS))


class SuppressionScope(enum.StrEnum):
    """Which categories a suppression stops: an operator's or a complaint's all of them; a reply's
    opt-out only marketing (a verification code or a receipt still reaches the person)."""

    ALL = "all"
    MARKETING = "marketing"


def suppression_covers(scope: str, category: str) -> bool:
    return scope == SuppressionScope.ALL or scope == category


def answered_by(
    answered_tenant: str | None, same_pool_tenants: Iterable[str], configured_tenants: Iterable[str]
) -> tuple[list[str], str]:
    """The tenants a reply speaks to, and how that was decided: the tenant whose message it answered
    (with the tenants that reached the person from the same sender pool, when that tenant's scope
    says so), else the tenants that configured the number it was sent to."""
    if answered_tenant is not None:
        others = [t for t in dict.fromkeys(same_pool_tenants) if t != answered_tenant]
        return [answered_tenant, *others], "pool" if others else "message"
    configured = list(dict.fromkeys(configured_tenants))
    return configured, "inbound_number" if configured else "unmatched"

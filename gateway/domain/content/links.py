"""Finding links in message text the way handset linkifiers see them, and checking their spacing.

Many handsets only turn a URL into a tappable link when white space (or the start/end of the text)
surrounds it; a link glued to CJK text or to punctuation, half- or full-width, is shown as plain
text or opened with the neighbouring characters attached.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Bare domains are recognised only under these top-level domains; without such a list "e.g." or
# "v1.2" or "readme.txt" would count as links.
COMMON_TLDS = (
    "com", "net", "org", "cn", "io", "co", "me", "cc", "tv", "info", "biz", "top", "xyz", "vip", "shop",
    "club", "site", "online", "app", "ly", "gl", "ai", "hk", "tw", "mo", "uk", "us", "de", "jp", "kr",
    "ru", "in", "sg", "ink", "wang", "link", "fun", "store", "tech", "so", "la", "to", "gd", "im",
    "mobi", "pro", "asia", "live", "news", "red", "work", "edu", "gov", "ltd", "group", "plus", "mp",
)  # fmt: skip

_URL_CHAR = r"[A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TAIL = rf"(?::\d{{1,5}})?(?:[/?#]{_URL_CHAR}*)?"
_TLD = "(?i:" + "|".join(sorted(COMMON_TLDS, key=len, reverse=True)) + ")"
# www. and bare domains must start a run of URL characters: "me@x.cn" is an address, not a link,
# and "-x.cn" is not where a linkifier would start. Checked after the first character is consumed
# (hence the two-character window), see below.
_STARTS_RUN = r"(?<![A-Za-z0-9.\-@].)"
# Every link starts with an ASCII letter or digit, and the pattern consumes that character first
# (the alternatives then look back at it): a pattern that opens with a plain character class lets
# the regex engine skip CJK text in C instead of trying three alternatives at each position, which
# made link finding about three times faster. Case-insensitivity is scoped for the same reason.
LINK_PATTERN = re.compile(
    r"[A-Za-z0-9](?:"
    rf"(?<=[Hh])(?i:ttps?://){_URL_CHAR}+"
    rf"|{_STARTS_RUN}(?<=[Ww])(?i:ww)\.(?:{_LABEL}\.)*{_LABEL}{_TAIL}"
    rf"|{_STARTS_RUN}(?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.(?:{_LABEL}\.)*{_TLD}(?![A-Za-z0-9\-]){_TAIL}"
    r")"
)
_SCHEME_AND_HOST = re.compile(r"(?:https?://)?([^/?#:]+)", re.IGNORECASE)
# Linkifiers leave sentence punctuation after a URL out of the link, as people write "see x.cn."
_TRAILING_PUNCTUATION = ".,;:!?'*"


class Link(NamedTuple):  # tuples, not dataclasses: made for every link of every message
    start: int
    end: int
    url: str

    @property
    def host(self) -> str:
        found = _SCHEME_AND_HOST.match(self.url)
        return found.group(1).lower() if found else ""


# Every link form holds "://" or an ASCII dot followed by a letter or digit (a domain label), so
# texts without one (dots that end sentences) skip the link pattern, which tries at every letter.
_MAY_HOLD_LINK = re.compile(r"\.[A-Za-z0-9]|://")


def find_links(text: str) -> list[Link]:
    if _MAY_HOLD_LINK.search(text) is None:
        return []
    links = []
    for found in LINK_PATTERN.finditer(text):
        url = _trim_trailing_punctuation(found.group())
        if url:
            links.append(Link(found.start(), found.start() + len(url), url))
    return links


def _trim_trailing_punctuation(url: str) -> str:
    while url:
        last = url[-1]
        if last in _TRAILING_PUNCTUATION or (last == ")" and url.count("(") < url.count(")")):
            url = url[:-1]
        else:
            break
    if url.lower() in ("http://", "https://") or url.endswith("://"):
        return ""
    return url


class GluedLink(NamedTuple):
    link: Link
    before: str  # the character glued before the link, "" when the start is clean
    after: str


def glued_links(text: str, links: list[Link]) -> list[GluedLink]:
    glued = []
    for link in links:
        before = text[link.start - 1] if link.start > 0 and not text[link.start - 1].isspace() else ""
        after = text[link.end] if link.end < len(text) and not text[link.end].isspace() else ""
        if before or after:
            glued.append(GluedLink(link, before, after))
    return glued


def insert_link_spacing(text: str, glued: list[GluedLink]) -> str:
    """The text with a space added on each glued side of each link and nothing else changed.

    A space can make a link appear that was not one before ("/xa.cnhttps://w.cn": once the second
    link is moved away, "xa.cn" ends cleanly and becomes a link glued to "/"), so repeat until no
    link is glued. It ends: every round fills at least one of the finitely many gaps between
    characters with a space, and a gap next to a space is never glued.
    """
    while glued:
        text = _insert_spaces(text, glued)
        glued = glued_links(text, find_links(text))
    return text


def _insert_spaces(text: str, glued: list[GluedLink]) -> str:
    pieces = []
    position = 0
    for item in glued:
        pieces.append(text[position : item.link.start])
        if item.before:
            pieces.append(" ")
        pieces.append(item.link.url)
        if item.after:
            pieces.append(" ")
        position = item.link.end
    pieces.append(text[position:])
    return "".join(pieces)


def host_allowed(host: str, allowlist: tuple[str, ...]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in allowlist)

"""Finding links in message text the way handset linkifiers see them, and checking their spacing.

Many handsets only turn a URL into a tappable link when white space (or the start/end of the text)
surrounds it; a link glued to CJK text or to punctuation, half- or full-width, is shown as plain
text or opened with the neighbouring characters attached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Bare domains are recognised only under these top-level domains; without such a list "e.g." or
# "v1.2" or "readme.txt" would count as links.
COMMON_TLDS = (
    "com", "net", "org", "cn", "io", "co", "me", "cc", "tv", "info", "biz", "top", "xyz", "vip", "shop",
    "club", "site", "online", "app", "ly", "gl", "ai", "hk", "tw", "mo", "uk", "us", "de", "jp", "kr",
    "ru", "in", "sg", "ink", "wang", "link", "fun", "store", "tech", "so", "la", "to", "gd", "im",
    "mobi", "pro", "asia", "live", "news", "red", "work", "edu", "gov", "ltd", "group", "plus", "mp",
)  # fmt: skip

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TAIL = r"(?::\d{1,5})?(?:[/?#][A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]*)?"
_TLD = "(?:" + "|".join(sorted(COMMON_TLDS, key=len, reverse=True)) + ")"
LINK_PATTERN = re.compile(
    r"(?:https?://[A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]+"
    # www. and bare domains must start a run of URL characters: "me@x.cn" is an address, not a
    # link, and "-x.cn" is not where a linkifier would start.
    rf"|(?<![A-Za-z0-9.\-@])www\.(?:{_LABEL}\.)*{_LABEL}{_TAIL}"
    rf"|(?<![A-Za-z0-9.\-@])(?:{_LABEL}\.)+{_TLD}(?![A-Za-z0-9\-]){_TAIL})",
    re.IGNORECASE,
)
_SCHEME_AND_HOST = re.compile(r"(?:https?://)?([^/?#:]+)", re.IGNORECASE)
# Linkifiers leave sentence punctuation after a URL out of the link, as people write "see x.cn."
_TRAILING_PUNCTUATION = ".,;:!?'*"


@dataclass(frozen=True, slots=True)
class Link:
    start: int
    end: int
    url: str

    @property
    def host(self) -> str:
        found = _SCHEME_AND_HOST.match(self.url)
        return found.group(1).lower() if found else ""


def find_links(text: str) -> list[Link]:
    # Every link form carries an ASCII dot or "://", so most texts skip the regex entirely.
    if "." not in text and "://" not in text:
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


@dataclass(frozen=True, slots=True)
class GluedLink:
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
    """The text with one space added on each glued side of each link and nothing else changed."""
    if not glued:
        return text
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

"""Finding links in message text the way handset linkifiers see them, and checking their spacing.

Many handsets only turn a URL into a tappable link when white space (or the start/end of the text)
surrounds it; a link glued to CJK text or to punctuation, half- or full-width, is shown as plain
text or opened with the neighbouring characters attached. What the linkifiers do, and so what this
module assumes, is set out with its sources in docs/content.md ("How handsets find links"):

- only ASCII white space ends a link for certain: older Android releases took U+3000 and the other
  Unicode spaces into a link's path, so a link next to one of them counts as glued, and the fix
  turns that space into an ASCII one;
- a path segment that starts with a non-ASCII letter ("/路径/中文") is part of the link up to the
  next white space or punctuation, as Android's and iOS's linkifiers read it (IRI paths);
- a scheme written in full-width forms ("ｈｔｔｐｓ：／／") is no scheme to any linkifier: the link
  is reported from that scheme on, and the fix writes the scheme in ASCII.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple
from urllib.parse import quote

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
# http:// or https:// with at least one character in a full-width (or other compatibility) form.
_ANY_WIDTH_SCHEME = re.compile("[hHｈＨ][tTｔＴ][tTｔＴ][pPｐＰ][sSｓＳ]?[:：][/／][/／]")
_URL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#@!$&'()*+,;=%")
# Where an IRI path segment or query value may begin with a non-ASCII letter.
_IRI_SEGMENT_OPENERS = "/=?#"
ASCII_WHITE_SPACE = " \t\n\r\f\v"


class Link(NamedTuple):  # tuples, not dataclasses: made for every link of every message
    start: int
    end: int
    url: str  # as written: text[start:end]

    @property
    def href(self) -> str:
        """What a handset opens: the scheme in ASCII, non-ASCII characters percent-encoded (RFC 3987)."""
        url = self.url
        scheme = _ANY_WIDTH_SCHEME.match(url)
        if scheme is not None:
            url = unicodedata.normalize("NFKC", scheme.group()).lower() + url[scheme.end() :]
        return url if url.isascii() else quote(url, safe="".join(_URL_CHARS))

    @property
    def host(self) -> str:
        found = _SCHEME_AND_HOST.match(self.href)
        return found.group(1).lower() if found else ""

    @property
    def has_wide_scheme(self) -> bool:
        scheme = _ANY_WIDTH_SCHEME.match(self.url)
        return scheme is not None and not scheme.group().isascii()

    @property
    def has_non_ascii_path(self) -> bool:
        return not self.url[_scheme_length(self.url) :].isascii()


def _scheme_length(url: str) -> int:
    scheme = _ANY_WIDTH_SCHEME.match(url)
    return scheme.end() if scheme else 0


# Every link form holds "://" or an ASCII dot followed by a letter or digit (a domain label), so
# texts without one (dots that end sentences) skip the link pattern, which tries at every letter.
_MAY_HOLD_LINK = re.compile(r"\.[A-Za-z0-9]|://")


def find_links(text: str) -> list[Link]:
    if _MAY_HOLD_LINK.search(text) is None:
        return []
    links: list[Link] = []
    for found in LINK_PATTERN.finditer(text):
        start = found.start()
        if links and start < links[-1].end:  # inside an IRI path taken into the previous link
            continue
        end = start + len(_trim_trailing_punctuation(found.group()))
        if end == start:
            continue
        end = _iri_path_end(text, start, end)
        start = _wide_scheme_start(text, start)
        if end > start:  # an empty one would be glued to its neighbours however many spaces went in
            links.append(Link(start, end, text[start:end]))
    return links


def _iri_path_end(text: str, start: int, end: int) -> int:
    """Where a link ends once a path segment or query value that opens with a non-ASCII letter
    ("/路径", "?q=中文") is taken in, as linkifiers do, up to white space or punctuation."""
    if end >= len(text) or text[end - 1] not in _IRI_SEGMENT_OPENERS or not _is_iri_letter(text[end]):
        return end
    extended = end
    while extended < len(text) and (text[extended] in _URL_CHARS or _is_iri_letter(text[extended])):
        extended += 1
    return start + len(_trim_trailing_punctuation(text[start:extended])) or end


def _is_iri_letter(char: str) -> bool:
    return not char.isascii() and unicodedata.category(char)[0] in "LNM"


def _wide_scheme_start(text: str, start: int) -> int:
    """The start of a full-width scheme ("ｈｔｔｐｓ：／／") written right before a link found without
    one, else start unchanged."""
    if start < 7 or text[start - 1] not in "/／":
        return start
    for length in (8, 7):  # "https://", "http://"
        scheme = _ANY_WIDTH_SCHEME.fullmatch(text, max(start - length, 0), start)
        if scheme is not None and not scheme.group().isascii():
            return scheme.start()
    return start


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
        before = text[link.start - 1] if link.start > 0 and text[link.start - 1] not in ASCII_WHITE_SPACE else ""
        after = text[link.end] if link.end < len(text) and text[link.end] not in ASCII_WHITE_SPACE else ""
        if before or after:
            glued.append(GluedLink(link, before, after))
    return glued


def with_ascii_schemes(text: str, links: list[Link]) -> str:
    """The text with each link's full-width scheme written in ASCII, nothing else changed."""
    pieces = []
    position = 0
    for link in links:
        if link.has_wide_scheme:
            length = _scheme_length(link.url)
            pieces.append(text[position : link.start])
            pieces.append(unicodedata.normalize("NFKC", link.url[:length]).lower())
            position = link.start + length
    pieces.append(text[position:])
    return "".join(pieces)


def insert_link_spacing(text: str, glued: list[GluedLink]) -> str:
    """The text with an ASCII space on each glued side of each link and nothing else changed,
    except that a glued Unicode space (U+3000, U+00A0, ...) becomes that ASCII space.

    A space can make a link appear that was not one before ("/xa.cnhttps://w.cn": once the second
    link is moved away, "xa.cn" ends cleanly and becomes a link glued to "/"), so repeat until no
    link is glued. It ends: every round fills at least one of the finitely many gaps between
    characters with an ASCII space, and a gap next to one is never glued.
    """
    while glued:
        text = _insert_spaces(text, glued)
        glued = glued_links(text, find_links(text))
    return text


def _insert_spaces(text: str, glued: list[GluedLink]) -> str:
    pieces = []
    position = 0
    for item in glued:
        start = item.link.start
        if item.before.isspace():
            start -= 1  # replaced, unless the link before already replaced it as its `after`
        pieces.append(text[position : max(start, position)])
        if item.before and start >= position:
            pieces.append(" ")
        pieces.append(item.link.url)
        position = item.link.end
        if item.after:
            pieces.append(" ")
            position += item.after.isspace()
    pieces.append(text[position:])
    return "".join(pieces)


def host_allowed(host: str, allowlist: tuple[str, ...]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in allowlist)

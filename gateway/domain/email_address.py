"""E-mail recipients: a bare address or a mailbox with a display name (RFC 5322, `张三 <a@b.cn>`),
with an internationalised local part (RFC 6532) or domain (IDNA), judged by email-validator and
brought to the one form that suppressions, caps and the delivery log match on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

MAX_DISPLAY_NAME_CHARS = 256

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# What nearly every recipient looks like: a dot-atom local part and an ASCII host name ending in a
# letter-only label. Anything else (a display name, non-ASCII, Punycode, a reserved name) goes to
# email-validator, which costs some 40 µs an address.
_PLAIN = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+[A-Za-z]{{2,63}}$")
# Special-use names (RFC 6761, 6762, 7686) that email-validator refuses; such an address takes its path.
_SPECIAL_USE = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})
# `name <address>` with the name not quoted: RFC 6532 lets it hold UTF-8 (张三), email-validator
# takes that only quoted, so it is quoted first. Names with RFC 5322 specials stay as written.
_UNQUOTED_NAME = re.compile(
    r'^(?P<name>[^"\\<>@,;:()\[\]\x00-\x1f]*[^"\\<>@,;:()\[\]\s\x00-\x1f])[ \t]*(?P<rest><[^<>]*>)[ \t]*$'
)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Mailbox:
    address: str  # the local part as given (NFC), the domain in lower case (an IDN in Unicode)
    display_name: str | None = None


def parse_mailbox(raw: str) -> Mailbox | None:
    """The recipient `raw` names, or None when it is not an e-mail address."""
    if len(raw) <= 254 and _PLAIN.match(raw):
        local, _, domain = raw.rpartition("@")
        if len(local) <= 64 and "--" not in domain and domain.rpartition(".")[2].lower() not in _SPECIAL_USE:
            return Mailbox(f"{local}@{domain.lower()}")
    return _checked(raw)


def _checked(raw: str) -> Mailbox | None:
    if len(raw) > 254 + MAX_DISPLAY_NAME_CHARS + 8 or _CONTROL.search(raw):
        return None
    unquoted = _UNQUOTED_NAME.match(raw)
    if unquoted:
        raw = f'"{unquoted["name"].strip()}" {unquoted["rest"]}'
    try:
        checked = validate_email(raw, allow_display_name=True, allow_smtputf8=True, check_deliverability=False)
    except EmailNotValidError:
        return None
    name = checked.display_name or None
    if name is not None and len(name) > MAX_DISPLAY_NAME_CHARS:
        return None
    return Mailbox(checked.normalized, name)

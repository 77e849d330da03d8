"""Validation of send jobs: turns an untrusted JSON value into a SendJob or a list of field errors.

Every error names its field as a JSON pointer relative to the request body, so a campaign system
can tell which of a thousand batch items and which field was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
import phonenumbers

from gateway.domain.email_address import parse_mailbox
from gateway.domain.models import Channel
from gateway.domain.phones import parse_international
from gateway.domain.quiet_hours import zone
from gateway.domain.routing import INTERCHANGEABLE


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class JobLimits:
    max_text_chars: int = 1600
    max_subject_chars: int = 998
    max_email_body_chars: int = 200_000
    max_push_title_chars: int = 256
    max_push_body_chars: int = 4096
    max_payload_bytes: int = 65_536
    max_metadata_bytes: int = 4096
    max_label_chars: int = 128
    max_fallback: int = 4
    allow_http_webhooks: bool = False


IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f]")
_PUSH_TOKEN_RE = re.compile(r"^[\x21-\x7e]{8,4096}$")
# A receiver's host and port: a DNS name or an IPv4 address, what a client can connect to (the job
# schema's URL patterns are built on it too).
_URL_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
RECEIVER_HOST = rf"{_URL_LABEL}(?:\.{_URL_LABEL})*\.?(?::[0-9]{{1,5}})?"
_RECEIVER_HOST_RE = re.compile(rf"^https?://(?:[^/?#@\[\]]*@)?{RECEIVER_HOST}(?:[/?#]|$)")


ADDRESS_KINDS = {
    Channel.SMS: "phone number",
    Channel.VOICE: "phone number",
    Channel.PUSH: "device token",
    Channel.EMAIL: "e-mail address",
    Channel.WEBHOOK: "URL",
}


def reachable_channels(channel: Channel) -> list[str]:
    """The channels a job on `channel` can be tried on: its own and those that take the same address
    and content (a job carries one `to`, so a fallback to any other could never be used)."""
    return [c.value for c in Channel if c == channel or c.value in INTERCHANGEABLE.get(channel.value, ())]


def valid_idempotency_key(key: str) -> bool:
    return bool(IDEMPOTENCY_KEY_RE.match(key))


def timing_problems(send_at: float | None, expires_at: float | None, now: float | None) -> list[tuple[str, str]]:
    """What is wrong with a job's times as (field, message): one that would expire unsent is refused."""
    if expires_at is None:
        return []
    if send_at is not None and expires_at <= send_at:
        return [("/expires_at", "must be later than send_at")]
    if now is not None and expires_at <= now:
        return [("/expires_at", "is already past: the job would expire unsent")]
    return []


def valid_zone(name: str) -> bool:
    try:
        zone(name)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=65_536)
def normalise_phone(raw: str) -> str | None:
    """The E.164 form of a number given in international form, or None if it is not a valid number."""
    if len(raw) > 20:
        return None
    number = parse_international(raw)
    if number is None or not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_timestamp(value: Any) -> float | None:
    """RFC 3339 with an explicit offset; a time without a zone is ambiguous and refused."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def label_problem(value: Any, limits: JobLimits) -> str | None:
    """Why `value` cannot be a user_id, campaign or variant; None when it can."""
    if not isinstance(value, str) or not value or len(value) > limits.max_label_chars:
        return f"must be a non-empty string of at most {limits.max_label_chars} characters"
    if _CONTROL_CHARS.search(value):
        return "must not contain control characters"
    return None


class _Checker:
    def __init__(self, prefix: str, limits: JobLimits) -> None:
        self.prefix = prefix
        self.limits = limits
        self.errors: list[FieldError] = []
        self.display_name: str | None = None  # of an e-mail `to` written as `name <address>`

    def fail(self, path: str, message: str) -> None:
        self.errors.append(FieldError(self.prefix + path, message))

    def label(self, body: dict[str, Any], name: str) -> str | None:
        value = body.get(name)
        if value is None:
            return None
        problem = label_problem(value, self.limits)
        if problem is not None:
            self.fail(f"/{name}", problem)
            return None
        return str(value)

    def text(self, content: dict[str, Any], name: str, max_chars: int, required: bool) -> None:
        value = content.get(name)
        if value is None:
            if required:
                self.fail(f"/content/{name}", "is required")
            return
        if not isinstance(value, str):
            self.fail(f"/content/{name}", "must be a string")
        elif required and not value.strip():
            self.fail(f"/content/{name}", "must not be empty")
        elif len(value) > max_chars:
            self.fail(f"/content/{name}", f"must be at most {max_chars} characters (got {len(value)})")
        elif "\x00" in value:
            self.fail(f"/content/{name}", "must not contain NUL characters")

    def json_size(self, path: str, value: Any, max_bytes: int) -> None:
        try:
            size = len(orjson.dumps(value))
        except (TypeError, orjson.JSONEncodeError):
            self.fail(path, "must be plain JSON")
            return
        if size > max_bytes:
            self.fail(path, f"must serialise to at most {max_bytes} bytes (got {size})")


ADDRESS_FORMS = "a phone number in E.164 form, an e-mail address or an https URL"


def suppression_address(raw: str, channel: Channel | None, limits: JobLimits) -> tuple[str | None, str | None]:
    """An address to suppress, in the form jobs store it (so it matches them), or the reason it is not one.

    It is judged by the rules of a job's `to` on `channel`, or on the channel its form shows (`+`: a
    phone number, `@`: an e-mail address, `://`: a URL); a device token looks like any word, so it
    is taken only with its channel named."""
    channel = channel or _channel_shown_by(raw)
    if channel is None:
        return None, f'must be {ADDRESS_FORMS} (a device token with "channel": "push")'
    check = _Checker("", limits)
    value = _validate_to(check, channel, raw)
    return (None, check.errors[0].message) if check.errors else (value, None)


def _channel_shown_by(address: str) -> Channel | None:
    if address.startswith("+"):
        return Channel.SMS
    if "://" in address:
        return Channel.WEBHOOK
    return Channel.EMAIL if "@" in address else None


def _validate_to(check: _Checker, channel: Channel | None, raw: Any) -> str | None:
    if raw is None:
        check.fail("/to", "is required")
        return None
    if not isinstance(raw, str) or not raw:
        check.fail("/to", "must be a non-empty string")
        return None
    if channel in (Channel.SMS, Channel.VOICE):
        number = normalise_phone(raw)
        if number is None:
            check.fail("/to", "must be a valid phone number in E.164 form, e.g. +8613812345678")
        return number
    if channel == Channel.EMAIL:
        mailbox = parse_mailbox(raw)
        if mailbox is None:
            check.fail("/to", "must be an e-mail address, e.g. ann@example.com or 张三 <zhang@example.cn>")
            return None
        check.display_name = mailbox.display_name
        return mailbox.address
    if channel == Channel.PUSH:
        if not _PUSH_TOKEN_RE.match(raw):
            check.fail("/to", "must be a device token of 8-4096 printable characters")
            return None
        return raw
    if channel == Channel.WEBHOOK:
        allowed = ("https://", "http://") if check.limits.allow_http_webhooks else ("https://",)
        bad = len(raw) > 2048 or not raw.startswith(allowed) or any(c.isspace() for c in raw)
        if bad or not _RECEIVER_HOST_RE.match(raw):
            check.fail("/to", "must be an https URL")
            return None
        return raw
    return raw

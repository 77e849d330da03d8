"""What generated requests need to know that JSON Schema cannot say (loaded by schemathesis through
SCHEMATHESIS_HOOKS): values of the document's named formats, and the rule that a job's expiry lies
after its send time and after now (stated in the document's prose)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from hypothesis import strategies as st

# Valid numbers of several numbering plans, in the forms campaign systems send them.
PHONE_NUMBERS = [
    "+14155552671",
    "+1 415-555-2671",
    "+447911123456",
    "+4915112345678",
    "+33612345678",
    "+819012345678",
    "+61412345678",
    "+5511987654321",
    "+8613812345678",
    "+85291234567",
]
TIME_ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata", "Australia/Sydney"]
_LOCAL = st.from_regex(r"[a-z][a-z0-9._+-]{0,20}[a-z0-9]", fullmatch=True)
_DOMAIN = st.sampled_from(["example.com", "example.org", "mail.example.net", "例子.中国"])
MAILBOXES = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", _LOCAL, _DOMAIN),
    st.builds(
        lambda name, local, domain: f"{name} <{local}@{domain}>", st.sampled_from(["Ann Lee", "张三"]), _LOCAL, _DOMAIN
    ),
)

schemathesis.openapi.format("phone-e164", st.sampled_from(PHONE_NUMBERS))
schemathesis.openapi.format("iana-time-zone", st.sampled_from(TIME_ZONES))
schemathesis.openapi.format("mailbox", MAILBOXES)


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


FORMAT_VALUES = {"sms": PHONE_NUMBERS[0], "voice": PHONE_NUMBERS[2], "email": "ann@example.com"}


def _formats_in_every_phase(body: dict[str, Any]) -> None:
    """The coverage phase knows no registered format: it fills a named format with any string of the
    right length. Such a value is put right here, in place, as the format strategies would have drawn it."""
    to, channel = body.get("to"), body.get("channel")
    if channel in ("sms", "voice") and to not in PHONE_NUMBERS:
        body["to"] = FORMAT_VALUES[channel]
    elif channel == "email" and isinstance(to, str) and "@" not in to:
        body["to"] = FORMAT_VALUES["email"]
    if isinstance(body.get("tz"), str) and body["tz"] not in TIME_ZONES:
        body["tz"] = TIME_ZONES[0]


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    """One key per request, as the header's contract asks: a key reused with another body is refused
    (in every phase; the coverage phase applies no map_* hook)."""
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return  # an invalid request is refused whatever its key; editing it would make it a valid one
    if isinstance(case.body, dict):
        _formats_in_every_phase(case.body)
    headers = case.headers  # a mutable mapping, edited in place so schemathesis sees the change
    key = headers.get("Idempotency-Key") if headers is not None else None
    if isinstance(key, str) and key and all("\x21" <= c <= "\x7e" for c in key):
        headers["Idempotency-Key"] = f"{key[:200]}-{uuid.uuid4().hex}"


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    """A generated expiry moves past now and past the job's send time, where the rule puts it."""
    if isinstance(body, dict) and (expires := _parse(body.get("expires_at"))) is not None:
        floor = max(datetime.now(UTC), _parse(body.get("send_at")) or datetime.now(UTC))
        if expires <= floor + timedelta(minutes=5):
            body = {**body, "expires_at": (floor + timedelta(days=1)).isoformat()}
    return body

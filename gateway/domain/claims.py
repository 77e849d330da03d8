"""One-time claim tokens (pure): what the click redirect appends to a coupon's landing page, so its back
end can tell the recipient's own claim from a captured, forwarded or replayed link.

A token is `<payload>.<mac>`, both base64url: the payload holds the message id, the expiry (epoch
seconds) and the campaign, the MAC is HMAC-SHA-256 over the payload with a secret kept in the store,
cut to 128 bits. No personal data: the message id names a record only this gateway can read. The
token of a message is the same on every click (its expiry is fixed from the link's creation), and
it is claimed once per message, so a forwarded link clicked by someone else claims nothing more.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

CLAIM_PARAMETER = "claim"
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,600}\.[A-Za-z0-9_-]{22}$"
MAC_BYTES = 16
_SEPARATOR = "\n"


class ClaimResult(enum.StrEnum):
    VALID = "valid"  # genuine, unexpired, and claimed now
    EXPIRED = "expired"  # genuine, past its expiry
    FORGED = "forged"  # not made by this gateway (or altered, truncated, or another tenant's)
    CLAIMED = "claimed"  # genuine, claimed before: a replay


@dataclass(frozen=True, slots=True)
class Claim:
    message_id: str
    campaign: str | None
    expires_at: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:MAC_BYTES])


def mint(secret: bytes, claim: Claim) -> str:
    payload = _b64(_SEPARATOR.join((claim.message_id, str(claim.expires_at), claim.campaign or "")).encode())
    return f"{payload}.{_mac(secret, payload)}"


def read(secret: bytes, token: str) -> Claim | None:
    """The claim a genuine token carries, or None for anything this gateway did not sign."""
    payload, dot, mac = token.partition(".")
    if not dot or not hmac.compare_digest(_mac(secret, payload), mac):
        return None
    try:
        message_id, expires, campaign = _unb64(payload).decode().split(_SEPARATOR)
        return Claim(message_id, campaign or None, int(expires))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None  # signed by us yet unreadable: only if the secret leaked; refuse it all the same


def judge(claim: Claim | None, now: float) -> ClaimResult | None:
    """Forged or expired, or None: genuine and in time, to be claimed (once, by the store)."""
    if claim is None:
        return ClaimResult.FORGED
    if now >= claim.expires_at:
        return ClaimResult.EXPIRED
    return None


def with_claim(url: str, token: str) -> str:
    parts = urlsplit(url)
    extra = urlencode({CLAIM_PARAMETER: token})
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))

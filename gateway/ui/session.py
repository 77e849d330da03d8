"""The console's session: an encrypted, signed cookie holding the API key's hash and a CSRF token.

Fernet (AES-CBC + HMAC-SHA256, with a timestamp) both hides and signs the cookie, so a session
can be neither read nor forged nor kept past its lifetime. The key itself is never stored: only
its SHA-256, which every request checks again against the key table, so revoking the key ends
the session. The cookie secret lives in the store, shared by every API process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson
from cryptography.fernet import Fernet, InvalidToken

COOKIE = "gw_console"
LIFETIME_SECONDS = 12 * 3600
CSRF_FIELD = "csrf"


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    key_hash: str | None = None  # None: not signed in (the login form still needs a CSRF token)

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(24))

    @classmethod
    def signed_in(cls, key_hash: str) -> Session:
        # A fresh token at sign-in, so a token planted before it is worth nothing after.
        return cls(csrf=secrets.token_urlsafe(24), key_hash=key_hash)

    def csrf_matches(self, submitted: str | None) -> bool:
        return bool(submitted) and hmac.compare_digest(self.csrf.encode(), (submitted or "").encode())


class SessionCodec:
    def __init__(self, secret: str) -> None:
        # The stored secret is hex of any length; Fernet wants 32 bytes, url-safe base64.
        key = base64.urlsafe_b64encode(hashlib.sha256(f"console-session:{secret}".encode()).digest())
        self._fernet = Fernet(key)

    def encode(self, session: Session) -> str:
        return self._fernet.encrypt(orjson.dumps({"c": session.csrf, "k": session.key_hash})).decode()

    def decode(self, cookie: str | None) -> Session | None:
        """The session in a cookie; None if absent, tampered with, foreign or older than its lifetime."""
        if not cookie:
            return None
        try:
            data = orjson.loads(self._fernet.decrypt(cookie.encode(), ttl=LIFETIME_SECONDS))
        except (InvalidToken, orjson.JSONDecodeError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        key_hash = data.get("k")
        return Session(csrf=data["c"], key_hash=key_hash if isinstance(key_hash, str) else None)

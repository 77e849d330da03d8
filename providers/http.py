"""What the HTTP-speaking adapters share: one client session each, Retry-After, transport failures.

A transport failure splits in two. When the connection was never made, the provider cannot have
taken the message and a retry is safe: that is a transient `ProviderError`. When the request may
have reached the provider (a timeout or a dropped connection after sending), nobody knows whether
the message left; `send` raises `HandoffUnknown`, which the worker treats as a hand-off of unknown
outcome (lookup, else the configured resend-or-unknown policy) instead of blindly sending twice.
"""

from __future__ import annotations

import email.utils
import hmac
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson

from providers.base import ErrorKind, JsonCallbackAnswers, Lookup, ProviderError, SignatureError

CHINA_TIME = timezone(timedelta(hours=8))
TOKEN_PARAMETER = "token"


class HandoffUnknown(Exception):
    """The request may have reached the provider, but no answer came back."""


class ProviderNotStarted(RuntimeError):
    """`send` was called before `start` (or after `close`)."""


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively: callbacks arrive as plain dicts, whose keys keep the sender's case."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    value = header(headers, "Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def new_session(
    connect_timeout: float, total_timeout: float, user_agent: str = "delivery-gateway"
) -> aiohttp.ClientSession:
    # A total timeout below the worker's own limit, so the adapter, not the worker, decides what an
    # unanswered request means.
    timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
    return aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": user_agent}, raise_for_status=False)


class SessionSettings(Protocol):
    @property
    def connect_timeout(self) -> float: ...

    @property
    def timeout(self) -> float: ...


class HttpAdapter(JsonCallbackAnswers):
    """What every HTTP adapter shares: one aiohttp session, opened at start and closed at stop.
    None of these services can be asked about a message by our reference, so lookup says so."""

    settings: SessionSettings
    user_agent = "delivery-gateway"
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = new_session(self.settings.connect_timeout, self.settings.timeout, self.user_agent)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def lookup(self, reference: str) -> Lookup | None:
        return None


def transport_failure(exc: BaseException, provider: str) -> ProviderError:
    """A ProviderError for a request that certainly never reached the provider; raises HandoffUnknown otherwise."""
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.InvalidURL):
        return ProviderError(ErrorKind.TRANSIENT, "connect_failed", f"{provider}: {exc}")
    raise HandoffUnknown(f"{provider}: no answer ({type(exc).__name__}: {exc})") from exc


def json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def http_status_kind(status: int) -> ErrorKind:
    """The fallback class of an HTTP status when a provider's body names no code we know."""
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status >= 500 or status in (408, 409, 425):
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def check_url_token(url: str, expected: str | None) -> None:
    """For services that do not sign their callbacks (Aliyun, Tencent Cloud): the URL registered with
    them carries our secret as `?token=`, compared in constant time. Raises SignatureError."""
    if not expected:
        raise SignatureError("no callback token configured: callbacks are refused")
    given = parse_qs(urlsplit(url).query).get(TOKEN_PARAMETER, [""])[0]
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureError("callback URL token missing or wrong")


def china_time(value: Any) -> float | None:
    """A `2017-01-01 00:00:00` time in China Standard Time (UTC+8), as Aliyun and Tencent write them."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA_TIME).timestamp()
    except ValueError:
        return None

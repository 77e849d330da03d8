"""Signed webhooks per the Standard Webhooks specification: POST JSON to the job's URL.

Each request carries `webhook-id` (our message id, the same on every retry so the receiver can
drop duplicates), `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64>` where
the signature is HMAC-SHA256, keyed by the base64-decoded part of a `whsec_` secret, of
`{id}.{timestamp}.{body}`. The body is `{"id", "type": "message", "timestamp", "data"}`.

A 2xx answer means the receiver has the message: it is the end of the hand-off and the delivery
receipt in one (the message is `delivered` as the answer is recorded; no receipt follows). 410 Gone
means the endpoint is retired: permanent. 408, 429 and 5xx are retried (honouring Retry-After); any
other answer, redirects included (the spec says not to follow them), is permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import orjson

from providers.base import (
    Capabilities,
    ErrorKind,
    InboundMessage,
    InboundRequest,
    Outbound,
    ProviderError,
    ProviderType,
    Receipt,
    SendResult,
    SignatureError,
    setting,
)
from providers.http import HttpAdapter, ProviderNotStarted, header, retry_after, transport_failure

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300
DEFAULT_RETRY_AFTER = 1.0

# HTTP status -> our error class, before the general rule (2xx accepted, 5xx transient, else permanent).
STATUS_KINDS: dict[int, ErrorKind] = {
    408: ErrorKind.TRANSIENT,
    410: ErrorKind.PERMANENT,
    425: ErrorKind.TRANSIENT,
    429: ErrorKind.RATE_LIMITED,
}


def secret_bytes(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ValueError("a webhook secret is base64, optionally prefixed whsec_") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for this message."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret_bytes(secret), to_sign, hashlib.sha256).digest()).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
    """Check a Standard Webhooks signature as a receiver must; raises SignatureError."""
    msg_id = header(headers, "webhook-id")
    stamp = header(headers, "webhook-timestamp")
    signatures = header(headers, "webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp outside the tolerance window")
    expected = sign(secret, msg_id, timestamp, body).removeprefix("v1,")
    # The header may list several space-separated signatures (secret rotation); one match suffices.
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise SignatureError("no webhook-signature matches")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    secret: str = setting(
        doc="the signing secret, whsec_<base64>; or secret_file", secret=True, example="/run/secrets/webhook_secret"
    )
    connect_timeout: float = setting(3.0, doc="seconds to connect")
    timeout: float = setting(8.0, doc="seconds for the whole request")
    user_agent: str = setting("delivery-gateway-webhooks", doc="the User-Agent of our requests")
    max_per_second: float | None = setting(None, doc="the default throughput of this section", example=50.0)

    def __post_init__(self) -> None:
        secret_bytes(self.secret)


class WebhookProvider(HttpAdapter):
    settings: WebhookSettings

    def __init__(self, settings: WebhookSettings, *, name: str = "webhook") -> None:
        self.name = name
        self.settings = settings
        # A 2xx is the whole story: the adapter answers delivered and no receipt will follow.
        self.capabilities = Capabilities(
            channels=frozenset({"webhook"}), receipts=False, lookup=False, max_per_second=settings.max_per_second
        )
        self.user_agent = settings.user_agent
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"WebhookProvider(name={self.name!r}, settings={self.settings!r})"

    def parse_receipts(self, request: InboundRequest) -> list[Receipt]:
        raise SignatureError(f"{self.name} takes no receipt callbacks")

    def parse_inbound(self, request: InboundRequest) -> list[InboundMessage]:
        raise SignatureError(f"{self.name} takes no inbound callbacks")

    def request(self, message: Outbound, now: float | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the signed POST for this message."""
        timestamp = int(time.time() if now is None else now)
        body = orjson.dumps(
            {
                "id": message.reference,
                "type": "message",
                "timestamp": datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z"),
                "data": message.content.get("payload", {}),
            }
        )
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message.reference,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.settings.secret, message.reference, timestamp, body),
        }
        return body, headers

    async def send(self, message: Outbound) -> SendResult:
        if message.channel != "webhook":
            return SendResult(error=ProviderError(ErrorKind.PERMANENT, "unsupported_channel", message.channel))
        if self._session is None:
            raise ProviderNotStarted(f"{self.name} provider used before start()")
        body, headers = self.request(message)
        try:
            async with self._session.post(message.to, data=body, headers=headers, allow_redirects=False) as response:
                status, response_headers = response.status, response.headers
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult(error=transport_failure(exc, self.name))
        if 200 <= status < 300:
            return SendResult(provider_message_id=message.reference, delivered=True)
        kind = STATUS_KINDS.get(status) or (ErrorKind.TRANSIENT if status >= 500 else ErrorKind.PERMANENT)
        wait = retry_after(response_headers) if kind.retryable else None
        if kind == ErrorKind.RATE_LIMITED and wait is None:
            wait = DEFAULT_RETRY_AFTER
        return SendResult(error=ProviderError(kind, f"HTTP{status}", f"receiver answered {status}", wait))


PROVIDER_TYPE = ProviderType(
    name="webhook",
    settings=WebhookSettings,
    build=lambda settings, name: WebhookProvider(settings, name=name),
)

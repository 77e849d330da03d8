"""One signed POST of a status callback, per Standard Webhooks, through the SSRF-guarded session.

The signing is the webhook channel's own (providers/webhook.py); during a secret rotation each
secret signs and the header lists both signatures, so a receiver holding either verifies."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp

from gateway.webhook_guard import GuardedResolver, RefusedAddress, literal_refusal
from gateway.webhook_settings import WebhooksSettings
from providers.http import retry_after
from providers.webhook import sign

USER_AGENT = "delivery-gateway-callbacks"


@dataclass(frozen=True, slots=True)
class Answer:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


def signed_headers(secrets: tuple[str, ...], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, webhook_id, timestamp, body) for secret in secrets),
    }


def _refused(exc: BaseException) -> RefusedAddress | None:
    """The guard's refusal inside aiohttp's connection error, if that is what stopped it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, RefusedAddress):
            return seen
        inner = getattr(seen, "os_error", None)
        seen = inner if isinstance(inner, BaseException) and inner is not seen else seen.__cause__
    return None


class CallbackSender:
    def __init__(self, settings: WebhooksSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        s = self.settings
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(allow_private=s.allow_private_networks), limit=s.concurrency
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=s.timeout_seconds, sock_connect=s.connect_timeout_seconds),
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, secrets: tuple[str, ...], webhook_id: str, body: bytes) -> Answer:
        """What the receiver answered: a 2xx delivers; anything else (a redirect too: not followed) fails."""
        assert self._session is not None, "CallbackSender used before start()"
        refusal = literal_refusal(url, allow_private=self.settings.allow_private_networks)
        if refusal is not None:
            return Answer(False, error=f"refused: {refusal}")
        headers = signed_headers(secrets, webhook_id, int(time.time()), body)
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                await response.read()
                status, answered = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            refused = _refused(exc)
            if refused is not None:
                return Answer(False, error=f"refused: {refused}")
            return Answer(False, error=f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= status < 300:
            return Answer(True, status)
        return Answer(False, status, f"receiver answered {status}", retry_after(answered))

"""A webhook receiver that checks Standard Webhooks signatures the way a receiving library does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from aiohttp import web

from tests.fakes.http import FakeHttpService, Recorded, respond


@dataclass
class Received:
    msg_id: str
    timestamp: int
    body: bytes
    valid: bool


class FakeWebhookReceiver(FakeHttpService):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.received: list[Received] = []

    def _valid(self, recorded: Recorded) -> Received | None:
        headers = {k.lower(): v for k, v in recorded.headers.items()}
        try:
            msg_id, stamp = headers["webhook-id"], int(headers["webhook-timestamp"])
            offered = headers["webhook-signature"].split(" ")
        except (KeyError, ValueError):
            return None
        mac = hmac.new(self.key, f"{msg_id}.{stamp}.".encode() + recorded.body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        valid = abs(time.time() - stamp) <= 300 and any(hmac.compare_digest(expected, s) for s in offered)
        return Received(msg_id, stamp, recorded.body, valid)

    def authenticate(self, request: web.Request, recorded: Recorded) -> web.StreamResponse | None:
        received = self._valid(recorded)
        if received is None or not received.valid:
            return respond(401, {"error": "bad signature"})
        self.received.append(received)
        return None

    async def answer(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.Response(status=204)

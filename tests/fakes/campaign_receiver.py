"""A campaign system's status-callback receiver: a real HTTP server that verifies each request with
the `standardwebhooks` package (the reference implementation receivers use), as a receiver would."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.fakes.http import FakeHttpService, Recorded, respond


@dataclass
class Event:
    webhook_id: str
    type: str
    data: dict[str, Any]
    verified_by: list[str] = field(default_factory=list)  # which of the receiver's secrets verified it


class CampaignReceiver(FakeHttpService):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []  # what the receiver knows; set once the subscription answers
        self.events: list[Event] = []  # verified and acknowledged, in arrival order
        self.refused = 0  # requests that failed verification
        self.down_status: int | None = None  # while set, every request is answered with it
        self.down_headers: dict[str, str] = {}
        self.delay = 0.0  # seconds each acknowledgement takes
        self.batches: list[str] = []  # webhook-ids of the requests that held several events

    def authenticate(self, request: web.Request, recorded: Recorded) -> web.StreamResponse | None:
        verified_by = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(recorded.body, recorded.headers)
            except WebhookVerificationError:
                continue
            verified_by.append(secret)
        if not verified_by:
            self.refused += 1
            return respond(401, {"error": "signature"})
        if self.down_status is not None:
            return respond(self.down_status, None, self.down_headers)
        recorded.form.add("verified_by", "\n".join(verified_by))
        return None

    async def answer(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        body = orjson.loads(recorded.body)
        assert set(body) == {"type", "timestamp", "data"}, body
        verified_by = recorded.form.get("verified_by", "").split("\n")
        if body["type"] == "batch":  # several events in one request, each with its own webhook-id
            self.batches.append(recorded.headers["webhook-id"])
            for item in body["data"]["events"]:
                assert set(item) == {"webhook_id", "type", "timestamp", "data"}, item
                self.events.append(Event(item["webhook_id"], item["type"], item["data"], verified_by))
            return web.Response(status=204)
        self.events.append(Event(recorded.headers["webhook-id"], body["type"], body["data"], verified_by))
        return web.Response(status=204)

    def unique(self) -> list[Event]:
        """The events, each webhook-id once (a receiver drops repeats), in the order first received."""
        seen: dict[str, Event] = {}
        for event in self.events:
            seen.setdefault(event.webhook_id, event)
        return list(seen.values())

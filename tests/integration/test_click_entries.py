"""A click's audit entry stays out of the events' index by message (a random insert per click) and is
still found by message: in the message's history and in the export filtered by message, in id order
with the message's other entries, and never under another message."""

from __future__ import annotations

import re

import aiohttp
import orjson

from tests.fakes.twilio import FakeTwilio
from tests.harness import SMS, GatewayStarter

LINK = re.compile(r"https://go\.example\.com/c/([0-9A-Za-z]{10})")
PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"
BOT = "facebookexternalhit/1.1"


async def test_a_messages_clicks_are_in_its_history_and_its_export_in_order(start_gateway: GatewayStarter) -> None:
    async with FakeTwilio() as fake:
        env = {**fake.gateway_env(), "GATEWAY_LINKS__BASE_URL": "https://go.example.com"}
        async with start_gateway(env) as gw:
            tokens: dict[str, str] = {}
            for n in range(2):
                job = {**SMS, "to": f"+86139{n:08d}", "content": {"text": f"Hi {n}: https://shop.example.com/{n}"}}
                message_id = (await (await gw.post("/v1/messages", job)).json())["id"]
                sent = await gw.wait_status(message_id, {"sent"})
                [tokens[message_id]] = LINK.findall(fake.created[sent["provider_message_id"]].first("Body"))
            first, second = tokens
            async with aiohttp.ClientSession() as browser:
                for message_id, agent in ((first, PHONE), (second, PHONE), (first, BOT)):
                    async with browser.get(
                        f"{gw.url}/c/{tokens[message_id]}", headers={"User-Agent": agent}, allow_redirects=False
                    ) as opened:
                        assert opened.status == 302

            history = (await (await gw.get(f"/v1/messages/{first}")).json())["events"]
            clicks = [e for e in history if e["type"] == "click"]
            assert [(e["reason"], e["detail"]) for e in clicks] == [
                ("person", {"token": tokens[first]}),
                ("automated", {"token": tokens[first]}),
            ]
            assert [e["status"] for e in history if e["type"] == "status"][:1] == ["queued"]
            assert history.index(clicks[0]) > max(i for i, e in enumerate(history) if e["status"] == "sent")

            exported = await gw.get("/v1/events", params={"message_id": first})
            lines = [orjson.loads(line) for line in (await exported.text()).splitlines()]
            assert [line["id"] for line in lines] == sorted(line["id"] for line in lines)
            assert [(line["type"], line["status"], line["reason"]) for line in lines] == [
                (e["type"], e["status"], e["reason"]) for e in history
            ]
            only_clicks = await gw.get("/v1/events", params={"message_id": second, "type": "click"})
            assert only_clicks.status == 200, await only_clicks.text()
            [other] = [orjson.loads(line) for line in (await only_clicks.text()).splitlines()]
            assert (other["message_id"], other["detail"]) == (second, {"token": tokens[second]})

"""per_campaign link tracking: one registered link per campaign, variant and destination, for routes
whose approved templates forbid variable links; clicks and conversions still reach the report."""

from __future__ import annotations

import re

import aiohttp

from tests.fakes.twilio import FakeTwilio
from tests.harness import SMS, GatewayStarter

LINK = re.compile(r"https://go\.example\.com/c/([0-9A-Za-z]{10})")
PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"
BOT = "facebookexternalhit/1.1"


async def test_every_recipient_of_a_variant_gets_the_same_link_and_the_report_counts_its_clicks(
    start_gateway: GatewayStarter,
) -> None:
    async with FakeTwilio() as fake:
        env = {
            **fake.gateway_env(),
            "GATEWAY_LINKS__BASE_URL": "https://go.example.com",
            "GATEWAY_LINKS__ROUTES__TWILIO": "per_campaign",
        }
        async with start_gateway(env) as gw:
            ids: dict[str, str] = {}
            for n in range(6):
                variant = "A" if n < 4 else "B"
                job = {
                    **SMS,
                    "to": f"+86139{n:08d}",
                    "category": "transactional",
                    "campaign": "spring",
                    "variant": variant,
                    "content": {"text": f"Hi {n}: sale https://shop.example.com/sale and https://shop.example.com/faq"},
                }
                ids[(await (await gw.post("/v1/messages", job)).json())["id"]] = variant
            bodies: dict[str, str] = {}
            for message_id in ids:
                sent = await gw.wait_status(message_id, {"sent"})
                bodies[message_id] = fake.created[sent["provider_message_id"]].first("Body")

            tokens = {mid: LINK.findall(body) for mid, body in bodies.items()}
            assert all(len(found) == 2 for found in tokens.values()), bodies
            by_variant = {v: {tuple(tokens[mid]) for mid in ids if ids[mid] == v} for v in "AB"}
            assert len(by_variant["A"]) == 1 and len(by_variant["B"]) == 1, "one link set per variant"
            (sale_a, _faq_a), (sale_b, _faq_b) = next(iter(by_variant["A"])), next(iter(by_variant["B"]))
            assert len({sale_a, sale_b, _faq_a, _faq_b}) == 4
            assert all(
                body.startswith(f"Hi {n}: sale https://go.example.com/c/") for n, body in enumerate(bodies.values())
            )

            async with aiohttp.ClientSession() as browser:
                for token, agent, times in ((sale_a, PHONE, 3), (sale_a, BOT, 1), (sale_b, PHONE, 1)):
                    for _ in range(times):
                        async with browser.get(
                            f"{gw.url}/c/{token}", headers={"User-Agent": agent}, allow_redirects=False
                        ) as opened:
                            assert opened.status == 302
                            assert opened.headers["Location"].startswith("https://shop.example.com/sale?utm_campaign=")
            bought = await gw.post("/v1/conversions", {"click_token": sale_a, "event": "purchase", "value": 30})
            assert bought.status == 201, await bought.text()
            assert (await bought.json())["message_id"] is None

            report = await (await gw.get("/v1/reports/campaigns/spring")).json()
            shared = {row["variant"]: row for row in report["campaign_links"]}
            assert shared["A"] == {
                "variant": "A",
                "clicks": 4,
                "human_clicks": 3,
                "unique_visitors": 1,
                "conversions": 1,
                "value": 30.0,
            }
            assert (shared["B"]["clicks"], shared["B"]["human_clicks"], shared["B"]["conversions"]) == (1, 1, 0)
            assert report["totals"]["clicks"] == 5 and report["totals"]["conversions"] == 1
            assert report["totals"]["sent"] == 6

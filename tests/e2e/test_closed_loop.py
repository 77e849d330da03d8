"""The closed loop on the embedded default: a campaign of 1,000 SMS in two variants through the
sandbox, scripted clicks (some by a link-preview bot) and conversions; the campaign report's
numbers equal the script's, by variant."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from gateway.store.schema import links
from tests.harness import SMS, GatewayStarter, Running

pytestmark = pytest.mark.slow
LINK = re.compile(r"/c/([0-9A-Za-z]{10})")
BOT = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"


async def _tokens(gw: Running, message_id: str) -> list[str]:
    """The tokens of the tracked links in what the recipient got."""

    def read(conn: Any) -> list[str]:
        return [t for (t,) in conn.execute(sa.select(links.c.token).where(links.c.message_id == message_id))]

    return await gw.gateway.store.db.read(read)


async def test_a_two_variant_campaign_reports_what_happened(start_gateway: GatewayStarter) -> None:
    rng = random.Random(5)
    async with start_gateway({"GATEWAY_SANDBOX__DELIVERY_RATE": "0.9"}) as gw:
        jobs = [
            {
                **SMS,
                "to": f"+86139{n:08d}",
                "campaign": "spring",
                "variant": "A" if n % 2 else "B",
                "content": {"text": f"春季上新，点击 https://shop.example.com/sale?item={n} 查看，回T退订"},
            }
            for n in range(1000)
        ]
        ids: list[str] = []
        for start in range(0, 1000, 500):
            response = await gw.post("/v1/messages/batch", {"messages": jobs[start : start + 500]})
            ids.extend(r["id"] for r in (await response.json())["results"])
        variant = {mid: jobs[i]["variant"] for i, mid in enumerate(ids)}

        async def settled() -> bool:
            listing = await (await gw.get("/v1/messages?campaign=spring&status=queued,sending,sent&limit=1")).json()
            return not listing["data"]

        await gw.wait_for(settled, within=60)
        expected: dict[str, Counter[str]] = {v: Counter() for v in "AB"}
        async with aiohttp.ClientSession() as browser:
            for person, mid in enumerate(rng.sample(ids, 300)):
                [token] = await _tokens(gw, mid)
                v = variant[mid]
                # Each recipient clicks from an address of their own (clicks are limited per client IP).
                peer = {"X-Forwarded-For": f"10.0.{person // 250}.{person % 250 + 1}"}
                if rng.random() < 0.3:  # a chat app previews the link first
                    async with browser.get(
                        f"{gw.url}/c/{token}", headers={"User-Agent": BOT, **peer}, allow_redirects=False
                    ) as preview:
                        assert preview.status == 302
                    expected[v]["clicks"] += 1
                if rng.random() < 0.8:  # the person opens it, sometimes twice
                    for _ in range(rng.choice((1, 1, 2))):
                        async with browser.get(
                            f"{gw.url}/c/{token}", headers={"User-Agent": PHONE, **peer}, allow_redirects=False
                        ) as opened:
                            assert opened.status == 302
                            location = opened.headers["Location"]
                            assert location.startswith("https://shop.example.com/sale?item=")
                            assert location.endswith(f"utm_campaign=spring&utm_content={v}")
                        expected[v]["clicks"] += 1
                        expected[v]["human_clicks"] += 1
                    expected[v]["unique_clicks"] += 1
                    if rng.random() < 0.25:
                        for _ in range(2):  # posted twice by the shop: counted once
                            response = await gw.post(
                                "/v1/conversions",
                                {"click_token": token, "event": "purchase", "value": 99.5, "event_id": f"order-{mid}"},
                            )
                            assert response.status in (200, 201)
                        expected[v]["conversions"] += 1
                        expected[v]["value"] += 99.5
        await asyncio.sleep(0.1)  # clicks are group-committed
        report = await (await gw.get("/v1/reports/campaigns/spring?group_by=variant")).json()
    by_variant = {g["variant"]: g for g in report["groups"]}
    assert set(by_variant) == {"A", "B"}
    for v in "AB":
        group = by_variant[v]
        assert group["messages"] == 500 and group["sent"] == 500
        assert group["delivered"] + group["failed"] == 500
        for key in ("clicks", "human_clicks", "unique_clicks", "conversions"):
            assert group[key] == expected[v][key], (v, key)
        assert group["value"] == pytest.approx(expected[v]["value"])
        assert group["click_rate"] == pytest.approx(group["unique_clicks"] / group["delivered"], abs=1e-4)
    assert report["totals"]["messages"] == 1000


@pytest.mark.parametrize(
    "path",
    [
        "/c/%2F%2Fevil.example",
        "/c/@evil.example",
        "/c/AAAAAAAAAA",
        "/c/short",
        "/c/AAAAAAAAAA/../x",
        "/c//evil.example",
    ],
)
async def test_tampered_and_redirect_tricks_are_404_and_record_nothing(
    start_gateway: GatewayStarter, path: str, tmp_path: Path
) -> None:
    async with start_gateway() as gw:
        response = await gw.post("/v1/messages", {**SMS, "content": {"text": "Track https://shop.example.com/x"}})
        message = await gw.wait_status((await response.json())["id"], {"delivered"})
        [token] = await _tokens(gw, message["id"])
        async with aiohttp.ClientSession() as browser:
            async with browser.get(gw.url + path, allow_redirects=False) as tricked:
                assert tricked.status == 404
                assert "Location" not in tricked.headers
            flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
            async with browser.get(f"{gw.url}/c/{flipped}", allow_redirects=False) as modified:
                assert modified.status == 404
        await asyncio.sleep(0.05)
        assert await gw.count("clicks") == 0

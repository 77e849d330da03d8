"""A claim token is claimed once across processes: 50 concurrent verifies of one token, spread over two
gateway processes on one store, give exactly one "valid". Both stores."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.harness import API_KEY
from tests.processes import GatewayProcess

PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"
COUPON = {
    "channel": "sms",
    "to": "+8613812345678",
    "category": "transactional",
    "campaign": "coupon",
    "content": {"text": "Yours: https://shop.example.com/c1 now"},
}


async def _claim_token(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(url + "/v1/messages", json=COUPON) as accepted:
        message_id = (await accepted.json())["id"]
    for _ in range(200):
        async with session.get(f"{url}/v1/messages/{message_id}") as read:
            message = await read.json()
        if message["status"] in ("sent", "delivered") and message["links"]:
            break
        await asyncio.sleep(0.05)
    token = message["links"][0]["short_url"].rsplit("/", 1)[1]
    async with session.get(f"{url}/c/{token}", headers={"User-Agent": PHONE}, allow_redirects=False) as opened:
        return parse_qs(urlsplit(opened.headers["Location"]).query)["claim"][0]


async def test_fifty_concurrent_verifies_in_two_processes_give_one_valid(tmp_path: Path, database_url: str) -> None:
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_LINKS__CLAIM_TOKENS": "true", "GATEWAY_LOG_LEVEL": "warning"}
    first = GatewayProcess(tmp_path, env).start()
    second = GatewayProcess(tmp_path, env, role="api").start()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:
            claim = await _claim_token(session, first.url)

            async def verify(n: int) -> str:
                url = (first if n % 2 else second).url
                async with session.post(url + "/v1/claims/verify", json={"token": claim}) as answer:
                    assert answer.status == 200, await answer.text()
                    return str((await answer.json())["result"])

            results = await asyncio.gather(*(verify(n) for n in range(50)))
    finally:
        second.stop_quietly()
        first.stop_quietly()
    assert sorted(results) == ["claimed"] * 49 + ["valid"]

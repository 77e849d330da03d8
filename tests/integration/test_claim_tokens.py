"""Anti-capture links: with links.claim_tokens on, the redirect carries a one-time claim token that
POST /v1/claims/verify judges; /c/{token} is rate limited per client IP. Both stores."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp

from gateway.domain.claims import Claim, mint
from tests.harness import SMS, GatewayStarter, Running

PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"
ENV = {"GATEWAY_LINKS__CLAIM_TOKENS": "true", "GATEWAY_LINKS__BASE_URL": "https://go.example.com"}
TEXT = {"text": "Yours: https://shop.example.com/c1 now"}
COUPON = {**SMS, "category": "transactional", "campaign": "coupon", "content": TEXT}


async def sent_link(gw: Running) -> tuple[str, str]:
    answer = await (await gw.post("/v1/messages", COUPON)).json()
    message = await gw.wait_status(answer["id"], {"sent", "delivered"})
    return answer["id"], message["links"][0]["short_url"].rsplit("/", 1)[1]


async def open_link(gw: Running, token: str, peer: str = "203.0.113.7") -> aiohttp.ClientResponse:
    headers = {"User-Agent": PHONE, "X-Forwarded-For": peer}
    async with gw.session.get(f"{gw.url}/c/{token}", headers=headers, allow_redirects=False) as opened:
        await opened.read()
        return opened


async def verify(gw: Running, token: object) -> tuple[int, dict[str, object]]:
    answer = await gw.post("/v1/claims/verify", {"token": token})
    return answer.status, await answer.json()


async def test_a_claim_is_valid_once_then_refused_and_counted(start_gateway: GatewayStarter) -> None:
    async with start_gateway(ENV) as gw:
        message_id, token = await sent_link(gw)
        opened = await open_link(gw, token)
        assert opened.status == 302
        location = urlsplit(opened.headers["Location"])
        query = parse_qs(location.query)
        assert location.netloc == "shop.example.com" and query["utm_campaign"] == ["coupon"]
        claim = query["claim"][0]
        assert "+86" not in claim and "13812345678" not in claim
        again = await open_link(gw, token, peer="198.51.100.9")  # a forwarded link gets the same token
        assert parse_qs(urlsplit(again.headers["Location"]).query)["claim"] == [claim]

        assert await verify(gw, claim) == (200, {"result": "valid", "message_id": message_id, "campaign": "coupon"})
        assert await verify(gw, claim) == (200, {"result": "claimed", "message_id": message_id, "campaign": "coupon"})
        assert (await verify(gw, claim[:-2]))[1] == {"result": "forged"}
        payload, mac = claim.split(".")
        assert (await verify(gw, f"{payload[:-4]}AAAA.{mac}"))[1] == {"result": "forged"}
        assert (await verify(gw, claim.split(".")[0]))[1] == {"result": "forged"}

        secret = (await gw.gateway.store.get_or_create_secret("claim_tokens")).encode()
        stale = mint(secret, Claim(message_id, "coupon", int(time.time()) - 1))
        assert (await verify(gw, stale))[1]["result"] == "expired"
        elsewhere = mint(secret, Claim(message_id, "other-campaign", int(time.time()) + 60))
        assert (await verify(gw, elsewhere))[1] == {"result": "forged"}

        report = await (await gw.get("/v1/reports/campaigns/coupon")).json()
        assert (report["totals"]["claims_verified"], report["totals"]["claims_refused"]) == (1, 1)


async def test_not_a_token_is_a_422_naming_it_and_claims_nothing(start_gateway: GatewayStarter) -> None:
    async with start_gateway(ENV) as gw:
        for body in ({"token": ""}, {"token": "a b"}, {"token": 5}, {}, {"token": "x" * 1025}):
            answer = await gw.post("/v1/claims/verify", body)
            assert answer.status == 422, await answer.text()
            assert [e["field"] for e in (await answer.json())["errors"]] == ["/token"], body
        assert await gw.count("claims") == 0


async def test_clicks_are_rate_limited_per_client_ip(start_gateway: GatewayStarter) -> None:
    env = {**ENV, "GATEWAY_LINKS__CLICKS_PER_IP_PER_SECOND": "0.5", "GATEWAY_LINKS__CLICK_BURST": "2"}
    async with start_gateway(env) as gw:
        _, token = await sent_link(gw)
        assert [(await open_link(gw, token)).status for _ in range(2)] == [302, 302]
        refused = await open_link(gw, token)
        assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
        assert (await open_link(gw, "zzzzzzzzzz")).status == 429  # counted before the token is looked at
        assert (await open_link(gw, token, peer="198.51.100.9")).status == 302  # another address
        await gw.gateway.store.flush_clicks()
        assert await gw.count("clicks") == 3  # the refused ones recorded nothing


async def test_a_forwarded_for_header_from_an_untrusted_peer_does_not_escape_the_limit(
    start_gateway: GatewayStarter,
) -> None:
    env = {**ENV, "GATEWAY_LINKS__CLICKS_PER_IP_PER_SECOND": "0.5", "GATEWAY_LINKS__CLICK_BURST": "2"}
    env["GATEWAY_LINKS__TRUSTED_PROXIES"] = "[]"  # the test client connects straight, not through a proxy
    async with start_gateway(env) as gw:
        _, token = await sent_link(gw)
        statuses = [(await open_link(gw, token, peer=f"198.51.100.{n}")).status for n in range(4)]
        assert statuses == [302, 302, 429, 429]  # a new header each time, the same connecting address
        # Through a trusted proxy (the loopback, by default) the right-most hop is the client, not
        # whatever the client wrote before it.
    async with start_gateway({**env, "GATEWAY_LINKS__TRUSTED_PROXIES": '["127.0.0.1"]'}) as gw:
        _, token = await sent_link(gw)
        spoofed = [(await open_link(gw, token, peer=f"10.0.0.{n}, 203.0.113.7")).status for n in range(3)]
        assert spoofed == [302, 302, 429]
        assert (await open_link(gw, token, peer="198.51.100.9")).status == 302


async def test_clicks_queued_before_their_commit_are_all_recorded(start_gateway: GatewayStarter) -> None:
    async with start_gateway({**ENV, "GATEWAY_LINKS__WAIT_FOR_CLICK_COMMIT": "false"}) as gw:
        _, token = await sent_link(gw)
        opened = await asyncio.gather(*(open_link(gw, token, peer=f"198.51.100.{n}") for n in range(20)))
        assert [o.status for o in opened] == [302] * 20
        await gw.gateway.store.flush_clicks()
        assert await gw.count("clicks") == 20


async def test_queued_clicks_gather_for_the_commit_interval(
    start_gateway: GatewayStarter,
) -> None:
    env = {**ENV, "GATEWAY_LINKS__WAIT_FOR_CLICK_COMMIT": "false", "GATEWAY_LINKS__QUEUED_CLICK_COMMIT_MS": "10000"}
    async with start_gateway(env) as gw:
        _, token = await sent_link(gw)
        opened = await asyncio.gather(*(open_link(gw, token, peer=f"198.51.100.{n}") for n in range(5)))
        assert [o.status for o in opened] == [302] * 5
        assert await gw.count("clicks") == 0  # answered, still gathering for their commit
        await gw.gateway.store.flush_clicks()
        assert await gw.count("clicks") == 5


async def test_clicks_committed_without_waiting_for_the_disk_are_all_recorded_and_shown(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway({**ENV, "GATEWAY_LINKS__CLICK_SYNCHRONOUS": "NORMAL"}) as gw:
        message_id, token = await sent_link(gw)
        opened = await asyncio.gather(*(open_link(gw, token, peer=f"198.51.100.{n}") for n in range(20)))
        assert [o.status for o in opened] == [302] * 20
        assert await gw.count("clicks") == 20  # each 302 was sent after its click's commit
        message = await (await gw.get(f"/v1/messages/{message_id}")).json()
        assert len(message["clicks"]) == 20

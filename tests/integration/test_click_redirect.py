"""`/c/{token}` is answered before the router (api/server.py): whichever way a click takes, the
person sees the same answer and the problems are the API's problems."""

from __future__ import annotations

import aiohttp

from tests.harness import SMS, GatewayStarter, Running

PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"
PROBLEM = "application/problem+json"


async def _token(gw: Running) -> str:
    answer = await gw.post("/v1/messages", {**SMS, "content": {"text": "Yours: https://shop.example.com/x"}})
    message = await gw.wait_status((await answer.json())["id"], {"sent", "delivered"})
    return str(message["links"][0]["short_url"].rsplit("/", 1)[1])


async def test_a_click_answers_alike_by_either_way_and_refusals_are_problems(start_gateway: GatewayStarter) -> None:
    env = {"GATEWAY_LINKS__CLICKS_PER_IP_PER_SECOND": "1", "GATEWAY_LINKS__CLICK_BURST": "4"}
    async with start_gateway(env) as gw, aiohttp.ClientSession() as browser:
        token = await _token(gw)
        phone = {"User-Agent": PHONE}

        async with browser.get(f"{gw.url}/c/{token}", headers=phone, allow_redirects=False) as plain:
            assert plain.status == 302 and plain.headers["Cache-Control"] == "no-store"
            destination = plain.headers["Location"]
        async with browser.get(f"{gw.url}/c/{token}?from=qr", headers=phone, allow_redirects=False) as with_query:
            assert (with_query.status, with_query.headers["Location"]) == (302, destination)
        async with browser.head(f"{gw.url}/c/{token}", headers=phone, allow_redirects=False) as probe:
            assert (probe.status, probe.headers["Location"]) == (302, destination)
        link = await gw.gateway.store.find_link(token)
        assert link is not None
        clicks = await gw.gateway.store.message_clicks(link["message_id"])
        assert [click["automated"] for click in clicks] == [False, False, True]  # a HEAD is a probe

        async with browser.get(f"{gw.url}/c/AAAAAAAAAA", allow_redirects=False) as unknown:
            assert (unknown.status, unknown.content_type) == (404, PROBLEM)
            assert await unknown.json() == {
                "type": "/problems/not-found",
                "title": "Not Found",
                "status": 404,
                "detail": "this link does not exist",
                "instance": "/c/AAAAAAAAAA",
            }
        async with browser.post(f"{gw.url}/c/{token}", allow_redirects=False) as posted:
            assert (posted.status, posted.content_type) == (405, PROBLEM)
            assert "GET" in posted.headers["Allow"]
        async with browser.get(f"{gw.url}/c/{token}", allow_redirects=False) as limited:
            assert (limited.status, limited.content_type) == (429, PROBLEM)
            assert int(limited.headers["Retry-After"]) >= 1
            assert (await limited.json())["instance"] == f"/c/{token}"
        assert await gw.count("clicks") == 3

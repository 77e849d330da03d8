"""What the console tests share: a seeded mix of traffic through the real API and the sandbox, and
a signed-in HTTP client of the console."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from tests.harness import API_KEY, Running

# The sandbox refuses 30% of sends (transient, rate limited or invalid number, from a fixed seed),
# reports 20% of the rest undelivered, and each job gets two attempts: a mix of every provider failure.
FAILING_SANDBOX = {
    "GATEWAY_SANDBOX__FAILURE_RATE": "0.3",
    "GATEWAY_SANDBOX__DELIVERY_RATE": "0.8",
    "GATEWAY_SANDBOX__SEED": "20261123",
    "GATEWAY_WORKER__MAX_ATTEMPTS": "2",
    "GATEWAY_WORKER__BACKOFF_BASE_SECONDS": "0.01",
    "GATEWAY_WORKER__BACKOFF_MAX_SECONDS": "0.05",
    "GATEWAY_WORKER__RETRY_BUDGET_FLOOR": "10000",
}
PHONE_BROWSER = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
UNSETTLED = ("queued", "deferred", "sending", "sent")


async def seeded_traffic(gw: Running, messages: int = 60) -> list[str]:
    """Campaign `spring` (variants A and B, SMS and e-mail) plus opted-out recipients, run to the end:
    every message delivered, undelivered, failed or suppressed. Some delivered ones are clicked by a
    person and converted. Returns the message ids."""
    opted_out = "+8613900000001"
    await gw.post("/v1/suppressions", {"address": opted_out})
    jobs = []
    for n in range(messages):
        variant = "AB"[n % 2]
        if n % 5 == 4:
            job: dict[str, Any] = {
                "channel": "email",
                "to": f"user{n}@example.com",
                "content": {"subject": "Spring", "text": f"Spring sale https://shop.example.com/s{n} now"},
            }
        else:
            to = opted_out if n % 10 == 3 else f"+86138{n:08d}"
            job = {"channel": "sms", "to": to, "content": {"text": f"Spring sale https://shop.example.com/s{n} now"}}
        jobs.append({**job, "category": "transactional", "campaign": "spring", "variant": variant})
    jobs.append({"channel": "sms", "to": "+8613812345678", "content": {"text": "Your code is 1234"}})
    ids = []
    for job in jobs:
        response = await gw.post("/v1/messages", job)
        assert response.status == 202, await response.text()
        ids.append((await response.json())["id"])

    async def settled() -> bool:
        counts = await gw.gateway.store.status_counts(UNSETTLED)
        return not any(counts.values())

    await gw.wait_for(settled, within=30)
    delivered = (await (await gw.get("/v1/messages?campaign=spring&status=delivered&limit=500")).json())["data"]
    async with aiohttp.ClientSession() as browser:
        for message in delivered[::3]:
            detail = await (await gw.get(f"/v1/messages/{message['id']}")).json()
            for link in detail["links"]:
                async with browser.get(
                    link["short_url"], headers={"User-Agent": PHONE_BROWSER}, allow_redirects=False
                ) as click:
                    assert click.status == 302
        for message in delivered[::6]:
            response = await gw.post("/v1/conversions", {"message_id": message["id"], "event": "purchase", "value": 10})
            assert response.status == 201
    await gw.gateway.store.flush_outcomes()
    return ids


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Console:
    """An HTTP client of the console that keeps its cookie, as a browser would."""

    def __init__(self, gw: Running) -> None:
        self.url = gw.url
        # The gateway listens on 127.0.0.1: a cookie jar keeps cookies of an IP address only when "unsafe".
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def __aenter__(self) -> Console:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.session.get(self.url + path, **kwargs) as response:
            text = await response.text()
            found = CSRF.search(text)
            if found:
                self.csrf = found.group(1)
            return response.status, text

    async def post(self, path: str, data: dict[str, str], *, csrf: bool = True) -> tuple[int, str, str]:
        body = {**data, "csrf": self.csrf} if csrf else data
        async with self.session.post(self.url + path, data=body) as response:
            text = await response.text()
            found = CSRF.search(text)
            if found:
                self.csrf = found.group(1)
            return response.status, str(response.url.path), text

    async def sign_in(self, key: str = API_KEY) -> tuple[int, str, str]:
        await self.get("/ui/login")
        return await self.post("/ui/login", {"key": key, "next": "/ui/failures"})


async def requeueable_group(gw: Running) -> dict[str, Any]:
    """The largest group of the failure report that a requeue can act on: one the provider failed
    (failed or undelivered; the seeded jobs have no expires_at). The sandbox's draws are seeded,
    but which message gets which depends on timing, so tests pick the group from the report."""
    report = await (await gw.get("/v1/reports/failures")).json()
    groups = [g for g in report["groups"] if g["reason"].startswith("provider.")]
    assert groups, report
    return dict(groups[0])

"""Every console page loads without a failed request: no 404 for an asset or the icon a browser asks
for by itself, no error in the browser's console."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from playwright.async_api import Browser, ConsoleMessage, Page, Response

from tests.console import FAILING_SANDBOX, requeueable_group, seeded_traffic
from tests.harness import API_KEY, running_gateway
from tests.integration.test_console_templates import TEMPLATE


def watch(page: Page) -> list[str]:
    """What went wrong while pages loaded: console errors and responses of 400 or more."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error on {page.url}: {message.text} ({message.location.get('url')})")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            problems.append(f"{response.status} for {response.url} on {page.url}")

    page.on("console", on_console)
    page.on("response", on_response)
    return problems


async def test_no_console_page_has_a_failed_request(browser: Browser, tmp_path: Path) -> None:
    async with running_gateway(tmp_path, FAILING_SANDBOX) as gw:
        ids = await seeded_traffic(gw, messages=20)
        group = await requeueable_group(gw)
        number = await (await gw.post("/v1/numbers", {"pool": "us-sms", "sender": "+14155550100"})).json()
        assert (await gw.post("/v1/templates", TEMPLATE)).status == 201
        assert (await gw.post("/v1/templates/order_shipped/publish", {})).status == 201
        page = await browser.new_page()
        problems = watch(page)

        await page.goto(gw.url + "/ui/login")
        await page.wait_for_load_state("networkidle")
        await page.get_by_label("API key").fill(API_KEY)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_load_state("networkidle")
        group_query = urlencode({"reason": group["reason"], "provider": group["provider"]})
        pages = [
            "/ui/failures",
            f"/ui/failures/group?{group_query}",
            f"/ui/failures/requeue?{group_query}",
            "/ui/campaigns",
            "/ui/campaigns/spring",
            "/ui/messages",
            f"/ui/messages/{ids[0]}",
            "/ui/live",
            "/ui/numbers",
            f"/ui/numbers/{number['id']}",
            "/ui/templates",
            "/ui/templates/order_shipped",
            "/ui/templates/order_shipped/preview",
            "/ui/webhooks",
        ]
        for path in pages:
            response = await page.goto(gw.url + path)
            assert response is not None and response.status == 200, path
            await page.wait_for_load_state("networkidle")
        assert problems == []

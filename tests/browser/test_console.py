"""What a person sees in the console, in a real browser: sign in, every page, a requeue previewed
and done. Each step leaves a screenshot in tests/artifacts/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from gateway.domain.failures import advice_for
from tests.console import FAILING_SANDBOX, requeueable_group, seeded_traffic
from tests.harness import API_KEY, Running, running_gateway


async def sign_in(page: Page, gw: Running, key: str = API_KEY) -> None:
    await page.goto(gw.url + "/ui/failures")
    await expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def shot(page: Page, directory: Path, name: str) -> None:
    await page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


async def test_on_call_reads_every_page(browser: Browser, screenshots: Path, tmp_path: Path) -> None:
    async with running_gateway(tmp_path, FAILING_SANDBOX) as gw:
        await seeded_traffic(gw, messages=60)
        report = await (await gw.get("/v1/reports/failures")).json()
        page = await browser.new_page(viewport={"width": 1400, "height": 900})

        await page.goto(gw.url + "/ui/failures")
        await expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
        await shot(page, screenshots, "01-login")
        await sign_in(page, gw)

        await expect(page).to_have_url(re.compile(r"/ui/failures$"))
        await expect(page.get_by_role("heading", name="Failures")).to_be_visible()
        await expect(page.locator("#failure-total")).to_have_text(str(report["total"]))
        await expect(page.locator("#failure-groups tr.group")).to_have_count(len(report["groups"]))
        await expect(page.locator("svg.chart rect[fill]").first).to_be_visible()
        await shot(page, screenshots, "02-failures")

        await page.get_by_role("link", name="reason", exact=True).click()
        await expect(page).to_have_url(re.compile(r"sort=reason&dir=asc"))
        reasons = await page.locator('#failure-groups td[data-dim="reason"]').all_inner_texts()
        assert reasons == sorted(reasons)

        row = page.locator("#failure-groups tr.group").first
        reason = await row.locator('td[data-dim="reason"]').inner_text()
        advice = advice_for(reason)
        await expect(row.locator("td.advice")).to_have_text(advice.action)
        await row.get_by_role("link", name="messages").click()
        await expect(page.get_by_role("heading", name="Failure group")).to_be_visible()
        verdict = "A retry helps." if advice.retry_helps else "A retry does not help."
        await expect(page.get_by_text(verdict)).to_be_visible()
        samples = page.locator("#samples tbody tr")
        assert await samples.count() > 0
        await shot(page, screenshots, "03-failure-group")

        await samples.first.get_by_role("link").click()
        await expect(page.locator("h1 .status")).to_have_text(re.compile("failed|undelivered|suppressed"))
        timeline = page.locator("#timeline li")
        await expect(timeline.first).to_contain_text("queued accepted")
        await expect(timeline.last).to_contain_text(reason)
        await shot(page, screenshots, "04-message")

        await page.get_by_role("link", name="Campaigns", exact=True).click()
        await page.get_by_role("link", name="spring").click()
        await expect(page.get_by_role("heading", name="Campaign spring")).to_be_visible()
        campaign = await (await gw.get("/v1/reports/campaigns/spring")).json()
        totals = page.locator("#campaign-groups tfoot td")
        await expect(totals.nth(1)).to_have_text(str(campaign["totals"]["sent"]))
        await expect(totals.nth(2)).to_have_text(str(campaign["totals"]["delivered"]))
        await expect(totals.nth(7)).to_have_text(str(campaign["totals"]["conversions"]))
        await expect(page.locator("svg.funnel")).to_have_count(3)  # all, variant A, variant B
        await shot(page, screenshots, "05-campaign")
        await page.get_by_role("link", name="variant and channel").click()
        await expect(page.locator("#campaign-groups tbody tr")).to_have_count(4)  # A/B x sms/email

        await page.get_by_role("link", name="Delivery log", exact=True).click()
        await page.get_by_label("campaign").fill("spring")
        await page.get_by_label("status").select_option("delivered")
        await page.get_by_role("button", name="Search").click()
        delivered = await (await gw.get("/v1/messages?campaign=spring&status=delivered&limit=500")).json()
        await expect(page.locator("#log tbody tr")).to_have_count(min(len(delivered["data"]), 50))
        await shot(page, screenshots, "06-delivery-log")
        async with page.expect_download() as download_info:
            await page.locator("#export-csv").click()
        download = await download_info.value
        saved = tmp_path / "export.csv"
        await download.save_as(saved)
        exported = saved.read_bytes().decode().splitlines()
        assert exported[0].startswith("id,created_at,updated_at,status,reason")
        assert len(exported) == 1 + len(delivered["data"])

        await page.get_by_role("link", name="Live", exact=True).click()
        await expect(page.locator('#depth [data-status="queued"]')).to_have_text("0")
        await expect(page.locator("#throughput tbody tr")).to_have_count(15)
        await shot(page, screenshots, "07-live")


async def test_a_requeue_is_previewed_then_done(browser: Browser, screenshots: Path, tmp_path: Path) -> None:
    async with running_gateway(tmp_path, FAILING_SANDBOX) as gw:
        await seeded_traffic(gw, messages=60)
        group = await requeueable_group(gw)
        sample = group["sample_ids"][0]
        status_before = (await (await gw.get(f"/v1/messages/{sample}")).json())["status"]
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        await sign_in(page, gw)

        reason_cell = page.locator('td[data-dim="reason"]', has_text=re.compile(f"^{re.escape(group['reason'])}$"))
        row = page.locator("#failure-groups tr.group", has=reason_cell)
        await row.get_by_role("link", name="preview requeue").click()
        await expect(page.get_by_text("This is a dry run: nothing has been changed yet.")).to_be_visible()
        await expect(page.locator("#requeueable")).to_have_text(str(group["count"]))
        await shot(page, screenshots, "08-requeue-preview")
        after_preview = await (await gw.get(f"/v1/messages/{sample}")).json()
        assert after_preview["status"] == status_before, "a preview changes nothing"

        await page.get_by_role("button", name=f"Requeue {group['count']} messages").click()
        await expect(page.locator("#requeued")).to_have_text(str(group["count"]))
        await shot(page, screenshots, "09-requeue-done")
        requeued = await (await gw.get(f"/v1/messages/{sample}")).json()
        assert "requeued" in [e["reason"] for e in requeued["events"]]


async def test_a_wrong_key_is_told_and_sign_out_ends_the_session(
    browser: Browser, screenshots: Path, tmp_path: Path
) -> None:
    async with running_gateway(tmp_path) as gw:
        page = await browser.new_page()
        await sign_in(page, gw, "gw_wrong_key-typed-at-3am")
        await expect(page.get_by_role("alert")).to_have_text("That key is unknown, revoked or expired.")
        await shot(page, screenshots, "10-login-refused")
        await page.get_by_label("API key").fill(API_KEY)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Failures")).to_be_visible()
        await expect(page.get_by_text("No failures in this window.")).to_be_visible()
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
        await page.goto(gw.url + "/ui/messages")
        await expect(page).to_have_url(re.compile(r"/ui/login\?next="))


async def test_on_call_flags_a_number_and_sees_it_out_of_service(
    browser: Browser, screenshots: Path, tmp_path: Path
) -> None:
    async with running_gateway(tmp_path) as gw:
        numbers = [
            await (await gw.post("/v1/numbers", {"pool": "us-sms", "sender": f"+1415555010{n}"})).json()
            for n in range(3)
        ]
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        await sign_in(page, gw)
        await page.get_by_role("link", name="Numbers", exact=True).click()
        await expect(page.locator("#numbers tbody tr")).to_have_count(3)
        await expect(page.locator("#pools")).to_contain_text("3 active")
        await shot(page, screenshots, "11-numbers")

        await page.get_by_role("link", name=numbers[1]["sender"]).click()
        await expect(page.locator("#state")).to_have_text("active")
        await page.get_by_label("why").fill("carrier complaint, ticket 4711")
        await page.get_by_role("button", name="Flag (take out of service)").click()
        await expect(page.locator("#state")).to_have_text("quarantined")
        await expect(page.locator("#state-reason")).to_contain_text("operator.flagged")
        await expect(page.locator("#evidence li").first).to_contain_text("active → quarantined")
        await expect(page.locator("#evidence li").first).to_contain_text("reason=carrier complaint, ticket 4711")
        await shot(page, screenshots, "12-number-flagged")
        api = await (await gw.get(f"/v1/numbers/{numbers[1]['id']}")).json()
        assert api["state"] == "quarantined"

        await page.get_by_role("link", name="← numbers").click()
        await expect(page.locator("#pools")).to_contain_text("2 active")
        await expect(page.locator("#pools")).to_contain_text("1 quarantined")
        await page.get_by_role("link", name=numbers[1]["sender"]).click()
        await page.get_by_role("button", name="Restore").click()
        await expect(page.locator("#state")).to_have_text("active")

"""The console over HTTP on both stores: its numbers are the API's, its forms refuse forged posts,
a revoked key ends the session, and a tenant sees only its own messages."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import orjson

from gateway.api.auth import key_row, new_key
from tests.console import FAILING_SANDBOX, Console, requeueable_group, seeded_traffic
from tests.harness import GatewayStarter, Running

GROUP_ROW = re.compile(r'<tr class="group">(.*?)</tr>', re.S)
DIM_CELL = re.compile(r'<td data-dim="(\w+)">(.*?)</td>', re.S)
COUNT_CELL = re.compile(r'<td class="num count">(\d+)</td>')
EMPTY = '<span class="none">none</span>'


def page_groups(page: str) -> dict[tuple[Any, ...], int]:
    """(dimension values) -> count, as the failures page shows them."""
    groups = {}
    for row in GROUP_ROW.findall(page):
        dims = tuple(None if value == EMPTY else html.unescape(value) for _, value in DIM_CELL.findall(row))
        count = COUNT_CELL.search(row)
        assert count is not None, row
        groups[dims] = int(count.group(1))
    return groups


async def add_key(gw: Running, tenant: str, scopes: tuple[str, ...]) -> tuple[str, str]:
    key, key_id = new_key()
    await gw.gateway.store.ensure_tenant(tenant)
    await gw.gateway.store.add_api_key(key_row(key, key_id, tenant, "console test", scopes))
    return key, key_id


async def test_the_failures_page_counts_what_the_failure_report_counts(start_gateway: GatewayStarter) -> None:
    async with start_gateway(FAILING_SANDBOX) as gw, Console(gw) as console:
        await seeded_traffic(gw, messages=80)
        await console.sign_in()
        window = {"since": "2020-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
        for group_by in ("reason,provider,error_code", "reason", "campaign,channel", "status,error_code"):
            report = await (await gw.get("/v1/reports/failures", params={**window, "group_by": group_by})).json()
            status, page = await console.get("/ui/failures", params={**window, "group_by": group_by})
            assert status == 200
            dims = group_by.split(",")
            expected = {tuple(g[d] for d in dims): g["count"] for g in report["groups"]}
            assert page_groups(page) == expected
            assert f'<strong id="failure-total">{report["total"]}</strong>' in page
        full = await (await gw.get("/v1/reports/failures", params={**window, "group_by": "reason"})).json()
        reasons = {g["reason"] for g in full["groups"]}
        # A mix: opt-outs decided here, and failures the provider reported (refusals, undelivered receipts).
        assert "suppressed.opt_out" in reasons
        assert len({r for r in reasons if r.startswith("provider.")}) >= 2, reasons


async def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(start_gateway: GatewayStarter) -> None:
    async with start_gateway(FAILING_SANDBOX) as gw, Console(gw) as console:
        await seeded_traffic(gw, messages=30)
        before = await (await gw.get("/v1/reports/failures", params={"group_by": "status"})).json()
        status, _, page = await console.post("/ui/login", {"key": "test-key-0123456789abcdef"}, csrf=False)
        assert status == 403 and "CSRF token is missing or stale" in page
        status, _, _ = await console.sign_in()
        assert status == 200
        requeue = {"window": "24h", "reason": "provider.permanent.recipient_invalid", "status": "failed"}
        status, _, page = await console.post("/ui/failures/requeue", requeue, csrf=False)
        assert status == 403 and "Nothing was changed" in page
        status, _, page = await console.post("/ui/failures/requeue", {**requeue, "csrf": "forged"}, csrf=False)
        assert status == 403
        after = await (await gw.get("/v1/reports/failures", params={"group_by": "status"})).json()
        assert after["groups"] == before["groups"]
        status, _, page = await console.post("/ui/logout", {}, csrf=False)
        assert status == 403
        assert (await console.get("/ui/failures"))[0] == 200, "still signed in"


async def test_the_dry_run_changes_nothing_and_the_requeue_puts_messages_back(start_gateway: GatewayStarter) -> None:
    async with start_gateway(FAILING_SANDBOX) as gw, Console(gw) as console:
        await seeded_traffic(gw, messages=40)
        await console.sign_in()
        group = await requeueable_group(gw)
        sample = group["sample_ids"][0]
        status_before = (await (await gw.get(f"/v1/messages/{sample}")).json())["status"]
        query = {
            "window": "24h",
            "reason": group["reason"],
            "provider": group["provider"],
            "error_code": group["error_code"],
        }
        status, page = await console.get("/ui/failures/requeue", params=query)
        assert status == 200 and "This is a dry run" in page
        assert f'<td class="num" id="requeueable">{group["count"]}</td>' in page
        assert (await (await gw.get(f"/v1/messages/{sample}")).json())["status"] == status_before
        status, _, page = await console.post("/ui/failures/requeue", query)
        assert status == 200
        assert f'<strong id="requeued">{group["count"]}</strong> messages are back in the queue' in page
        events = (await (await gw.get(f"/v1/messages/{sample}")).json())["events"]
        assert "requeued" in [e["reason"] for e in events]


async def test_a_revoked_key_ends_the_session(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw, Console(gw) as console:
        key, key_id = await add_key(gw, "default", ("read", "report"))
        status, path, _ = await console.sign_in(key)
        assert (status, path) == (200, "/ui/failures")
        await gw.gateway.store.revoke_api_key(key_id)

        async def signed_out() -> str | None:
            async with console.session.get(gw.url + "/ui/failures", allow_redirects=False) as response:
                return response.headers["Location"] if response.status == 303 else None

        # Keys are cached for a few seconds; within that the session is checked against the revoked key.
        location = await gw.wait_for(signed_out, within=10)
        assert location == "/ui/login?ended=1&next=%2Fui%2Ffailures"
        status, page = await console.get(location)
        assert status == 200 and "Your session ended" in page and 'name="key"' in page


async def test_sign_in_refuses_bad_keys_and_pages_need_a_session(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw, Console(gw) as console:
        async with console.session.get(gw.url + "/ui/messages?to=%2B86", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/ui/login?next=%2Fui%2Fmessages%3Fto%3D%252B86"
        status, _, page = await console.sign_in("gw_nope_not-a-key-at-all")
        assert status == 401 and "That key is unknown, revoked or expired." in page
        send_only, _ = await add_key(gw, "default", ("send",))
        status, _, page = await console.sign_in(send_only)
        assert status == 403 and "neither the &#39;read&#39; nor the &#39;report&#39; scope" in page
        read_only, _ = await add_key(gw, "default", ("read",))
        await console.get("/ui/login")
        status, path, _ = await console.post("/ui/login", {"key": read_only, "next": "https://elsewhere.example/"})
        # Never sent to another site after sign-in; this key may not see failures, so: a 403 page.
        assert (status, path) == (403, "/ui/failures")
        status, page = await console.get("/ui/failures")
        assert status == 403 and "lacks the &#39;report&#39; scope" in page
        assert (await console.get("/ui/messages"))[0] == 200


async def test_a_tenant_sees_only_its_own_messages(start_gateway: GatewayStarter) -> None:
    async with start_gateway(FAILING_SANDBOX) as gw, Console(gw) as console:
        ids = await seeded_traffic(gw, messages=20)
        other, _ = await add_key(gw, "acme", ("read", "report", "send"))
        await console.sign_in(other)
        _, page = await console.get("/ui/failures", params={"window": "30d"})
        assert page_groups(page) == {} and "No failures in this window." in page
        status, page = await console.get(f"/ui/messages/{ids[0]}")
        assert status == 404 and "No such message" in page
        _, page = await console.get("/ui/messages")
        assert "No message matches." in page and ids[0] not in page
        assert (await console.get("/ui/campaigns/spring"))[0] == 404
        _, page = await console.get("/ui/campaigns")
        assert "No message names a campaign yet." in page
        _, exported = await console.get("/ui/messages/export", params={"format": "ndjson"})
        assert exported == ""
        status, _, page = await console.post(
            "/ui/failures/requeue", {"window": "30d", "reason": "provider.permanent.recipient_invalid"}
        )
        assert '<strong id="requeued">0</strong>' in page


async def test_the_export_is_the_delivery_log_of_the_filter(start_gateway: GatewayStarter) -> None:
    async with start_gateway(FAILING_SANDBOX) as gw, Console(gw) as console:
        await seeded_traffic(gw, messages=30)
        await console.sign_in()
        api = (await (await gw.get("/v1/messages", params={"campaign": "spring", "limit": "500"})).json())["data"]
        _, ndjson = await console.get("/ui/messages/export", params={"format": "ndjson", "campaign": "spring"})
        assert [orjson.loads(line) for line in ndjson.splitlines()] == api
        _, text = await console.get("/ui/messages/export", params={"format": "csv", "status": "failed"})
        rows = list(csv.DictReader(io.StringIO(text)))
        failed = (await (await gw.get("/v1/messages", params={"status": "failed", "limit": "500"})).json())["data"]
        assert [r["id"] for r in rows] == [m["id"] for m in failed]
        assert all(r["status"] == "failed" and r["reason"] for r in rows)
        status, page = await console.get("/ui/messages/export", params={"format": "xml"})
        assert status == 400 and "format must be csv or ndjson" in page
        status, page = await console.get("/ui/messages", params={"since": "yesterday"})
        assert status == 200 and "<code>since</code> must be a date and time" in page


async def test_a_key_that_may_not_send_previews_but_cannot_requeue(start_gateway: GatewayStarter) -> None:
    async with start_gateway(FAILING_SANDBOX) as gw, Console(gw) as console:
        await seeded_traffic(gw, messages=30)
        looker, _ = await add_key(gw, "default", ("read", "report"))
        await console.sign_in(looker)
        query = {"window": "24h", "reason": "suppressed.opt_out"}
        status, page = await console.get("/ui/failures/requeue", params=query)
        # Opted-out recipients are never requeued: the preview says so, whoever asks.
        assert status == 200 and "Nothing here can be requeued." in page
        assert '<td class="num" id="matched">3</td>' in page
        before = await (await gw.get("/v1/reports/failures", params={"group_by": "status"})).json()
        status, _, page = await console.post("/ui/failures/requeue", query)
        assert status == 403 and "lacks the &#39;send&#39; scope" in page
        after = await (await gw.get("/v1/reports/failures", params={"group_by": "status"})).json()
        assert after["groups"] == before["groups"]


NUMBER = {"pool": "us-sms", "sender": "+14155550101", "countries": ["us"], "categories": ["marketing"]}


async def test_numbers_are_listed_flagged_with_a_reason_and_restored(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw, Console(gw) as console:
        number = await (await gw.post("/v1/numbers", NUMBER)).json()
        await gw.post("/v1/numbers", {**NUMBER, "sender": "+14155550102"})
        looker, _ = await add_key(gw, "acme", ("read", "report"))
        await console.sign_in(looker)
        status, page = await console.get("/ui/numbers")
        assert status == 200 and page.count('<span class="status n-active">active</span>') == 2
        status, page = await console.get(f"/ui/numbers/{number['id']}")
        assert "needs a key with the <code>admin</code> scope" in page and 'id="flag"' not in page
        status, _, page = await console.post(f"/ui/numbers/{number['id']}/flag", {"reason": "complaint"})
        assert status == 403 and "lacks the &#39;admin&#39; scope" in page

        await console.post("/ui/logout", {})
        await console.sign_in()
        status, _, page = await console.post(f"/ui/numbers/{number['id']}/flag", {"reason": "x"}, csrf=False)
        assert status == 403 and "CSRF" in page
        status, _, page = await console.post(f"/ui/numbers/{number['id']}/flag", {"reason": ""})
        assert "Say why the number is flagged" in page
        assert (await (await gw.get(f"/v1/numbers/{number['id']}")).json())["state"] == "active", "nothing changed"

        status, path, page = await console.post(f"/ui/numbers/{number['id']}/flag", {"reason": "carrier ticket 4711"})
        assert (status, path) == (200, f"/ui/numbers/{number['id']}")
        assert '<span class="status n-quarantined" id="state">quarantined</span>' in page
        flagged = (await (await gw.get(f"/v1/numbers/{number['id']}")).json())["events"][0]
        assert (flagged["to"], flagged["reason"]) == ("quarantined", "operator.flagged")
        assert flagged["evidence"] == {"reason": "carrier ticket 4711"}
        assert flagged["actor"].startswith("operator:")
        assert "reason=carrier ticket 4711" in page  # the evidence, on the page
        status, _, page = await console.post(f"/ui/numbers/{number['id']}/restore", {})
        assert '<span class="status n-active" id="state">active</span>' in page
        _, page = await console.get("/ui/numbers", params={"state": "quarantined"})
        assert "No sender number matches." in page

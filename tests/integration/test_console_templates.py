"""The console's template pages over HTTP on both stores: the list, a template's versions with the
diff of two of them per channel body, and the preview with each channel's findings."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.console import Console
from tests.harness import GatewayStarter, Running
from tests.integration.test_console import add_key

TEMPLATE: dict[str, Any] = {
    "name": "order_shipped",
    "description": "parcel left the warehouse",
    "variables": {
        "name": {"type": "string", "required": True, "max_length": 20, "example": "张三"},
        "url": {"type": "url", "required": True, "example": "https://shop.example.com/o/1"},
    },
    "channels": {
        "sms": {"text": "{{ name }}，您的订单已发货 {{ url }}"},
        "push": {"title": "订单已发货", "body": "{{ name }}，点开查看物流"},
    },
    "locales": {"en": {"sms": {"text": "{{ name }}, your order has shipped {{ url }}"}}},
}
SECTION = re.compile(r'<section class="diff( changed)?" data-section="([^"]+)">(.*?)</section>', re.S)
PREVIEW = re.compile(r'<section class="preview" data-channel="([^"]+)">(.*?)</section>', re.S)
TAG = re.compile(r"<[^>]+>")


def _text(fragment: str) -> str:
    return html.unescape(TAG.sub("", fragment))


def diff_sections(page: str) -> dict[str, tuple[bool, list[str]]]:
    """section -> (changed, the lines as shown: '- old', '+ new', '  same')."""
    found = {}
    for changed, section, body in SECTION.findall(page):
        pre = body.split("<pre>", 1)[1].split("</pre>", 1)[0]
        found[section] = (bool(changed), [_text(line) for line in pre.splitlines() if line.strip()])
    return found


async def _two_versions(gw: Running) -> None:
    assert (await gw.post("/v1/templates", TEMPLATE)).status == 201
    assert (await gw.post("/v1/templates/order_shipped/publish", {})).status == 201
    changed = {"channels": {**TEMPLATE["channels"], "sms": {"text": "{{ name }}，您的包裹已发出 {{ url }}"}}}
    patched = await gw.session.patch(gw.url + "/v1/templates/order_shipped", json=changed, headers=gw.headers)
    assert patched.status == 200, await patched.text()
    assert (await gw.post("/v1/templates/order_shipped/publish", {})).status == 201


async def test_the_list_and_the_diff_between_two_versions(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw, Console(gw) as console:
        await _two_versions(gw)
        await console.sign_in()
        status, page = await console.get("/ui/templates")
        assert status == 200
        row = re.search(r"<tr>\s*<td><a href=\"/ui/templates/order_shipped\">(.*?)</tr>", page, re.S)
        assert row is not None
        cells = [_text(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
        assert cells == ["parcel left the warehouse", "push, sms", "en", "2", "published", cells[-1]]
        assert 'href="/ui/templates" class="current"' in page  # in the navigation, marked as here

        status, page = await console.get("/ui/templates/order_shipped")
        assert status == 200
        versions = re.findall(r'<tr>\s*<td class="num">(\d+)</td>', page)
        assert versions == ["2", "1"]
        sections = diff_sections(page)  # by default: the latest version against the one before
        assert sections["sms"] == (
            True,
            ["- text: {{ name }}，您的订单已发货 {{ url }}", "+ text: {{ name }}，您的包裹已发出 {{ url }}"],
        )
        assert sections["push"][0] is False and sections["en/sms"][0] is False
        assert sections["variables"][0] is False

        _, page = await console.get("/ui/templates/order_shipped", params={"from": "2", "to": "1"})
        assert diff_sections(page)["sms"][1] == [
            "- text: {{ name }}，您的包裹已发出 {{ url }}",
            "+ text: {{ name }}，您的订单已发货 {{ url }}",
        ]
        status, page = await console.get("/ui/templates/order_shipped", params={"from": "9"})
        assert status == 200
        assert "<code>from</code> must be draft or a version of this template (2, 1)" in page
        assert diff_sections(page)["sms"][0] is True  # the default pair, shown all the same

        history = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td>", page)
        assert history == ["created", "published version 1", "updated", "published version 2"]


async def test_the_preview_shows_each_channel_with_its_findings(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw, Console(gw) as console:
        glued = {**TEMPLATE, "channels": {**TEMPLATE["channels"], "sms": {"text": "{{ name }}点击{{ url }}领取"}}}
        assert (await gw.post("/v1/templates", glued)).status == 201
        await console.sign_in()
        params = '{"name": "李四", "url": "https://shop.example.com/o/9"}'
        status, page = await console.get("/ui/templates/order_shipped/preview", params={"params": params})
        assert status == 200
        channels = {channel: body for channel, body in PREVIEW.findall(page)}
        assert list(channels) == ["sms", "push"]
        assert "李四点击https://shop.example.com/o/9领取" in _text(channels["sms"])
        assert "UCS-2, 1 segment(s)" in _text(channels["sms"])
        finding = re.search(
            r"<tr class=\"f-(\w+)\"><td>\w+</td><td>(\w+)</td><td><code>([^<]+)</code>", channels["sms"]
        )
        assert finding is not None and finding.group(2, 3) == ("link_spacing", "/channels/sms/text")
        assert "李四，点开查看物流" in _text(channels["push"]) and "No finding." in channels["push"]

        _, page = await console.get(
            "/ui/templates/order_shipped/preview", params={"params": '{"name": 5}', "locale": "en"}
        )
        assert "<code>/params/name</code> must be a string" in page
        assert "<code>/params/url</code>" in page  # required, missing
        channels = dict(PREVIEW.findall(page))
        assert "张三, your order has shipped https://shop.example.com/o/1" in _text(channels["sms"])  # examples
        _, page = await console.get("/ui/templates/order_shipped/preview", params={"params": "[1]", "version": "3"})
        assert "<code>params</code> must be a JSON object" in html.unescape(page)
        assert "<code>version</code> must be draft or a version of this template" in page


async def test_template_pages_are_the_tenants_own_and_need_a_session(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        assert (await gw.post("/v1/templates", TEMPLATE)).status == 201
        other, _ = await add_key(gw, "other", ("read",))
        async with Console(gw) as console:
            status, page = await console.get("/ui/templates/order_shipped", allow_redirects=False)
            assert status in (302, 303)
            await console.sign_in(other)
            status, page = await console.get("/ui/templates")
            assert status == 200 and "order_shipped" not in page
            for path in (
                "/ui/templates/order_shipped",
                "/ui/templates/order_shipped/preview",
                "/ui/templates/Bad%20Name",
            ):
                status, page = await console.get(path)
                assert status == 404 and "This tenant has no template" in page, path

"""Real traffic on the sender-number, suppression, blocked-word and content-check rooms conforms to
/openapi.json: what the document allows is taken, what it refuses is refused naming the field, and
every answer has the documented status, media type and shape."""

from __future__ import annotations

from typing import Any

from jsonschema import ValidationError

from tests.harness import GatewayStarter, Running
from tests.integration.test_openapi import Contract


class Traffic:
    def __init__(self, gw: Running, document: dict[str, Any]) -> None:
        self.gw = gw
        self.contract = Contract(document)

    async def call(self, method: str, template: str, path: str | None = None, body: Any = None, **params: str) -> Any:
        """One exchange; its answer must be documented. Returns (status, JSON body or None)."""
        gw = self.gw
        kwargs: dict[str, Any] = {"headers": gw.headers, "params": params}
        if body is not None:
            kwargs["json"] = body
        response = await gw.session.request(method, gw.url + (path or template), **kwargs)
        payload = await response.json(content_type=None) if response.status != 204 else None
        documented = self.contract.document["paths"][template][method]["responses"]
        assert str(response.status) in documented, f"{method} {template} documents no {response.status}"
        if payload is not None:
            self.contract.response(template, method, response.status, response.content_type, payload)
        return response.status, payload

    async def accepted(self, method: str, template: str, path: str | None = None, body: Any = None, **q: str) -> Any:
        if body is not None:
            self.contract.request(template, method, body)
        status, payload = await self.call(method, template, path, body, **q)
        assert 200 <= status < 300, (method, path or template, body, q, payload)
        return payload

    async def refused(
        self, method: str, template: str, field: str, path: str | None = None, body: Any = None, **q: str
    ) -> dict[str, Any]:
        """A request the document refuses is refused by the server too, naming the field."""
        if body is not None:
            try:
                self.contract.request(template, method, body)
            except ValidationError:
                pass
            else:
                raise AssertionError(f"the document allows {body!r}")
        status, problem = await self.call(method, template, path, body, **q)
        assert status in (400, 422), (status, problem)
        assert field in [e["field"] for e in problem["errors"]], problem
        return dict(problem)


async def _traffic(gw: Running) -> Traffic:
    return Traffic(gw, await (await gw.get("/openapi.json")).json())


async def test_number_traffic_conforms_to_the_document(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        t = await _traffic(gw)
        number = await t.accepted("post", "/v1/numbers", body={"pool": "us", "sender": "+14155552671"})
        await t.accepted("post", "/v1/numbers", body={"pool": "us", "sender": "12345", "kind": "short_code"})
        await t.refused("post", "/v1/numbers", "/sender", body={"pool": "us", "sender": "ACME", "kind": "short_code"})
        await t.refused("post", "/v1/numbers", "/countries/0", body={"pool": "us", "sender": "AB", "countries": ["U"]})
        one = f"/v1/numbers/{number['id']}"
        await t.accepted("get", "/v1/numbers", state="active", pool="us")
        await t.refused("get", "/v1/numbers", "state", state="asleep")
        await t.accepted("get", "/v1/numbers/{id}", one)
        patch = {"daily_cap": 500.0, "provider": None, "countries": ["us"]}
        assert (await t.accepted("patch", "/v1/numbers/{id}", one, patch))["daily_cap"] == 500
        await t.refused("patch", "/v1/numbers/{id}", "/daily_cap", one, {"daily_cap": 500.5})
        await t.refused("patch", "/v1/numbers/{id}", "/kind", one, {"kind": None})
        await t.refused("patch", "/v1/numbers/{id}", "/pool", one, {"pool": "elsewhere"})
        await t.refused("post", "/v1/numbers/{id}/flag", "/reason", one + "/flag", {})
        await t.accepted("post", "/v1/numbers/{id}/flag", one + "/flag", {"reason": "vendor report"})
        await t.refused("post", "/v1/numbers/{id}/restore", "/reason", one + "/restore", {"reason": ""})
        await t.accepted("post", "/v1/numbers/{id}/restore", one + "/restore", {"reason": "cleared"})
        await t.refused("post", "/v1/numbers/{id}/retire", "/why", one + "/retire", {"why": "x"})
        assert (await t.accepted("post", "/v1/numbers/{id}/retire", one + "/retire", {}))["state"] == "retired"
        assert (await t.call("post", "/v1/numbers/{id}/flag", one + "/flag", {"reason": "x"}))[0] == 409
        await t.accepted("delete", "/v1/numbers/{id}", one)
        assert (await t.call("get", "/v1/numbers/{id}", one))[0] == 404
        assert await gw.count("numbers") == 1


async def test_suppression_traffic_conforms_to_the_document(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        t = await _traffic(gw)
        both = {"address": "Ann <ann@Example.com>", "user_id": "u-1", "reason": "complaint"}
        assert (await t.accepted("post", "/v1/suppressions", body=both))["address"] == "ann@example.com"
        await t.accepted("post", "/v1/suppressions", body={"address": "device-token-0001", "channel": "push"})
        await t.accepted("post", "/v1/suppressions", body={"address": "+8613812345678", "channel": "voice"})
        await t.refused("post", "/v1/suppressions", "/channel", body={"address": "+8613812345678", "channel": "fax"})
        await t.refused("post", "/v1/suppressions", "/address", body={"reason": "complaint"})
        await t.refused("post", "/v1/suppressions", "/channel", body={"address": "+8613812345678", "channel": None})
        page = await t.accepted("get", "/v1/suppressions", limit="2")
        assert page["next_cursor"] is not None
        await t.accepted("get", "/v1/suppressions", cursor=page["next_cursor"], address="ann@example.com")
        await t.refused("get", "/v1/suppressions", "cursor", cursor="yesterday")
        await t.refused("delete", "/v1/suppressions", "address")
        await t.accepted("delete", "/v1/suppressions", user_id="u-1", address="+8613812345678")
        assert (await t.call("delete", "/v1/suppressions", user_id="u-1"))[0] == 404
        assert await gw.count("suppressions") == 2


async def test_content_and_blocklist_traffic_conforms_to_the_document(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        t = await _traffic(gw)
        report = await t.accepted("post", "/v1/content/check", body={"channel": "sms", "text": "点击t.cn/x"})
        assert report["fixed_text"] == "点击 t.cn/x"
        email = {"channel": "email", "content": {"subject": "春季上新t.cn/x", "text": ""}, "provider": "sandbox"}
        assert [v["field"] for v in (await t.accepted("post", "/v1/content/check", body=email))["violations"]] == [
            "/content/subject"
        ]
        await t.refused(
            "post", "/v1/content/check", "/content/html", body={"channel": "email", "content": {"html": "x"}}
        )
        await t.refused("post", "/v1/content/check", "/text", body={"channel": "sms", "text": " "})
        null_text = {"channel": "email", "content": {"subject": "s", "text": None}}
        await t.refused("post", "/v1/content/check", "/content/text", body=null_text)
        await t.refused("put", "/v1/blocklists/{name}", "/words/1", "/v1/blocklists/brand", {"words": ["0", "0"]})
        created = await t.accepted("put", "/v1/blocklists/{name}", "/v1/blocklists/brand", {"words": ["竞品A"]})
        assert created["severity"] == "block"
        await t.refused("put", "/v1/blocklists/{name}", "/words/1", "/v1/blocklists/brand", {"words": ["a", " "]})
        await t.refused(
            "put", "/v1/blocklists/{name}", "/severity", "/v1/blocklists/brand", {"words": [], "severity": 1}
        )
        assert (await t.accepted("get", "/v1/blocklists"))["data"][0]["words"] == ["竞品A"]
        await t.accepted("get", "/v1/blocklists/{name}", "/v1/blocklists/brand")
        assert (await t.call("get", "/v1/blocklists/{name}", "/v1/blocklists/Brand"))[0] == 404
        await t.accepted("delete", "/v1/blocklists/{name}", "/v1/blocklists/brand")
        assert (await t.call("delete", "/v1/blocklists/{name}", "/v1/blocklists/brand"))[0] == 404
        assert await gw.count("blocklists") == 0

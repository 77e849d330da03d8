"""Real traffic of the reports, events, tracking, provider-callback and ops rooms conforms to the served
document: every answer's status, media type and body are documented, every request body is valid by
it, and a refused request names the field at fault (and writes nothing)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from gateway.store.records import Outcome
from providers.sandbox import SIGNATURE_HEADER, sign, sign_inbound
from tests.fakes.aliyun import FakeAliyunSms
from tests.fakes.tencent import FakeTencentSms
from tests.fakes.twilio import FakeTwilio
from tests.harness import SMS, GatewayStarter, Running
from tests.integration.document_check import Document

LATER = "2999-01-01T00:00:00Z"


class Exchange:
    """Requests to a running gateway, each checked against its document."""

    def __init__(self, gw: Running, document: Document) -> None:
        self.gw = gw
        self.document = document

    async def call(
        self, method: str, path: str, template: str, body: Any = None, *, raw: bytes | None = None, **kw: Any
    ) -> tuple[int, str, bytes]:
        headers = {**self.gw.headers, **kw.pop("headers", {})}
        invalid = kw.pop("invalid", False)
        if body is not None:
            raw = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
            if not invalid:
                self.document.body(template, method, "application/json", raw)
            else:
                assert self.document.refuses(template, method, raw), f"the document takes {body}"
        async with self.gw.session.request(
            method, self.gw.url + path, data=raw, headers=headers, allow_redirects=False, **kw
        ) as response:
            payload = await response.read()
            self.document.answer(template, method, response.status, response.content_type, payload)
            return response.status, response.content_type, payload

    async def refused(self, method: str, path: str, template: str, body: Any = None, **kw: Any) -> list[str]:
        """The fields a refusal names (its status and shape checked against the document)."""
        status, content_type, payload = await self.call(method, path, template, body, invalid=True, **kw)
        assert 400 <= status < 500, (status, payload[:300])
        return self.document.problem_names(template, method, status, content_type, payload)


async def _exchange(gw: Running) -> Exchange:
    return Exchange(gw, Document(await (await gw.get("/openapi.json")).json()))


async def _failed_message(gw: Running, campaign: str) -> str:
    """A message the worker leaves alone (sent far ahead), given a failed outcome directly."""
    response = await gw.post("/v1/messages", {**SMS, "campaign": campaign, "send_at": LATER})
    message_id: str = (await response.json())["id"]
    outcome = Outcome(message_id, "default", "failed", time.time(), reason="provider.transient.exhausted")
    await gw.gateway.store.record_outcomes([outcome])
    return message_id


async def test_the_reports_room_conforms(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        room = await _exchange(gw)
        failed = await _failed_message(gw, "spring")
        path = "/v1/reports/failures?group_by=reason,status"
        status, _, report = await room.call("get", path, "/v1/reports/failures")
        assert status == 200 and orjson.loads(report)["groups"][0]["status"] == "failed"
        assert await room.refused("get", "/v1/reports/failures?group_by=", "/v1/reports/failures") == ["group_by"]

        template = "/v1/messages/requeue"
        assert await room.refused("post", template, template, {"filter": {}}) == ["/filter"]
        assert await room.refused("post", template, template, {"filter": {"campaign": None}}) == ["/filter/campaign"]
        assert (await gw.wait_status(failed, {"failed"}))["status"] == "failed", "a refused requeue changed nothing"
        status, _, dry = await room.call("post", template, template, {"filter": {"campaign": "spring"}})
        assert status == 200 and orjson.loads(dry)["requeueable"] == 1
        # 5.0 is an integer to JSON Schema, so to the server too.
        status, _, dry = await room.call("post", template, template, {"filter": {"campaign": "spring"}, "limit": 5.0})
        assert status == 200 and orjson.loads(dry)["matched"] == 1

        retry = "/v1/messages/{id}/retry"
        assert (await room.call("post", f"/v1/messages/{failed}/retry", retry))[0] == 202
        assert (await room.call("post", f"/v1/messages/{failed}/retry", retry))[0] == 409, "queued: not again"
        assert (await room.call("post", "/v1/messages/msg_nope/retry", retry))[0] == 404


async def test_the_events_room_conforms(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        room = await _exchange(gw)
        await gw.post("/v1/messages", SMS)
        _, content_type, lines = await room.call("get", "/v1/events", "/v1/events")
        assert content_type == "application/x-ndjson" and lines.splitlines()
        _, content_type, rows = await room.call("get", "/v1/events", "/v1/events", headers={"Accept": "text/csv"})
        assert content_type == "text/csv" and rows.startswith(b"id,at,type,message_id,status,reason,detail\r\n")
        assert await room.refused("get", "/v1/events?since=yesterday", "/v1/events") == ["since"]
        assert await room.refused("get", "/v1/events?colour=red", "/v1/events") == ["colour"]


async def test_the_tracking_room_conforms(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        room = await _exchange(gw)
        job = {**SMS, "content": {"text": "Sale https://shop.example.com/sale now"}, "campaign": "spring"}
        sent = await gw.wait_status((await (await gw.post("/v1/messages", job)).json())["id"], {"delivered"})
        token = sent["links"][0]["short_url"].rsplit("/", 1)[1]
        status, _, _ = await room.call("get", f"/c/{token}", "/c/{token}", headers={"User-Agent": "Mozilla/5.0"})
        assert status == 302
        assert (await room.call("get", "/c/0000000000", "/c/{token}"))[0] == 404

        template = "/v1/conversions"
        both = {"click_token": token, "message_id": sent["id"], "event": "purchase"}
        assert await room.refused("post", template, template, both) == ["/click_token"]
        assert await gw.count("conversions") == 0
        bought = {"click_token": token, "event": "purchase", "value": 42, "event_id": "order-1"}
        assert (await room.call("post", template, template, bought))[0] == 201
        assert (await room.call("post", template, template, bought))[0] == 200
        assert (await room.call("post", template, template, {"message_id": sent["id"], "event": "visit"}))[0] == 201

        report = "/v1/reports/campaigns/{campaign}"
        status, _, body = await room.call("get", "/v1/reports/campaigns/spring?group_by=variant,channel", report)
        assert status == 200 and orjson.loads(body)["totals"]["conversions"] == 2
        assert await room.refused("get", "/v1/reports/campaigns/spring?group_by=colour", report) == ["group_by"]


async def test_the_sandbox_callbacks_conform(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__RECEIPTS": "false"}) as gw:
        room = await _exchange(gw)
        secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
        receipts = orjson.dumps({"receipts": [{"sid": "SBX-early", "status": "delivered"}]})
        room.document.body("/v1/receipts/{provider}", "post", "application/json", receipts)
        signed = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, int(time.time()), receipts)}
        for template, path in (("/v1/receipts/{provider}", "/v1/receipts"), ("/v1/inbound/{provider}", "/v1/inbound")):
            assert (await room.call("post", f"{path}/sandbox", template, raw=receipts))[0] == 401
            assert (await room.call("post", f"{path}/nowhere", template, raw=receipts, headers=signed))[0] == 404
        status, _, summary = await room.call(
            "post", "/v1/receipts/sandbox", "/v1/receipts/{provider}", raw=receipts, headers=signed
        )
        assert (status, orjson.loads(summary)) == (200, {"applied": 0, "duplicate": 0, "held": 1})

        replies, signature = sign_inbound(secret, [{"from": SMS["to"], "text": "STOP"}])
        room.document.body("/v1/inbound/{provider}", "post", "application/json", replies)
        status, _, counts = await room.call(
            "post",
            "/v1/inbound/sandbox",
            "/v1/inbound/{provider}",
            raw=replies,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )
        assert status == 200 and orjson.loads(counts)["unmatched"] == 1


async def test_twilio_callbacks_conform(start_gateway: GatewayStarter) -> None:
    """Twilio's form posts and its answers (204, TwiML), as its fake sends and reads them."""
    async with FakeTwilio() as fake, start_gateway(fake.gateway_env()) as gw:
        room = await _exchange(gw)
        response = await gw.post("/v1/messages", {**SMS, "category": "transactional"})
        sid = (await gw.wait_status((await response.json())["id"], {"sent"}))["provider_message_id"]
        url, body, headers = fake.status_callback(sid, "delivered")
        room.document.body("/v1/receipts/{provider}", "post", headers["Content-Type"], body)
        path = url.removeprefix(gw.url)
        assert (await room.call("post", path, "/v1/receipts/{provider}", raw=body, headers=headers))[0] == 204
        body, headers = fake.incoming_sms(gw.url + "/v1/inbound/twilio", SMS["to"], "+14155550100", "STOP")
        room.document.body("/v1/inbound/{provider}", "post", headers["Content-Type"], body)
        status, content_type, _ = await room.call(
            "post", "/v1/inbound/twilio", "/v1/inbound/{provider}", raw=body, headers=headers
        )
        assert (status, content_type) == (200, "text/xml")


async def test_aliyun_callbacks_conform(start_gateway: GatewayStarter) -> None:
    """Aliyun's JSON pushes and the answer it documents, as its fake sends and reads them."""
    async with FakeAliyunSms() as aliyun:
        providers = {
            "aliyun": {
                "access_key_id": aliyun.access_key_id,
                "access_key_secret": aliyun.access_key_secret,
                "sign_name": "阿里云短信测试",
                "template_code": "SMS_154950909",
                "callback_token": "push-token-5b1f0c",
                "endpoint": aliyun.url,
            }
        }
        env = {"GATEWAY_PROVIDERS": orjson.dumps(providers).decode(), "GATEWAY_SANDBOX__ENABLED": "false"}
        async with start_gateway(env) as gw:
            room = await _exchange(gw)
            response = await gw.post("/v1/messages", {**SMS, "category": "transactional"})
            sent = await gw.wait_status((await response.json())["id"], {"sent"})
            json_body = {"Content-Type": "application/json"}
            for template, path, push in (
                ("/v1/receipts/{provider}", "/v1/receipts", aliyun.sms_report(sent["provider_message_id"])),
                ("/v1/inbound/{provider}", "/v1/inbound", aliyun.sms_up("13812345678", "退订")),
            ):
                room.document.body(template, "post", "application/json", push)
                refused = await room.call("post", f"{path}/aliyun?token=guess", template, raw=push, headers=json_body)
                assert refused[0] == 401
                status, _, answer = await room.call(
                    "post", f"{path}/aliyun?token=push-token-5b1f0c", template, raw=push, headers=json_body
                )
                assert (status, orjson.loads(answer)["code"]) == (200, 0)


async def test_tencent_callbacks_conform(start_gateway: GatewayStarter) -> None:
    """Tencent Cloud's status and reply callbacks and the answer it documents, as its fake sends and reads them."""
    async with FakeTencentSms() as tencent:
        providers = {
            "tencent": {
                "secret_id": tencent.secret_id,
                "secret_key": tencent.secret_key,
                "sms_sdk_app_id": tencent.sdk_app_id,
                "callback_token": "tencent-token-3f9a",
                "endpoint": tencent.url,
            }
        }
        env = {"GATEWAY_PROVIDERS": orjson.dumps(providers).decode(), "GATEWAY_SANDBOX__ENABLED": "false"}
        async with start_gateway(env) as gw:
            room = await _exchange(gw)
            tencent.sent["2433:1"] = {"PhoneNumberSet": ["+8613812345678"]}  # a send the gateway has no record of
            json_body = {"Content-Type": "application/json"}
            for template, path, push in (
                ("/v1/receipts/{provider}", "/v1/receipts", tencent.status_callback("2433:1")),
                ("/v1/inbound/{provider}", "/v1/inbound", tencent.reply_callback("13812345678", "退订")),
            ):
                room.document.body(template, "post", "application/json", push)
                refused = await room.call("post", f"{path}/tencent?token=guess", template, raw=push, headers=json_body)
                assert refused[0] == 401
                status, _, answer = await room.call(
                    "post", f"{path}/tencent?token=tencent-token-3f9a", template, raw=push, headers=json_body
                )
                assert (status, orjson.loads(answer)) == (200, {"result": 0, "errmsg": "OK"})


async def test_the_ops_room_conforms(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        room = await _exchange(gw)
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            async with aiohttp.ClientSession() as anonymous, anonymous.get(gw.url + path) as response:
                payload = await response.read()
                assert response.status == 200, path
                room.document.answer(path, "get", response.status, response.content_type, payload)

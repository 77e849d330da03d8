"""Configured providers in the running gateway: a send goes out through the provider's real wire
format, and its signed status callback comes back through the receipt endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.aliyun import FakeAliyunSms
from tests.fakes.tencent import FakeTencentSms
from tests.fakes.twilio import FakeTwilio
from tests.harness import SMS, GatewayStarter


async def test_an_sms_goes_out_through_twilio_and_its_receipt_comes_back(start_gateway: GatewayStarter) -> None:
    async with FakeTwilio() as fake:
        env = fake.gateway_env()
        async with start_gateway(env) as gw:
            response = await gw.post("/v1/messages", {**SMS, "category": "transactional"})
            message_id = (await response.json())["id"]
            sent = await gw.wait_status(message_id, {"sent"})
            assert sent["provider"] == "twilio"
            sid = sent["provider_message_id"]
            created = fake.created[sid]
            assert created.first("To") == SMS["to"]
            assert created.first("Body") == SMS["content"]["text"]
            assert created.first("StatusCallback") == f"{gw.url}/v1/receipts/twilio?ref={message_id}"

            url, body, headers = fake.status_callback(sid, "delivered")
            forged = {**headers, "X-Twilio-Signature": "AAAA" + headers["X-Twilio-Signature"][4:]}
            async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=forged) as refused:
                assert refused.status == 401
            assert await gw.count("receipts") == 0
            assert await fake.send_status(sid, "delivered") == 204
            assert fake.status_callback_taken(fake.answers[-1])
            delivered = await gw.wait_status(message_id, {"delivered"})
            assert delivered["receipts"][0]["provider"] == "twilio"

            reply = await fake.send_incoming_sms(gw.url + "/v1/inbound/twilio", SMS["to"], "+14155550100", "STOP")
            assert fake.twiml_taken(reply), (reply.status, reply.content_type, reply.body)
            suppressed = await gw.get("/v1/suppressions", params={"address": SMS["to"]})
            assert [row["reason"] for row in (await suppressed.json())["data"]] == ["opt_out.reply"]


async def test_a_provider_refusal_is_mapped_to_a_reason(start_gateway: GatewayStarter) -> None:
    async with FakeTwilio() as fake:
        fake.invalid_number(SMS["to"])
        env = fake.gateway_env()
        async with start_gateway(env) as gw:
            response = await gw.post("/v1/messages", {**SMS, "category": "transactional"})
            failed = await gw.wait_status((await response.json())["id"], {"failed"})
            assert failed["reason"] == "provider.permanent.recipient_invalid"
            assert failed["error_code"] == "21211"


async def test_aliyun_pushes_get_the_answer_aliyun_documents(start_gateway: GatewayStarter) -> None:
    async with FakeAliyunSms() as fake:
        providers = {
            "aliyun": {
                "access_key_id": fake.access_key_id,
                "access_key_secret": fake.access_key_secret,
                "sign_name": "阿里云短信测试",
                "template_code": "SMS_154950909",
                "callback_token": "push-token-5b1f0c",
                "endpoint": fake.url,
            }
        }
        env = {"GATEWAY_PROVIDERS": json.dumps(providers), "GATEWAY_SANDBOX__ENABLED": "false"}
        async with start_gateway(env) as gw:
            response = await gw.post("/v1/messages", {**SMS, "category": "transactional"})
            message_id = (await response.json())["id"]
            sent = await gw.wait_status(message_id, {"sent"})
            url = f"{gw.url}/v1/receipts/aliyun?token=push-token-5b1f0c"
            assert await fake.push(url, fake.sms_report(sent["provider_message_id"])) == 200
            assert fake.acknowledged(fake.answers[-1]), fake.answers[-1]
            await gw.wait_status(message_id, {"delivered"})

            assert (
                await fake.push(
                    f"{gw.url}/v1/inbound/aliyun?token=push-token-5b1f0c", fake.sms_up("13812345678", "退订")
                )
                == 200
            )
            assert fake.acknowledged(fake.answers[-1])
            suppressed = await gw.get("/v1/suppressions", params={"address": SMS["to"]})
            assert [row["reason"] for row in (await suppressed.json())["data"]] == ["opt_out.reply"]

            assert (
                await fake.push(
                    f"{gw.url}/v1/receipts/aliyun?token=guess",
                    fake.sms_report(sent["provider_message_id"], success=False),
                )
                == 401
            )
            refused = fake.answers[-1]
            assert not fake.acknowledged(refused) and refused.content_type == "application/problem+json"
            assert await gw.count("receipts") == 1, "the refused push recorded nothing"


async def test_a_credential_from_a_secret_file_is_used_and_never_shown(
    start_gateway: GatewayStarter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "file-token-7d1e9c4a"
    async with FakeTwilio(auth_token=token) as fake:
        (tmp_path / "twilio_token").write_text(token + "\n")
        env = {
            "GATEWAY_PROVIDERS__TWILIO__ACCOUNT_SID": fake.account_sid,
            "GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN_FILE": str(tmp_path / "twilio_token"),
            "GATEWAY_PROVIDERS__TWILIO__FROM_NUMBER": "+14155550100",
            "GATEWAY_PROVIDERS__TWILIO__API_BASE_URL": fake.url,
            "GATEWAY_SANDBOX__ENABLED": "false",
            "GATEWAY_LOG_LEVEL": "debug",
        }
        async with start_gateway(env) as gw:
            response = await gw.post("/v1/messages", {**SMS, "category": "transactional"})
            message_id = (await response.json())["id"]
            sent = await gw.wait_status(message_id, {"sent"})  # basic auth with the file's token passed
            assert await fake.send_status(sent["provider_message_id"], "delivered") == 204, "signed with it too"
            delivered = await gw.wait_status(message_id, {"delivered"})
            seen = [str(delivered)]
            for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/messages", "/v1/events"):
                seen.append(await (await gw.get(path)).text())
        assert all(token not in body for body in seen), "the token is in an API response"
        logged = capsys.readouterr()
        assert "gateway started" in logged.out + logged.err, "the logs were captured"
        assert token not in logged.out + logged.err, "the token is in the logs"


async def test_tencent_refuses_free_text_at_accept_sends_a_registered_template_and_takes_callbacks(
    start_gateway: GatewayStarter,
) -> None:
    async with FakeTencentSms() as fake:
        section = {
            "secret_id": fake.secret_id,
            "secret_key": fake.secret_key,
            "sms_sdk_app_id": fake.sdk_app_id,
            "callback_token": "tencent-token-3f9a",
            "endpoint": fake.url,
        }
        env = {"GATEWAY_PROVIDERS": json.dumps({"tencent": section}), "GATEWAY_SANDBOX__ENABLED": "false"}
        async with start_gateway(env) as gw:
            # Free text cannot go by a route that sends registered templates only: refused at accept.
            response = await gw.post("/v1/messages", {**SMS, "category": "transactional"})
            assert response.status == 422
            problem = await response.json()
            assert [e["field"] for e in problem["errors"]] == ["/content"]
            assert "sms route (tencent) sends only templates registered" in problem["errors"][0]["message"]
            assert (await (await gw.get("/v1/messages")).json())["data"] == []
            assert fake.requests == [], "free text never reached Tencent Cloud"

            # A template whose version carries Tencent's template id goes, signed, with its params in order.
            template = {
                "name": "verify_code",
                "variables": {
                    "code": {"type": "string", "required": True, "max_length": 6, "example": "123456"},
                    "minutes": {"type": "integer", "required": True, "example": 5},
                },
                "channels": {"sms": {"text": "您的验证码是{{ code }}，{{ minutes }}分钟内有效。"}},
                "providers": {"tencent": {"template_id": "449739", "sign_name": "腾讯云"}},
            }
            assert (await gw.post("/v1/templates", template)).status == 201
            assert (await gw.post("/v1/templates/verify_code/publish", None)).status == 201
            job = {"channel": "sms", "to": SMS["to"], "category": "transactional", "template": "verify_code"}
            accepted = await gw.post("/v1/messages", {**job, "params": {"code": "482913", "minutes": 5}})
            assert accepted.status == 202, await accepted.text()
            sent = await gw.wait_status((await accepted.json())["id"], {"sent"})
            serial = sent["provider_message_id"]
            body = fake.sent[serial]
            assert (body["TemplateId"], body["SignName"]) == ("449739", "腾讯云")
            assert body["TemplateParamSet"] == ["482913", "5"]
            assert body["PhoneNumberSet"] == [SMS["to"]]

            url = f"{gw.url}/v1/receipts/tencent?token=tencent-token-3f9a"
            forged = await fake.push(url.replace("3f9a", "0000"), fake.status_callback(serial))
            assert forged.status == 401 and not fake.acknowledged(forged)
            assert fake.acknowledged(await fake.push(url, fake.status_callback(serial))), fake.answers[-1]
            await gw.wait_status(sent["id"], {"delivered"})

            reply = fake.reply_callback(SMS["to"].removeprefix("+86"), "退订")
            assert fake.acknowledged(await fake.push(f"{gw.url}/v1/inbound/tencent?token=tencent-token-3f9a", reply))
            suppressed = await gw.get("/v1/suppressions", params={"address": SMS["to"]})
            assert [row["reason"] for row in (await suppressed.json())["data"]] == ["opt_out.reply"]

"""Jobs given as a template, single and batched, on both stores: rendered at accept from the version
they pin, checked by the content policy like plain content; every bad template, version or param a
422 naming its field with nothing stored; provider template ids reach the provider."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.aliyun import FakeAliyunSms
from tests.fakes.twilio import FakeTwilio
from tests.harness import GatewayStarter, Running
from tests.integration.test_templates import PARAMS, TEMPLATE, with_

TO = "+8613812345678"
JOB = {"channel": "sms", "to": TO, "template": "order_shipped", "params": PARAMS}


async def _publish(gw: Running, body: dict[str, Any] = TEMPLATE) -> None:
    created = await gw.post("/v1/templates", body)
    assert created.status == 201, await created.text()
    published = await gw.post(f"/v1/templates/{body['name']}/publish", None)
    assert published.status == 201, await published.text()


async def test_a_templated_job_is_rendered_at_accept_pins_its_version_and_is_delivered(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway() as gw:
        await _publish(gw)
        accepted = await gw.post("/v1/messages", JOB)
        assert accepted.status == 202, await accepted.text()
        answer = await accepted.json()
        assert answer["template"] == {"name": "order_shipped", "version": 1, "locale": None}
        english = await (await gw.post("/v1/messages", {**JOB, "locale": "en", "version": 1})).json()
        assert english["template"] == {"name": "order_shipped", "version": 1, "locale": "en"}

        # A new version changes later jobs only.
        changed = await gw.session.patch(
            gw.url + "/v1/templates/order_shipped",
            json={"channels": {"sms": {"text": "【小店】{{ name }}，新版本 拒收请回复R"}}},
            headers=gw.headers,
        )
        assert changed.status == 200
        assert (await gw.post("/v1/templates/order_shipped/publish", None)).status == 201
        pinned_v1 = await (await gw.post("/v1/messages", {**JOB, "version": 1})).json()

        delivered = await gw.wait_status(answer["id"], {"delivered"})
        assert delivered["content"]["text"] == "【小店】张三，您的订单已发货 https://shop.example.com/o/1 拒收请回复R"
        assert delivered["template"] == {"name": "order_shipped", "version": 1, "locale": None, "params": PARAMS}
        en = await gw.wait_status(english["id"], {"delivered"})
        assert en["content"]["text"] == "张三, your order has shipped https://shop.example.com/o/1"
        latest = await (await gw.post("/v1/messages", JOB)).json()
        assert latest["template"]["version"] == 2
        assert (await gw.wait_status(latest["id"], {"delivered"}))["content"][
            "text"
        ] == "【小店】张三，新版本 拒收请回复R"
        assert (await gw.wait_status(pinned_v1["id"], {"delivered"}))["content"]["text"].endswith("o/1 拒收请回复R")


@pytest.mark.parametrize(
    ("job", "errors"),
    [
        pytest.param({**JOB, "template": "nope"}, [("/template", "no template 'nope'")], id="unknown-template"),
        pytest.param(
            {**JOB, "version": 9},
            [("/version", "the template 'order_shipped' has no version 9 (latest: 1)")],
            id="unknown-version",
        ),
        pytest.param(
            {**JOB, "params": {"name": 5, "url": "https://shop.example.com/o/1"}},
            [("/params/name", "must be a string")],
            id="mistyped-param",
        ),
        pytest.param(
            {**JOB, "params": {"url": "https://shop.example.com/o/1"}},
            [("/params/name", "is required")],
            id="missing-param",
        ),
        pytest.param(
            {**JOB, "params": {**PARAMS, "coupon": "X"}},
            [("/params/coupon", "is not a declared variable of this template")],
            id="unknown-param",
        ),
        pytest.param(
            {**JOB, "params": {**PARAMS, "name": "张" * 21}},
            [("/params/name", "must be at most 20 characters (got 21)")],
            id="param-over-max-length",
        ),
        pytest.param(
            {**JOB, "content": {"text": "hi"}}, [("/template", "give content or a template, not both")], id="both"
        ),
        pytest.param(
            {"channel": "sms", "to": TO, "content": {"text": "hi"}, "params": PARAMS},
            [("/params", "is given only with a template")],
            id="params-without-template",
        ),
        pytest.param({"channel": "sms", "to": TO}, [("/content", "is required (or give a template)")], id="neither"),
        pytest.param(
            {**JOB, "channel": "email", "to": "ann@example.com"},
            [("/template", "order_shipped version 1 has no email body")],
            id="no-body-for-the-channel",
        ),
        pytest.param(
            {**JOB, "params": {**PARAMS, "name": "加微信"}},
            [("/template/text", "blocked_word: the text contains '加微信'")],
            id="rendered-text-the-policy-blocks",
        ),
    ],
)
async def test_a_bad_templated_job_is_refused_naming_the_field_and_nothing_is_stored(
    start_gateway: GatewayStarter, job: dict[str, Any], errors: list[tuple[str, str]]
) -> None:
    async with start_gateway() as gw:
        await _publish(gw)
        lists = await gw.session.put(gw.url + "/v1/blocklists/brand", json={"words": ["加微信"]}, headers=gw.headers)
        assert lists.status == 201
        refused = await gw.post("/v1/messages", job)
        assert refused.status == 422, await refused.text()
        found = [(e["field"], e["message"]) for e in (await refused.json())["errors"]]
        assert [f for f, _ in found] == [f for f, _ in errors]
        assert all(message.startswith(prefix) for (_, message), (_, prefix) in zip(found, errors, strict=True))
        batch = await gw.post("/v1/messages/batch", {"messages": [job]})
        problem = (await batch.json())["results"][0]["problem"]
        assert [e["field"] for e in problem["errors"]] == [f"/messages/0{f}" for f, _ in errors]
        assert await gw.count("messages") == 0


async def test_an_archived_template_and_one_never_published_are_refused(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        await _publish(gw)
        assert (await gw.post("/v1/templates", with_(name="draft_only"))).status == 201
        never = await gw.post("/v1/messages", {**JOB, "template": "draft_only"})
        assert (await never.json())["errors"] == [
            {"field": "/template", "message": "the template 'draft_only' has no published version"}
        ]
        assert (await gw.post("/v1/templates/order_shipped/archive", None)).status == 200
        archived = await gw.post("/v1/messages", JOB)
        assert archived.status == 422
        assert (await archived.json())["errors"] == [
            {"field": "/template", "message": "the template 'order_shipped' is archived"}
        ]
        assert await gw.count("messages") == 0


async def test_a_batch_renders_each_templated_item_on_its_own(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        await _publish(gw)
        items = [JOB, {**JOB, "params": {"name": "李四"}}, {"channel": "sms", "to": TO, "content": {"text": "plain"}}]
        answer = await (await gw.post("/v1/messages/batch", {"messages": items})).json()
        assert [r["status"] for r in answer["results"]] == [202, 422, 202]
        assert answer["results"][1]["problem"]["errors"] == [
            {"field": "/messages/1/params/url", "message": "is required"}
        ]
        message = await gw.wait_status(answer["results"][0]["id"], {"delivered"})
        assert message["template"]["version"] == 1 and message["content"]["text"].startswith("【小店】张三")


async def test_a_route_with_provider_template_ids_sends_them_with_the_params(start_gateway: GatewayStarter) -> None:
    async with FakeAliyunSms() as fake:
        # The account's approved template and signature, as the Aliyun console holds them.
        fake.templates["SMS_123"] = ("name", "url")
        fake.sign_names.add("小店")
        providers = {
            "aliyun": {
                "access_key_id": fake.access_key_id,
                "access_key_secret": fake.access_key_secret,
                "sign_name": "小店",
                "template_code": "SMS_DEFAULT",
                "callback_token": "push-token-5b1f0c",
                "endpoint": fake.url,
            }
        }
        env = {"GATEWAY_PROVIDERS": json.dumps(providers), "GATEWAY_SANDBOX__ENABLED": "false"}
        async with start_gateway(env) as gw:
            await _publish(gw)
            accepted = await (await gw.post("/v1/messages", {**JOB, "category": "transactional"})).json()
            sent = await gw.wait_status(accepted["id"], {"sent"})
            params = fake.sent[sent["provider_message_id"]]
            assert params["TemplateCode"] == "SMS_123"
            given = json.loads(params["TemplateParam"])
            assert given["name"] == PARAMS["name"]
            # The link variable is what the recipient gets: tracked like a link in the text.
            assert [(link["short_url"], link["url"]) for link in sent["links"]] == [(given["url"], PARAMS["url"])]
            stored = sent["content"]
            assert stored["provider_templates"] == {"aliyun": {"template_code": "SMS_123", "sign_name": "小店"}}
            assert list(stored["template_params"]) == ["name", "url"]


async def test_an_sms_that_fails_permanently_falls_back_to_voice_reading_the_voice_body(
    start_gateway: GatewayStarter,
) -> None:
    """End to end: a template with SMS, push and voice bodies; the SMS is refused for good by its
    provider (the sandbox), and the voice call (Twilio's fake) reads the template's voice script."""
    async with FakeTwilio() as fake:
        twilio = {
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "from_number": "+14155550100",
            "api_base_url": fake.url,
        }
        env = {
            "GATEWAY_PROVIDERS": json.dumps({"twilio": twilio}),
            "GATEWAY_ROUTING": json.dumps({"channels": {"sms": ["sandbox"], "voice": ["twilio"]}}),
            "GATEWAY_SANDBOX__FAILURE_RATE": "1",
            "GATEWAY_SANDBOX__ERRORS": json.dumps([{"code": "SBX-30003", "kind": "permanent", "message": "off"}]),
        }
        async with start_gateway(env) as gw:
            await _publish(gw)
            job = {**JOB, "fallback": ["voice"], "category": "transactional"}
            accepted = await gw.post("/v1/messages", job)
            assert accepted.status == 202, await accepted.text()
            message_id = (await accepted.json())["id"]
            called = await gw.wait_status(message_id, {"sent"})
            assert [(a["channel"], a["provider"], a["outcome"]) for a in called["attempts"]] == [
                ("sms", "sandbox", "failed"),
                ("voice", "twilio", "sent"),
            ]
            [call] = [c for c in fake.created.values() if c.kind == "call"]
            twiml = call.first("Twiml") or ""
            assert "您好，张三，您的订单已经发货。" in twiml and 'language="zh-CN"' in twiml
            assert "拒收请回复R" not in twiml  # not the SMS copy
            assert called["channel"] == "voice" and called["template"]["version"] == 1


async def test_the_body_of_a_fallback_channel_is_checked_at_accept_too(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        await _publish(gw, with_(channels={**TEMPLATE["channels"], "voice": {"text": "{{ name }}，比竞品A便宜"}}))
        # The tenant lists the word after the publish: the lint could not see it, the accept does.
        lists = await gw.session.put(gw.url + "/v1/blocklists/brand", json={"words": ["竞品A"]}, headers=gw.headers)
        assert lists.status == 201
        assert (await gw.post("/v1/messages", JOB)).status == 202  # no fallback: the voice body is not sent
        refused = await gw.post("/v1/messages", {**JOB, "fallback": ["voice"]})
        assert refused.status == 422
        [error] = (await refused.json())["errors"]
        assert error["field"] == "/template/voice/text" and error["message"].startswith("blocked_word:")
        assert await gw.count("messages") == 1


async def test_a_retried_templated_job_gets_its_first_answer_even_after_the_template_is_archived(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway() as gw:
        await _publish(gw)
        first = await gw.post("/v1/messages", JOB, key="order-42")
        assert first.status == 202
        assert (await gw.post("/v1/templates/order_shipped/archive", None)).status == 200
        again = await gw.post("/v1/messages", JOB, key="order-42")
        assert (again.status, again.headers.get("Idempotent-Replayed")) == (202, "true")
        assert await again.json() == await first.json()
        assert (await again.json())["template"] == {"name": "order_shipped", "version": 1, "locale": None}
        other = await gw.post("/v1/messages", JOB, key="order-43")
        assert other.status == 422
        assert await gw.count("messages") == 1

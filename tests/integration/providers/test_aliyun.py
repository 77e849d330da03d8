"""Alibaba Cloud SMS adapter against a fake Dysmsapi that checks the RPC signature."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from providers.aliyun import AliyunSettings, AliyunSmsProvider, phone_number, rpc_signature
from providers.base import CallbackFormatError, ErrorKind, InboundRequest, SignatureError, json_answer
from providers.catalog import build_sections
from tests.fakes.aliyun import FakeAliyunSms
from tests.fakes.http import CallbackSink
from tests.integration.providers.conftest import arrived, as_received, outbound

TOKEN = "push-token-5b1f0c"
MOBILE = "+8613800138000"


@pytest.fixture
async def aliyun() -> AsyncIterator[FakeAliyunSms]:
    async with FakeAliyunSms() as fake:
        yield fake


def settings_for(fake: FakeAliyunSms, **overrides: object) -> AliyunSettings:
    values: dict[str, object] = {
        "access_key_id": fake.access_key_id,
        "access_key_secret": fake.access_key_secret,
        "sign_name": "阿里云短信测试",
        "free_text_template": "SMS_154950909",
        "callback_token": TOKEN,
        "endpoint": fake.url,
        "timeout": 2.0,
        **overrides,
    }
    return AliyunSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def provider(aliyun: FakeAliyunSms) -> AsyncIterator[AliyunSmsProvider]:
    adapter = AliyunSmsProvider(settings_for(aliyun))
    await adapter.start()
    yield adapter
    await adapter.close()


def test_signature_matches_alibaba_clouds_documented_example() -> None:
    # The worked example of Alibaba Cloud's "RPC signature mechanism" page (DescribeRegions, AccessKey
    # testid / testsecret, GET): its stated result is OLeaidS1JvxuMvnyHOwuJ+uX5qY=.
    params = {
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "Format": "XML",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Timestamp": "2016-02-23T12:46:24Z",
        "Version": "2014-05-26",
    }
    assert rpc_signature("testsecret", "GET", params) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_numbers_are_given_as_dysmsapi_wants_them() -> None:
    assert phone_number("+8613800138000") == "13800138000"
    assert phone_number("+85291234567") == "85291234567"


async def test_send_sms_is_a_signed_rpc_call_with_our_id_as_out_id(
    provider: AliyunSmsProvider, aliyun: FakeAliyunSms
) -> None:
    result = await provider.send(outbound("sms", MOBILE, {"text": "您的订单已发货"}))
    assert result.accepted and result.provider_message_id in aliyun.sent
    params = aliyun.sent[result.provider_message_id or ""]
    assert params["Action"] == "SendSms" and params["PhoneNumbers"] == "13800138000"
    assert params["SignName"] == "阿里云短信测试" and params["TemplateCode"] == "SMS_154950909"
    assert orjson.loads(params["TemplateParam"]) == {"content": "您的订单已发货"}
    assert params["OutId"] == "msg_01HZX3"


async def test_the_older_job_template_code_still_wins(provider: AliyunSmsProvider, aliyun: FakeAliyunSms) -> None:
    aliyun.templates["SMS_1"] = ("code",)
    content = {"text": "", "template_code": "SMS_1", "template_params": {"code": 123456}}
    result = await provider.send(outbound("sms", MOBILE, content))
    params = aliyun.sent[result.provider_message_id or ""]
    assert params["TemplateCode"] == "SMS_1"
    assert orjson.loads(params["TemplateParam"]) == {"code": "123456"}  # Aliyun takes string values only


def registered(provider: str = "aliyun", **ids: str) -> dict[str, object]:
    """Stored content of a job rendered from a template version with Aliyun ids."""
    return {
        "text": "【小店】张三，您的订单已发货 https://shop.example.com/o/1",
        "template_params": {"name": "张三", "url": "https://shop.example.com/o/1"},
        "provider_templates": {provider: ids or {"template_code": "SMS_465000001"}},
    }


async def test_a_registered_template_is_sent_with_its_code_sign_and_params_in_order(
    provider: AliyunSmsProvider, aliyun: FakeAliyunSms
) -> None:
    aliyun.templates["SMS_465000001"] = ("name", "url")
    aliyun.sign_names.add("小店")
    result = await provider.send(outbound("sms", MOBILE, registered(template_code="SMS_465000001", sign_name="小店")))
    assert result.accepted, result.error
    params = aliyun.sent[result.provider_message_id or ""]
    assert (params["TemplateCode"], params["SignName"]) == ("SMS_465000001", "小店")
    assert params["TemplateParam"] == '{"name":"张三","url":"https://shop.example.com/o/1"}'


async def test_a_registered_template_without_a_sign_name_uses_the_accounts(
    provider: AliyunSmsProvider, aliyun: FakeAliyunSms
) -> None:
    aliyun.templates["SMS_465000001"] = ("name", "url")
    result = await provider.send(outbound("sms", MOBILE, registered()))
    assert aliyun.sent[result.provider_message_id or ""]["SignName"] == "阿里云短信测试"


async def test_ids_of_another_aliyun_section_are_not_this_ones(aliyun: FakeAliyunSms) -> None:
    aliyun.templates["SMS_465000001"] = ("name", "url")
    marketing = AliyunSmsProvider(settings_for(aliyun), name="aliyun_marketing")
    await marketing.start()
    try:
        theirs = await marketing.send(outbound("sms", MOBILE, registered("aliyun")))
        ours = await marketing.send(outbound("sms", MOBILE, registered("aliyun_marketing")))
    finally:
        await marketing.close()
    assert aliyun.sent[theirs.provider_message_id or ""]["TemplateCode"] == "SMS_154950909"  # free text
    assert aliyun.sent[ours.provider_message_id or ""]["TemplateCode"] == "SMS_465000001"


async def test_without_a_free_text_template_only_registered_templates_go(aliyun: FakeAliyunSms) -> None:
    aliyun.templates["SMS_465000001"] = ("name", "url")
    adapter = AliyunSmsProvider(settings_for(aliyun, free_text_template=None))
    assert adapter.capabilities.requires_registered_template
    await adapter.start()
    try:
        refused = await adapter.send(outbound("sms", MOBILE, {"text": "您的订单已发货"}))
        taken = await adapter.send(outbound("sms", MOBILE, registered()))
    finally:
        await adapter.close()
    assert refused.error is not None
    assert (refused.error.kind, refused.error.code) == (ErrorKind.PERMANENT, "template_required")
    assert taken.accepted and len(aliyun.requests) == 1, "free text never reached Aliyun"


async def test_a_free_text_account_takes_free_text(provider: AliyunSmsProvider) -> None:
    assert not provider.capabilities.requires_registered_template


@pytest.mark.parametrize(
    ("templates", "code"),
    [
        ({}, "isv.SMS_TEMPLATE_ILLEGAL"),
        ({"SMS_465000001": ("name", "url", "code")}, "isv.TEMPLATE_MISSING_PARAMETERS"),
    ],
)
async def test_a_template_aliyun_does_not_know_is_refused_for_good(
    provider: AliyunSmsProvider, aliyun: FakeAliyunSms, templates: dict[str, tuple[str, ...]], code: str
) -> None:
    aliyun.templates.update(templates)
    result = await provider.send(outbound("sms", MOBILE, registered()))
    assert result.error is not None and (result.error.kind, result.error.code) == (ErrorKind.PERMANENT, code)
    assert aliyun.sent == {}


def test_a_section_may_still_name_the_free_text_template_template_code() -> None:
    section = {"access_key_id": "LTAI9", "access_key_secret": "s", "sign_name": "x", "template_code": "SMS_9"}
    [adapter] = build_sections({"aliyun": section}, "https://gw.example.com")
    assert isinstance(adapter, AliyunSmsProvider) and adapter.settings.free_text_template == "SMS_9"
    with pytest.raises(ValueError, match=r"^providers\.aliyun\.template_code: give free_text_template or"):
        build_sections({"aliyun": {**section, "free_text_template": "SMS_8"}}, "https://gw.example.com")


async def test_a_wrong_secret_is_refused_by_the_fake_and_transient_for_us(aliyun: FakeAliyunSms) -> None:
    adapter = AliyunSmsProvider(settings_for(aliyun, access_key_secret="wrong"))
    await adapter.start()
    try:
        result = await adapter.send(outbound("sms", MOBILE, {"text": "hi"}))
    finally:
        await adapter.close()
    assert result.error is not None
    assert (result.error.kind, result.error.code) == (ErrorKind.TRANSIENT, "SignatureDoesNotMatch")
    assert aliyun.sent == {}


@pytest.mark.parametrize(
    ("code", "kind", "retry_after"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", ErrorKind.RATE_LIMITED, 60.0),
        ("isv.MOBILE_NUMBER_ILLEGAL", ErrorKind.RECIPIENT_INVALID, None),
        ("isv.BLACK_KEY_CONTROL_LIMIT", ErrorKind.PERMANENT, None),
        ("isv.AMOUNT_NOT_ENOUGH", ErrorKind.TRANSIENT, None),
        ("isv.SMS_TEMPLATE_ILLEGAL", ErrorKind.PERMANENT, None),
        ("isp.SYSTEM_ERROR", ErrorKind.TRANSIENT, None),
        ("isv.SOMETHING_NEW", ErrorKind.PERMANENT, None),
    ],
)
async def test_business_codes_are_classed(
    provider: AliyunSmsProvider, aliyun: FakeAliyunSms, code: str, kind: ErrorKind, retry_after: float | None
) -> None:
    aliyun.refuse_next(1, code)
    result = await provider.send(outbound("sms", MOBILE, {"text": "hi"}))
    assert result.error is not None
    assert (result.error.kind, result.error.code, result.error.retry_after) == (kind, code, retry_after)


async def test_a_number_the_service_refuses_is_recipient_invalid(
    provider: AliyunSmsProvider, aliyun: FakeAliyunSms
) -> None:
    aliyun.number_codes["13800000000"] = "isv.MOBILE_NUMBER_ILLEGAL"
    result = await provider.send(outbound("sms", "+8613800000000", {"text": "hi"}))
    assert result.error is not None and result.error.kind == ErrorKind.RECIPIENT_INVALID


async def test_5xx_is_transient(provider: AliyunSmsProvider, aliyun: FakeAliyunSms) -> None:
    aliyun.fail_next(1, 503, {"Code": "ServiceUnavailable", "Message": "busy", "RequestId": "x"})
    result = await provider.send(outbound("sms", MOBILE, {"text": "hi"}))
    assert result.error is not None and result.error.kind == ErrorKind.TRANSIENT


async def test_an_sms_report_push_becomes_receipts(
    provider: AliyunSmsProvider, aliyun: FakeAliyunSms, sink: CallbackSink
) -> None:
    delivered = (await provider.send(outbound("sms", MOBILE, {"text": "a"}))).provider_message_id or ""
    failed = (await provider.send(outbound("sms", MOBILE, {"text": "b"}, reference="msg_2"))).provider_message_id or ""
    url = f"{sink.url}/v1/receipts/aliyun?token={TOKEN}"
    assert await aliyun.push(url, aliyun.sms_report(delivered)) == 200
    assert await aliyun.push(url, aliyun.sms_report(failed, success=False, err_code="MK:0001")) == 200
    [first] = provider.parse_receipts(arrived(sink, 0))
    [second] = provider.parse_receipts(arrived(sink, 1))
    assert (first.provider_message_id, first.status, first.reference, first.error_code) == (
        delivered,
        "delivered",
        "msg_01HZX3",
        None,
    )
    assert (second.status, second.reference, second.error_code) == ("undelivered", "msg_2", "MK:0001")
    assert first.occurred_at == 1741083630.0  # 2025-03-04 18:20:30 in China time


async def test_a_push_without_the_right_token_is_refused(
    provider: AliyunSmsProvider, aliyun: FakeAliyunSms, sink: CallbackSink
) -> None:
    biz_id = (await provider.send(outbound("sms", MOBILE, {"text": "a"}))).provider_message_id or ""
    body = aliyun.sms_report(biz_id)
    for url in (f"{sink.url}/v1/receipts/aliyun", f"{sink.url}/v1/receipts/aliyun?token=guess"):
        with pytest.raises(SignatureError):
            provider.parse_receipts(InboundRequest("POST", url, {}, body))


async def test_without_a_configured_token_every_push_is_refused(aliyun: FakeAliyunSms) -> None:
    adapter = AliyunSmsProvider(settings_for(aliyun, callback_token=None))
    assert not adapter.capabilities.receipts
    with pytest.raises(SignatureError):
        adapter.parse_receipts(InboundRequest("POST", "https://g/v1/receipts/aliyun?token=", {}, b"[]"))


def test_a_push_that_is_not_a_report_array_is_malformed(provider: AliyunSmsProvider) -> None:
    with pytest.raises(CallbackFormatError):
        provider.parse_receipts(InboundRequest("POST", f"https://g/r?token={TOKEN}", {}, b'{"biz_id": "1"}'))


def test_replies_are_parsed_from_an_sms_up_push(provider: AliyunSmsProvider) -> None:
    body = orjson.dumps(
        [
            {
                "phone_number": "13800138000",
                "send_time": "2025-03-04 18:00:00",
                "content": "退订",
                "sign_name": "阿里云短信测试",
                "dest_code": "1234",
                "sequence_id": 1234567,
            }
        ]
    )
    [reply] = provider.parse_inbound(InboundRequest("POST", f"https://g/i?token={TOKEN}", {}, body))
    assert (reply.sender, reply.text, reply.to) == ("+8613800138000", "退订", "1234")


def test_secrets_stay_out_of_repr(aliyun: FakeAliyunSms) -> None:
    settings = settings_for(aliyun)
    assert aliyun.access_key_secret not in repr(settings) and TOKEN not in repr(AliyunSmsProvider(settings))


async def test_a_report_of_carrier_interception_says_the_sender_is_flagged(
    aliyun: FakeAliyunSms, sink: CallbackSink
) -> None:
    adapter = AliyunSmsProvider(settings_for(aliyun, filtered_codes=("MK:0008",)))
    await adapter.start()
    try:
        ids = [(await adapter.send(outbound("sms", MOBILE, {"text": t}))).provider_message_id or "" for t in "abc"]
    finally:
        await adapter.close()
    url = f"{sink.url}/v1/receipts/aliyun?token={TOKEN}"
    await aliyun.push(url, aliyun.sms_report(ids[0], success=False, err_code="MK:0008"))
    await aliyun.push(url, aliyun.sms_report(ids[1], success=False, err_code="MK:0099", err_msg="运营商拦截"))
    await aliyun.push(url, aliyun.sms_report(ids[2], success=False, err_code="MK:0001", err_msg="用户关机"))
    kinds = [adapter.parse_receipts(arrived(sink, i))[0].error_kind for i in range(3)]
    assert kinds == [ErrorKind.SENDER_FLAGGED, ErrorKind.SENDER_FLAGGED, None]


def test_pushes_are_answered_as_aliyun_expects(provider: AliyunSmsProvider) -> None:
    for kind in ("receipts", "inbound"):
        answer = as_received(provider.acknowledge(kind, {"applied": 1}))  # type: ignore[arg-type]
        assert FakeAliyunSms.acknowledged(answer)
        assert orjson.loads(answer.body) == {"code": 0, "msg": "接收成功"}
    assert not FakeAliyunSms.acknowledged(as_received(json_answer({"applied": 1}))), "Aliyun would push again"

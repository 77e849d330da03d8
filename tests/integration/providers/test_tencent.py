"""Tencent Cloud SMS adapter against a fake TencentCloud API that checks TC3-HMAC-SHA256 signatures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from providers.base import CallbackFormatError, ErrorKind, InboundRequest, SignatureError, json_answer
from providers.catalog import build_sections, resolve_secrets
from providers.tencent import (
    ERROR_KINDS,
    TencentSettings,
    TencentSmsProvider,
    authorization,
    canonical_request,
    error_kind,
    retry_wait,
    tc3_signature,
)
from tests.fakes import tencent as fake_signing
from tests.fakes.http import CallbackSink
from tests.fakes.tencent import FakeTencentSms
from tests.integration.providers.conftest import arrived, as_received, outbound

TOKEN = "tencent-callback-7c2e91"
MOBILE = "+8613800138000"


@pytest.fixture
async def tencent() -> AsyncIterator[FakeTencentSms]:
    async with FakeTencentSms() as fake:
        yield fake


def settings_for(fake: FakeTencentSms, **overrides: object) -> TencentSettings:
    values: dict[str, object] = {
        "secret_id": fake.secret_id,
        "secret_key": fake.secret_key,
        "sms_sdk_app_id": fake.sdk_app_id,
        "sign_name": "腾讯云",
        "endpoint": fake.url,
        "callback_token": TOKEN,
        "timeout": 2.0,
        **overrides,
    }
    return TencentSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def provider(tencent: FakeTencentSms) -> AsyncIterator[TencentSmsProvider]:
    adapter = TencentSmsProvider(settings_for(tencent))
    await adapter.start()
    yield adapter
    await adapter.close()


def rendered(provider: str = "tencent", **ids: str) -> dict[str, object]:
    """Stored content of a job rendered from a template version with Tencent Cloud ids."""
    return {
        "text": "【腾讯云】张三，您的验证码是 1234，5 分钟内有效",
        "template_params": {"code": "1234", "minutes": "5"},
        "provider_templates": {provider: ids or {"template_id": "449739"}},
    }


# -- the signature ----------------------------------------------------------------------------------
# The worked example of TencentCloud API "Signature v3" (CVM DescribeInstances, 1551113065 =
# 2019-02-25 16:44:25 UTC, the masked SecretKey as printed): canonical request hash 5ffe6a04...,
# signature 2230eefd....
DOC_KEY = "Gu5t9xGARNpq86cd98joQYCN3*******"
DOC_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******"
DOC_PAYLOAD = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
DOC_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com"}
DOC_SIGNATURE = "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"


def test_signature_matches_tencent_clouds_documented_example() -> None:
    canonical = canonical_request("POST", "/", "", DOC_HEADERS, DOC_PAYLOAD)
    assert canonical.endswith("\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    assert tc3_signature(DOC_KEY, "cvm", 1551113065, canonical) == DOC_SIGNATURE
    assert authorization(DOC_ID, DOC_KEY, "cvm", 1551113065, DOC_HEADERS, DOC_PAYLOAD) == (
        f"TC3-HMAC-SHA256 Credential={DOC_ID}/2019-02-25/cvm/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={DOC_SIGNATURE}"
    )


def test_the_fakes_own_signing_matches_the_documented_example() -> None:
    canonical = canonical_request("POST", "/", "", DOC_HEADERS, DOC_PAYLOAD)
    assert fake_signing.tc3_signature(DOC_KEY, "2019-02-25", "cvm", "1551113065", canonical) == DOC_SIGNATURE


# -- sending ----------------------------------------------------------------------------------------


async def test_send_sms_is_a_signed_sendsms_call_with_the_template_and_params_in_order(
    provider: TencentSmsProvider, tencent: FakeTencentSms
) -> None:
    result = await provider.send(outbound("sms", MOBILE, rendered()))
    assert result.accepted, result.error
    assert result.provider_message_id in tencent.sent
    request = tencent.requests[-1]
    assert request.headers["X-TC-Action"] == "SendSms" and request.headers["X-TC-Version"] == "2021-01-11"
    assert request.headers["X-TC-Region"] == "ap-guangzhou"
    assert "SignedHeaders=content-type;host;x-tc-action," in request.headers["Authorization"]
    assert request.json() == {
        "PhoneNumberSet": [MOBILE],
        "SmsSdkAppId": tencent.sdk_app_id,
        "TemplateId": "449739",
        "TemplateParamSet": ["1234", "5"],
        "SessionContext": "msg_01HZX3",
        "SignName": "腾讯云",
    }


async def test_the_templates_sign_name_wins_over_the_accounts(
    provider: TencentSmsProvider, tencent: FakeTencentSms
) -> None:
    tencent.sign_names.add("小店")
    result = await provider.send(outbound("sms", MOBILE, rendered(template_id="449739", sign_name="小店")))
    assert tencent.sent[result.provider_message_id or ""]["SignName"] == "小店"


async def test_a_job_without_a_template_for_this_provider_is_refused_without_a_call(
    provider: TencentSmsProvider, tencent: FakeTencentSms
) -> None:
    assert provider.capabilities.requires_registered_template
    for content in ({"text": "您的验证码是 1234"}, rendered("tencent_marketing")):
        result = await provider.send(outbound("sms", MOBILE, content))
        assert result.error is not None
        assert (result.error.kind, result.error.code) == (ErrorKind.PERMANENT, "template_required")
    assert tencent.requests == []


async def test_a_wrong_secret_key_is_refused_by_the_fake_and_transient_for_us(tencent: FakeTencentSms) -> None:
    adapter = TencentSmsProvider(settings_for(tencent, secret_key="wrong"))
    await adapter.start()
    try:
        result = await adapter.send(outbound("sms", MOBILE, rendered()))
    finally:
        await adapter.close()
    assert result.error is not None
    assert (result.error.kind, result.error.code) == (ErrorKind.TRANSIENT, "AuthFailure.SignatureFailure")
    assert tencent.sent == {}


async def post_raw(fake: FakeTencentSms, body: bytes, headers: dict[str, str]) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.post(fake.url + "/", data=body, headers=headers) as got:
        assert got.status == 200  # TencentCloud API answers refusals with 200 and Response.Error
        answer: dict[str, object] = await got.json()
        return answer


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("body", "AuthFailure.SignatureFailure"),
        ("action", "AuthFailure.SignatureFailure"),
        ("stale", "AuthFailure.SignatureExpire"),
        ("secret_id", "AuthFailure.SecretIdNotFound"),
    ],
)
async def test_the_fake_refuses_a_request_not_signed_for_what_it_carries(
    provider: TencentSmsProvider, tencent: FakeTencentSms, tamper: str, code: str
) -> None:
    payload = provider.payload(outbound("sms", MOBILE, rendered()))
    body = orjson.dumps(payload)
    stamp = int(time.time()) - (600 if tamper == "stale" else 0)
    headers = provider.signed_headers(body, stamp)
    if tamper == "body":
        body = body.replace(b"1234", b"9999")
    elif tamper == "action":
        headers["X-TC-Action"] = "SendSmsX"
    elif tamper == "secret_id":
        headers["Authorization"] = headers["Authorization"].replace(tencent.secret_id, "AKIDother")
    answer = await post_raw(tencent, body, headers)
    assert answer["Response"]["Error"]["Code"] == code  # type: ignore[index]
    assert tencent.sent == {}
    # The same request as the adapter signed it passes.
    untouched = orjson.dumps(payload)
    assert "SendStatusSet" in (await post_raw(tencent, untouched, provider.signed_headers(untouched)))["Response"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("code", "kind", "wait"),
    [
        ("FailedOperation.TemplateIncorrectOrUnapproved", ErrorKind.PERMANENT, None),
        ("FailedOperation.ContainSensitiveWord", ErrorKind.PERMANENT, None),
        ("FailedOperation.PhoneNumberInBlacklist", ErrorKind.RECIPIENT_OPTED_OUT, None),
        ("FailedOperation.InsufficientBalanceInSmsPackage", ErrorKind.TRANSIENT, None),
        ("FailedOperation.MarketingSendTimeConstraint", ErrorKind.RATE_LIMITED, 3600.0),
        ("FailedOperation.SomethingNew", ErrorKind.PERMANENT, None),
        ("LimitExceeded.PhoneNumberThirtySecondLimit", ErrorKind.RATE_LIMITED, 30.0),
        ("LimitExceeded.PhoneNumberDailyLimit", ErrorKind.RATE_LIMITED, 3600.0),
        ("LimitExceeded.DeliveryFrequencyLimit", ErrorKind.RATE_LIMITED, 60.0),
        ("LimitExceeded.SomethingNew", ErrorKind.RATE_LIMITED, 1.0),
        ("LimitExceeded.PhoneNumberCountLimit", ErrorKind.PERMANENT, None),
        ("RequestLimitExceeded", ErrorKind.RATE_LIMITED, 1.0),
        ("InvalidParameterValue.IncorrectPhoneNumber", ErrorKind.RECIPIENT_INVALID, None),
        ("InvalidParameterValue.ProhibitedUseUrlInTemplateParameter", ErrorKind.PERMANENT, None),
        ("InvalidParameterValue.SdkAppIdNotExist", ErrorKind.TRANSIENT, None),
        ("InvalidParameter.DirtyWordFound", ErrorKind.PERMANENT, None),
        ("MissingParameter.EmptyPhoneNumberSet", ErrorKind.PERMANENT, None),
        ("UnsupportedOperation.UnsuportedRegion", ErrorKind.PERMANENT, None),
        ("AuthFailure.SignatureExpire", ErrorKind.TRANSIENT, None),
        ("UnauthorizedOperation.SerivceSuspendDueToArrears", ErrorKind.TRANSIENT, None),
        ("InternalError.Timeout", ErrorKind.TRANSIENT, None),
        ("InternalError", ErrorKind.TRANSIENT, None),
        ("SomethingElse", ErrorKind.PERMANENT, None),
    ],
)
def test_the_error_table_classes_codes_and_their_groups(code: str, kind: ErrorKind, wait: float | None) -> None:
    assert (error_kind(code), retry_wait(code)) == (kind, wait)


def test_every_group_entry_of_the_table_ends_with_a_dot_or_is_a_whole_code() -> None:
    assert all(key.endswith(".") or key.count(".") <= 1 for key in ERROR_KINDS)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("LimitExceeded.PhoneNumberOneHourLimit", ErrorKind.RATE_LIMITED),
        ("FailedOperation.InsufficientBalanceInSmsPackage", ErrorKind.TRANSIENT),
        ("InternalError.SendAndRecvFail", ErrorKind.TRANSIENT),
    ],
)
async def test_a_refused_request_is_classed_from_its_error_code(
    provider: TencentSmsProvider, tencent: FakeTencentSms, code: str, kind: ErrorKind
) -> None:
    tencent.refuse_next(1, code)
    result = await provider.send(outbound("sms", MOBILE, rendered()))
    assert result.error is not None and (result.error.code, result.error.kind) == (code, kind)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("FailedOperation.PhoneNumberInBlacklist", ErrorKind.RECIPIENT_OPTED_OUT),
        ("LimitExceeded.PhoneNumberDailyLimit", ErrorKind.RATE_LIMITED),
    ],
)
async def test_a_numbers_own_status_code_is_classed(
    provider: TencentSmsProvider, tencent: FakeTencentSms, code: str, kind: ErrorKind
) -> None:
    tencent.number_codes[MOBILE] = code
    result = await provider.send(outbound("sms", MOBILE, rendered()))
    assert result.error is not None and (result.error.code, result.error.kind) == (code, kind)


async def test_a_number_tencent_cannot_read_is_recipient_invalid(provider: TencentSmsProvider) -> None:
    result = await provider.send(outbound("sms", "+86138", rendered()))
    assert result.error is not None
    assert (result.error.kind, result.error.code) == (
        ErrorKind.RECIPIENT_INVALID,
        "InvalidParameterValue.IncorrectPhoneNumber",
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"templates": {}}, "FailedOperation.TemplateIncorrectOrUnapproved"),
        ({"templates": {"449739": 3}}, "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"),
        ({"sign_names": set()}, "FailedOperation.SignatureIncorrectOrUnapproved"),
    ],
)
async def test_a_template_or_signature_tencent_has_not_approved_is_refused_for_good(
    provider: TencentSmsProvider, tencent: FakeTencentSms, change: dict[str, object], code: str
) -> None:
    for name, value in change.items():
        setattr(tencent, name, value)
    result = await provider.send(outbound("sms", MOBILE, rendered()))
    assert result.error is not None and (result.error.kind, result.error.code) == (ErrorKind.PERMANENT, code)
    assert tencent.sent == {}


async def test_5xx_without_json_is_transient(provider: TencentSmsProvider, tencent: FakeTencentSms) -> None:
    tencent.fail_next(1, 502, b"<html>bad gateway</html>")
    result = await provider.send(outbound("sms", MOBILE, rendered()))
    assert result.error is not None and (result.error.kind, result.error.code) == (ErrorKind.TRANSIENT, "HTTP502")


# -- callbacks --------------------------------------------------------------------------------------


async def test_a_status_callback_becomes_receipts(
    provider: TencentSmsProvider, tencent: FakeTencentSms, sink: CallbackSink
) -> None:
    delivered = (await provider.send(outbound("sms", MOBILE, rendered()))).provider_message_id or ""
    failed = (await provider.send(outbound("sms", MOBILE, rendered(), reference="msg_2"))).provider_message_id or ""
    url = f"{sink.url}/v1/receipts/tencent?token={TOKEN}"
    await tencent.push(url, tencent.status_callback(delivered))
    await tencent.push(url, tencent.status_callback(failed, success=False, errmsg="MK:0005"))
    [first] = provider.parse_receipts(arrived(sink, 0))
    [second] = provider.parse_receipts(arrived(sink, 1))
    assert (first.provider_message_id, first.status, first.error_code) == (delivered, "delivered", None)
    assert (second.provider_message_id, second.status, second.error_code) == (failed, "undelivered", "MK:0005")
    assert first.occurred_at == 1741083630.0  # 2025-03-04 18:20:30 in China time


async def test_a_filtered_code_in_a_status_callback_flags_the_sender(
    tencent: FakeTencentSms, sink: CallbackSink
) -> None:
    adapter = TencentSmsProvider(settings_for(tencent, filtered_codes=("MN:0017",)))
    await adapter.start()
    try:
        ids = [(await adapter.send(outbound("sms", MOBILE, rendered()))).provider_message_id or "" for _ in "ab"]
    finally:
        await adapter.close()
    url = f"{sink.url}/v1/receipts/tencent?token={TOKEN}"
    await tencent.push(url, tencent.status_callback(ids[0], success=False, errmsg="MN:0017"))
    await tencent.push(url, tencent.status_callback(ids[1], success=False, errmsg="MK:0001"))
    kinds = [adapter.parse_receipts(arrived(sink, i))[0].error_kind for i in range(2)]
    assert kinds == [ErrorKind.SENDER_FLAGGED, None]


async def test_a_callback_without_the_right_token_is_refused(
    provider: TencentSmsProvider, tencent: FakeTencentSms
) -> None:
    serial = (await provider.send(outbound("sms", MOBILE, rendered()))).provider_message_id or ""
    body = tencent.status_callback(serial)
    for url in ("https://g/v1/receipts/tencent", "https://g/v1/receipts/tencent?token=guess"):
        with pytest.raises(SignatureError):
            provider.parse_receipts(InboundRequest("POST", url, {}, body))
    unconfigured = TencentSmsProvider(settings_for(tencent, callback_token=None))
    assert not unconfigured.capabilities.receipts
    with pytest.raises(SignatureError):
        unconfigured.parse_receipts(InboundRequest("POST", "https://g/v1/receipts/tencent?token=", {}, body))


@pytest.mark.parametrize(
    "body",
    [b'{"sid": "1"}', b'[{"report_status": "SUCCESS"}]', b'[{"sid": "1", "report_status": "MAYBE"}]', b"not json"],
)
def test_a_callback_that_is_not_a_status_array_is_malformed(provider: TencentSmsProvider, body: bytes) -> None:
    with pytest.raises(CallbackFormatError):
        provider.parse_receipts(InboundRequest("POST", f"https://g/r?token={TOKEN}", {}, body))


def test_replies_are_parsed_from_a_reply_callback(provider: TencentSmsProvider) -> None:
    body = FakeTencentSms.reply_callback("13800138000", "退订", extend="12")
    [reply] = provider.parse_inbound(InboundRequest("POST", f"https://g/i?token={TOKEN}", {}, body))
    assert (reply.sender, reply.text, reply.to, reply.received_at) == ("+8613800138000", "退订", "12", 1741083600.0)


def test_callbacks_are_answered_as_tencent_expects(provider: TencentSmsProvider) -> None:
    for kind in ("receipts", "inbound"):
        answer = as_received(provider.acknowledge(kind, {"applied": 1}))  # type: ignore[arg-type]
        assert FakeTencentSms.acknowledged(answer)
        assert orjson.loads(answer.body) == {"result": 0, "errmsg": "OK"}
    assert not FakeTencentSms.acknowledged(as_received(json_answer({"applied": 1})))


# -- configuration ----------------------------------------------------------------------------------


def test_a_section_reads_the_secret_key_from_a_file_and_keeps_it_out_of_reprs(tmp_path: Path) -> None:
    secret = tmp_path / "tencent_secret_key"
    secret.write_text("file-secret-key\n")
    section = {"secret_id": "AKID1", "secret_key_file": str(secret), "sms_sdk_app_id": "1400000001"}
    [adapter] = build_sections(resolve_secrets({"tencent": section}), "https://gw.example.com")
    assert isinstance(adapter, TencentSmsProvider)
    assert adapter.settings.secret_key == "file-secret-key"
    assert "file-secret-key" not in repr(adapter)

"""The adapters against the real services, only when credentials are in the environment.

Twilio's test credentials (TWILIO_TEST_ACCOUNT_SID / TWILIO_TEST_AUTH_TOKEN) cost nothing and
answer the documented magic numbers: From +15005550006 is valid, To +15005550001 is invalid
(21211), +15005550004 has opted out (21610), +15005550009 cannot take SMS (21614).
"""

from __future__ import annotations

import base64
import os

import pytest

from providers.aliyun import AliyunSettings, AliyunSmsProvider
from providers.base import ErrorKind
from providers.fcm import FcmProvider, FcmSettings
from providers.tencent import TencentSettings, TencentSmsProvider
from providers.twilio import TwilioProvider, TwilioSettings
from tests.integration.providers.conftest import outbound


def env(*names: str) -> dict[str, str]:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.skip(f"live test: {', '.join(missing)} not set")
    return {name: os.environ[name] for name in names}


@pytest.mark.parametrize(
    ("to", "kind", "code"),
    [
        ("+15005550006", None, None),
        ("+15005550001", ErrorKind.RECIPIENT_INVALID, "21211"),
        ("+15005550004", ErrorKind.RECIPIENT_OPTED_OUT, "21610"),
        ("+15005550009", ErrorKind.RECIPIENT_INVALID, "21614"),
    ],
)
async def test_twilio_test_credentials_magic_numbers(to: str, kind: ErrorKind | None, code: str | None) -> None:
    values = env("TWILIO_TEST_ACCOUNT_SID", "TWILIO_TEST_AUTH_TOKEN")
    adapter = TwilioProvider(
        TwilioSettings(
            account_sid=values["TWILIO_TEST_ACCOUNT_SID"],
            auth_token=values["TWILIO_TEST_AUTH_TOKEN"],
            from_number="+15005550006",
        )
    )
    await adapter.start()
    try:
        result = await adapter.send(outbound("sms", to, {"text": "delivery-gateway live test"}))
    finally:
        await adapter.close()
    got = (result.error.kind, result.error.code) if result.error else (None, None)
    assert got == (kind, code)


async def test_twilio_real_sms() -> None:
    values = env("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "TWILIO_LIVE_TO")
    adapter = TwilioProvider(
        TwilioSettings(
            account_sid=values["TWILIO_ACCOUNT_SID"],
            auth_token=values["TWILIO_AUTH_TOKEN"],
            from_number=values["TWILIO_FROM"],
        )
    )
    await adapter.start()
    try:
        result = await adapter.send(outbound("sms", values["TWILIO_LIVE_TO"], {"text": "delivery-gateway live test"}))
    finally:
        await adapter.close()
    assert result.accepted, result.error


async def test_aliyun_real_sms() -> None:
    values = env(
        "ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET", "ALIYUN_SIGN_NAME", "ALIYUN_TEMPLATE_CODE", "ALIYUN_LIVE_TO"
    )
    adapter = AliyunSmsProvider(
        AliyunSettings(
            access_key_id=values["ALIYUN_ACCESS_KEY_ID"],
            access_key_secret=values["ALIYUN_ACCESS_KEY_SECRET"],
            sign_name=values["ALIYUN_SIGN_NAME"],
            free_text_template=values["ALIYUN_TEMPLATE_CODE"],
        )
    )
    await adapter.start()
    try:
        result = await adapter.send(outbound("sms", values["ALIYUN_LIVE_TO"], {"text": "live test"}))
    finally:
        await adapter.close()
    assert result.accepted, result.error


async def test_tencent_real_sms() -> None:
    """TENCENT_TEMPLATE_PARAMS: the approved template's variables, comma-separated, in order."""
    names = ("TENCENT_SECRET_ID", "TENCENT_SECRET_KEY", "TENCENT_SMS_SDK_APP_ID", "TENCENT_SIGN_NAME")
    values = env(*names, "TENCENT_TEMPLATE_ID", "TENCENT_LIVE_TO")
    adapter = TencentSmsProvider(
        TencentSettings(
            secret_id=values["TENCENT_SECRET_ID"],
            secret_key=values["TENCENT_SECRET_KEY"],
            sms_sdk_app_id=values["TENCENT_SMS_SDK_APP_ID"],
            sign_name=values["TENCENT_SIGN_NAME"],
        )
    )
    params = [p for p in os.environ.get("TENCENT_TEMPLATE_PARAMS", "").split(",") if p]
    content = {
        "text": "live test",
        "template_params": {str(i): p for i, p in enumerate(params, 1)},
        "provider_templates": {"tencent": {"template_id": values["TENCENT_TEMPLATE_ID"]}},
    }
    await adapter.start()
    try:
        result = await adapter.send(outbound("sms", values["TENCENT_LIVE_TO"], content))
    finally:
        await adapter.close()
    assert result.accepted, result.error


async def test_fcm_real_push_to_a_bogus_token_is_recipient_invalid() -> None:
    values = env("FCM_SERVICE_ACCOUNT_FILE")
    adapter = FcmProvider(FcmSettings.from_service_account(values["FCM_SERVICE_ACCOUNT_FILE"]))
    await adapter.start()
    try:
        bogus = base64.urlsafe_b64encode(os.urandom(60)).decode()
        result = await adapter.send(outbound("push", bogus, {"title": "t", "body": "b"}))
    finally:
        await adapter.close()
    assert result.error is not None and result.error.kind == ErrorKind.RECIPIENT_INVALID

"""FCM HTTP v1 adapter against a fake OAuth2 token endpoint and messages:send."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from gateway.provider_registry import ProviderRegistry
from providers.base import ErrorKind, InboundRequest, SignatureError
from providers.fcm import FcmProvider, FcmSettings
from tests.fakes.fcm import FakeFcm
from tests.integration.providers.conftest import outbound

DEVICE = "fGx1:APA91bExampleDeviceToken"


@pytest.fixture
async def fcm() -> AsyncIterator[FakeFcm]:
    async with FakeFcm() as fake:
        yield fake


def settings_for(fake: FakeFcm, **overrides: object) -> FcmSettings:
    return FcmSettings.from_service_account(fake.service_account(), base_url=fake.url, timeout=2.0, **overrides)


@pytest.fixture
async def provider(fcm: FakeFcm) -> AsyncIterator[FcmProvider]:
    adapter = FcmProvider(settings_for(fcm))
    await adapter.start()
    yield adapter
    await adapter.close()


PUSH = {"title": "Come back", "body": "Your cart misses you", "data": {"deeplink": "app://cart", "items": 3}}


async def test_a_push_is_sent_with_a_token_from_a_signed_jwt(provider: FcmProvider, fcm: FakeFcm) -> None:
    result = await provider.send(outbound("push", DEVICE, PUSH))
    assert result.accepted and (result.provider_message_id or "").startswith("projects/demo-project/messages/")
    [claims] = fcm.assertions
    assert claims["iss"] == fcm.client_email and claims["aud"] == f"{fcm.url}/token"
    assert claims["exp"] - claims["iat"] == 3600
    [message] = fcm.delivered
    assert message == {
        "token": DEVICE,
        "notification": {"title": "Come back", "body": "Your cart misses you"},
        "data": {"deeplink": "app://cart", "items": "3"},  # FCM data values must be strings
    }
    request = fcm.requests[-1]
    assert request.path == "/v1/projects/demo-project/messages:send"
    assert request.headers["Authorization"].startswith("Bearer ya29.fake-")


async def test_the_token_is_reused_until_near_expiry(fcm: FakeFcm) -> None:
    fcm.token_lifetime = 3600
    adapter = FcmProvider(settings_for(fcm, token_margin=300))
    await adapter.start()
    try:
        for _ in range(3):
            assert (await adapter.send(outbound("push", DEVICE, PUSH))).accepted
        assert len(fcm.assertions) == 1
        fcm.token_lifetime = 200  # shorter than the margin: each send needs a fresh token
        adapter._token = None
        for _ in range(2):
            assert (await adapter.send(outbound("push", DEVICE, PUSH))).accepted
        assert len(fcm.assertions) == 3
    finally:
        await adapter.close()


async def test_a_revoked_token_is_replaced_and_the_send_retried_once(provider: FcmProvider, fcm: FakeFcm) -> None:
    assert (await provider.send(outbound("push", DEVICE, PUSH))).accepted
    fcm.revoke_tokens()
    assert (await provider.send(outbound("push", DEVICE, PUSH))).accepted
    assert len(fcm.assertions) == 2 and len(fcm.delivered) == 2


async def test_a_key_the_service_does_not_know_is_refused_and_transient(fcm: FakeFcm) -> None:
    async with FakeFcm() as stranger:
        # Same claims, a different key: Google refuses the assertion, nothing is sent.
        settings = FcmSettings.from_service_account(
            {**fcm.service_account(), "private_key": stranger.service_account()["private_key"]}, base_url=fcm.url
        )
    adapter = FcmProvider(settings)
    await adapter.start()
    try:
        result = await adapter.send(outbound("push", DEVICE, PUSH))
    finally:
        await adapter.close()
    assert result.error is not None
    assert (result.error.kind, result.error.code) == (ErrorKind.TRANSIENT, "oauth_invalid_grant")
    assert fcm.delivered == []


async def test_unregistered_and_invalid_tokens_are_recipient_invalid(provider: FcmProvider, fcm: FakeFcm) -> None:
    fcm.unregistered.add("gone")
    fcm.invalid.add("garbage")
    gone = await provider.send(outbound("push", "gone", PUSH))
    garbage = await provider.send(outbound("push", "garbage", PUSH))
    assert gone.error is not None and (gone.error.kind, gone.error.code) == (
        ErrorKind.RECIPIENT_INVALID,
        "UNREGISTERED",
    )
    assert garbage.error is not None
    assert (garbage.error.kind, garbage.error.code) == (ErrorKind.RECIPIENT_INVALID, "INVALID_ARGUMENT")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("QUOTA_EXCEEDED", ErrorKind.RATE_LIMITED),
        ("UNAVAILABLE", ErrorKind.TRANSIENT),
        ("INTERNAL", ErrorKind.TRANSIENT),
        ("SENDER_ID_MISMATCH", ErrorKind.RECIPIENT_INVALID),
    ],
)
async def test_fcm_error_codes_are_classed(provider: FcmProvider, fcm: FakeFcm, code: str, kind: ErrorKind) -> None:
    fcm.fail_with(1, code, {"Retry-After": "30"})
    result = await provider.send(outbound("push", DEVICE, PUSH))
    assert result.error is not None and (result.error.kind, result.error.code) == (kind, code)
    assert result.error.retry_after == (30.0 if kind.retryable else None)


async def test_a_bad_payload_field_is_permanent_not_a_bad_token(provider: FcmProvider, fcm: FakeFcm) -> None:
    # Our adapter stringifies data values, so make the fake see a non-string via a scripted answer.
    field = "message.data[0].value"
    fcm.fail_next(1, 400, {"error": {"code": 400, "message": "Invalid value", "status": "INVALID_ARGUMENT",
                                     "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                                  "fieldViolations": [{"field": field}]}]}})  # fmt: skip
    result = await provider.send(outbound("push", DEVICE, PUSH))
    assert result.error is not None and result.error.kind == ErrorKind.PERMANENT


def test_settings_load_a_service_account_file(fcm: FakeFcm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sa.json"
    path.write_bytes(orjson.dumps(fcm.service_account()))
    settings = FcmSettings.from_service_account(str(path))
    assert settings.project_id == "demo-project" and settings.token_uri == f"{fcm.url}/token"
    assert "PRIVATE KEY" not in repr(settings) and "PRIVATE KEY" not in repr(FcmProvider(settings))


def test_fcm_takes_no_callbacks(provider: FcmProvider) -> None:
    assert not provider.capabilities.receipts and provider.capabilities.channels == {"push"}
    with pytest.raises(SignatureError):
        provider.parse_receipts(InboundRequest("POST", "https://g/v1/receipts/fcm", {}, b"{}"))


def test_a_huawei_token_is_not_one_fcm_delivers_to(provider: FcmProvider) -> None:
    registry = ProviderRegistry([provider])
    assert registry.push_platforms == {"android", "ios", "web"}

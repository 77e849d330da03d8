"""Signed webhook adapter against a receiver that verifies Standard Webhooks signatures."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from providers.base import ErrorKind, SignatureError
from providers.http import HandoffUnknown
from providers.webhook import WebhookProvider, WebhookSettings, sign, verify
from tests.fakes.webhook_receiver import FakeWebhookReceiver
from tests.integration.providers.conftest import outbound
from tests.servers import free_port

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
async def receiver() -> AsyncIterator[FakeWebhookReceiver]:
    async with FakeWebhookReceiver(SECRET) as fake:
        yield fake


@pytest.fixture
async def provider() -> AsyncIterator[WebhookProvider]:
    adapter = WebhookProvider(WebhookSettings(secret=SECRET, timeout=1.0))
    await adapter.start()
    yield adapter
    await adapter.close()


def test_signing_matches_the_standard_webhooks_reference_vector() -> None:
    # From standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py (test_sign_function).
    signature = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                     b'{"test": 2432232314}')  # fmt: skip
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_accepts_one_good_signature_among_several_and_refuses_stale_or_forged() -> None:
    body, now = b'{"a":1}', time.time()
    good = sign(SECRET, "msg_1", int(now), body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now)), "webhook-signature": f"v1,AAAA {good}"}
    verify(SECRET, headers, body, now)
    with pytest.raises(SignatureError):
        verify(SECRET, headers, b'{"a":2}', now)
    with pytest.raises(SignatureError):
        verify(SECRET, headers, body, now + 301)
    with pytest.raises(SignatureError):
        verify(SECRET, {"webhook-id": "msg_1"}, body, now)


async def test_a_job_is_posted_signed_and_the_receiver_accepts_it(
    provider: WebhookProvider, receiver: FakeWebhookReceiver
) -> None:
    result = await provider.send(outbound("webhook", receiver.url + "/hooks", {"payload": {"order": 42}}))
    assert result.accepted and result.provider_message_id == "msg_01HZX3"
    assert result.delivered, "the 2xx is the delivery receipt"
    [received] = receiver.received
    assert received.valid and received.msg_id == "msg_01HZX3"
    body = orjson.loads(received.body)
    assert (body["id"], body["type"], body["data"]) == ("msg_01HZX3", "message", {"order": 42})
    assert receiver.requests[-1].headers["Content-Type"] == "application/json"


async def test_a_retry_keeps_the_webhook_id(provider: WebhookProvider, receiver: FakeWebhookReceiver) -> None:
    receiver.fail_next(1, 503)
    job = outbound("webhook", receiver.url + "/hooks", {"payload": {}})
    assert not (await provider.send(job)).accepted
    assert (await provider.send(job)).accepted
    assert [r.headers["webhook-id"] for r in receiver.requests] == ["msg_01HZX3", "msg_01HZX3"]


async def test_a_receiver_with_another_secret_refuses_and_we_call_it_permanent(provider: WebhookProvider) -> None:
    async with FakeWebhookReceiver("whsec_" + base64.b64encode(b"x" * 32).decode()) as stranger:
        result = await provider.send(outbound("webhook", stranger.url, {"payload": {}}))
    assert result.error is not None and (result.error.kind, result.error.code) == (ErrorKind.PERMANENT, "HTTP401")
    assert stranger.received == []


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        (410, {}, ErrorKind.PERMANENT, None),
        (429, {"Retry-After": "12"}, ErrorKind.RATE_LIMITED, 12.0),
        (429, {}, ErrorKind.RATE_LIMITED, 1.0),
        (500, {}, ErrorKind.TRANSIENT, None),
        (503, {"Retry-After": "5"}, ErrorKind.TRANSIENT, 5.0),
        (400, {}, ErrorKind.PERMANENT, None),
        (302, {"Location": "https://elsewhere.example"}, ErrorKind.PERMANENT, None),
    ],
)
async def test_answers_are_classed(
    provider: WebhookProvider,
    receiver: FakeWebhookReceiver,
    status: int,
    headers: dict[str, str],
    kind: ErrorKind,
    retry_after: float | None,
) -> None:
    receiver.fail_next(1, status, b"", headers)
    result = await provider.send(outbound("webhook", receiver.url, {"payload": {}}))
    assert result.error is not None
    assert (result.error.kind, result.error.code, result.error.retry_after) == (kind, f"HTTP{status}", retry_after)
    assert len(receiver.requests) == 1  # a redirect is not followed


async def test_an_unreachable_receiver_is_transient_and_a_silent_one_is_unknown(
    provider: WebhookProvider, receiver: FakeWebhookReceiver
) -> None:
    result = await provider.send(outbound("webhook", f"http://127.0.0.1:{free_port()}/", {"payload": {}}))
    assert result.error is not None and result.error.kind == ErrorKind.TRANSIENT
    receiver.hang_next(1, 3.0)
    with pytest.raises(HandoffUnknown):
        await provider.send(outbound("webhook", receiver.url, {"payload": {}}))


def test_the_secret_stays_out_of_repr_and_must_be_base64() -> None:
    assert SECRET not in repr(WebhookProvider(WebhookSettings(secret=SECRET)))
    with pytest.raises(ValueError):
        WebhookSettings(secret="whsec_not base64!")
    assert not WebhookProvider(WebhookSettings(secret=SECRET)).capabilities.receipts

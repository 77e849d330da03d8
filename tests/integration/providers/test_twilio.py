"""Twilio adapter against a fake Twilio that speaks the REST API and signs its callbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest

from providers.base import ErrorKind, InboundRequest, SignatureError, json_answer
from providers.http import HandoffUnknown
from providers.twilio import TwilioProvider, TwilioSettings, compute_signature, validate_signature
from tests.fakes.http import CallbackSink
from tests.fakes.twilio import FakeTwilio, error_body
from tests.integration.providers.conftest import arrived, as_received, outbound
from tests.servers import free_port

SMS_TO = "+14155550100"
FROM = "+14155550199"


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


def settings_for(fake: FakeTwilio, sink: CallbackSink | None = None, **overrides: object) -> TwilioSettings:
    values: dict[str, object] = {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "from_number": FROM,
        "api_base_url": fake.url,
        "public_base_url": sink.url if sink else None,
        "timeout": 2.0,
        **overrides,
    }
    return TwilioSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def provider(twilio: FakeTwilio, sink: CallbackSink) -> AsyncIterator[TwilioProvider]:
    adapter = TwilioProvider(settings_for(twilio, sink))
    await adapter.start()
    yield adapter
    await adapter.close()


# -- Twilio's own published vectors -------------------------------------------------------------------
# From twilio-python, tests/unit/test_request_validator.py (ValidationTest): auth token "12345",
# URL https://mycompany.com/myapp.php?foo=1&bar=2 and the call parameters below.
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
    ("Caller", "+14158675309"),
]
VECTOR_BODY = '{"property": "value", "boolean": true}'
VECTOR_BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"


def test_signature_matches_twilio_python_vector() -> None:
    assert compute_signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_with_a_repeated_parameter_matches_twilio_python_vector() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert compute_signature(VECTOR_TOKEN, VECTOR_URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        (VECTOR_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        (VECTOR_URL.replace(".com", ".com:1234"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),  # removes port on https
        (VECTOR_URL.replace(".com", ".com:1234").replace("https", "http"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        (VECTOR_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # signed with :443 spelt out
        (VECTOR_URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # signed with :80 spelt out
    ],
)
def test_validation_passes_twilio_python_vectors(url: str, signature: str) -> None:
    assert validate_signature(VECTOR_TOKEN, url, VECTOR_PARAMS, signature)


def test_validation_of_a_json_body_passes_twilio_python_vector() -> None:
    url = VECTOR_URL + "&bodySHA256=" + VECTOR_BODY_HASH
    assert validate_signature(VECTOR_TOKEN, url, VECTOR_BODY, "a9nBmqA0ju/hNViExpshrM61xv4=")
    assert not validate_signature(VECTOR_TOKEN, url, VECTOR_BODY + " ", "a9nBmqA0ju/hNViExpshrM61xv4=")


def test_validation_refuses_other_params_tokens_and_urls() -> None:
    good = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert not validate_signature("54321", VECTOR_URL, VECTOR_PARAMS, good)
    assert not validate_signature(VECTOR_TOKEN, VECTOR_URL + "&baz=3", VECTOR_PARAMS, good)
    assert not validate_signature(VECTOR_TOKEN, VECTOR_URL, [*VECTOR_PARAMS[:-1], ("Caller", "+1")], good)
    assert not validate_signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, None)


# -- sending --------------------------------------------------------------------------------------


async def test_sms_is_a_form_post_with_basic_auth_and_a_status_callback(
    provider: TwilioProvider, twilio: FakeTwilio, sink: CallbackSink
) -> None:
    result = await provider.send(outbound("sms", SMS_TO, {"text": "Your code is 1234"}))
    assert result.accepted and result.provider_message_id and result.provider_message_id.startswith("SM")
    request = twilio.requests[-1]
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert request.form["To"] == SMS_TO and request.form["From"] == FROM
    assert request.form["Body"] == "Your code is 1234"
    assert request.form["StatusCallback"] == f"{sink.url}/v1/receipts/twilio?ref=msg_01HZX3"


async def test_sms_uses_the_pool_sender_over_the_default(provider: TwilioProvider, twilio: FakeTwilio) -> None:
    await provider.send(outbound("sms", SMS_TO, {"text": "hi"}, sender="+14155550142"))
    assert twilio.requests[-1].form["From"] == "+14155550142"


async def test_sms_without_a_from_number_uses_the_messaging_service(twilio: FakeTwilio) -> None:
    adapter = TwilioProvider(settings_for(twilio, from_number=None, messaging_service_sid="MG" + "1" * 32))
    await adapter.start()
    try:
        assert (await adapter.send(outbound("sms", SMS_TO, {"text": "hi"}))).accepted
    finally:
        await adapter.close()
    assert twilio.requests[-1].form["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in twilio.requests[-1].form
    assert "StatusCallback" not in twilio.requests[-1].form  # no public URL: no receipts asked for


CONTENT_SID = "HX" + "0123456789abcdef" * 2


def from_template(provider: str = "twilio", **ids: str) -> dict[str, object]:
    """Stored content of a job rendered from a template version with a Twilio Content template."""
    return {
        "text": "Ana, your order has shipped https://shop.example.com/o/1",
        "template_params": {"name": "Ana", "url": "https://shop.example.com/o/1"},
        "provider_templates": {provider: ids or {"content_sid": CONTENT_SID}},
    }


async def test_a_content_template_goes_as_content_sid_with_numbered_variables_and_no_body(
    provider: TwilioProvider, twilio: FakeTwilio
) -> None:
    twilio.contents[CONTENT_SID] = ("1", "2")
    result = await provider.send(outbound("sms", SMS_TO, from_template()))
    assert result.accepted, result.error
    form = twilio.created[result.provider_message_id or ""].form
    assert form["ContentSid"] == [CONTENT_SID] and "Body" not in form
    assert form["ContentVariables"] == ['{"1":"Ana","2":"https://shop.example.com/o/1"}']


async def test_a_content_template_with_named_variables_is_keyed_by_the_params_names(
    provider: TwilioProvider, twilio: FakeTwilio
) -> None:
    twilio.contents[CONTENT_SID] = ("name", "url")
    result = await provider.send(outbound("sms", SMS_TO, from_template(content_sid=CONTENT_SID, variables="named")))
    form = twilio.created[result.provider_message_id or ""].form
    assert form["ContentVariables"] == ['{"name":"Ana","url":"https://shop.example.com/o/1"}']


async def test_ids_for_another_twilio_section_leave_the_body(provider: TwilioProvider, twilio: FakeTwilio) -> None:
    result = await provider.send(outbound("sms", SMS_TO, from_template("twilio_us")))
    form = twilio.created[result.provider_message_id or ""].form
    assert form["Body"] == ["Ana, your order has shipped https://shop.example.com/o/1"] and "ContentSid" not in form


async def test_a_content_template_twilio_does_not_have_is_refused_for_good(
    provider: TwilioProvider, twilio: FakeTwilio
) -> None:
    result = await provider.send(outbound("sms", SMS_TO, from_template()))
    assert result.error is not None and (result.error.kind, result.error.code) == (ErrorKind.PERMANENT, "21655")
    assert twilio.created == {}


async def test_an_empty_param_is_refused_as_twilio_refuses_empty_content_variables(
    provider: TwilioProvider, twilio: FakeTwilio
) -> None:
    twilio.contents[CONTENT_SID] = ("1", "2")
    content = {**from_template(), "template_params": {"name": "", "url": "https://shop.example.com/o/1"}}
    result = await provider.send(outbound("sms", SMS_TO, content))
    assert result.error is not None and (result.error.kind, result.error.code) == (ErrorKind.PERMANENT, "21656")


async def test_voice_is_a_call_with_escaped_twiml_in_the_jobs_language(
    provider: TwilioProvider, twilio: FakeTwilio
) -> None:
    content = {"text": "Appointment <today> at 3 & bring ID", "language": "zh-CN"}
    result = await provider.send(outbound("voice", SMS_TO, content))
    assert result.accepted and result.provider_message_id and result.provider_message_id.startswith("CA")
    request = twilio.requests[-1]
    assert request.path.endswith("/Calls.json")
    assert request.form["Twiml"] == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        '<Say language="zh-CN">Appointment &lt;today&gt; at 3 &amp; bring ID</Say></Response>'
    )
    assert request.form.getall("StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]


async def test_voice_defaults_to_en_us(provider: TwilioProvider, twilio: FakeTwilio) -> None:
    await provider.send(outbound("voice", SMS_TO, {"text": "hello"}))
    assert '<Say language="en-US">hello</Say>' in twilio.requests[-1].form["Twiml"]


async def test_a_channel_twilio_does_not_carry_is_refused_without_a_request(
    provider: TwilioProvider, twilio: FakeTwilio
) -> None:
    result = await provider.send(outbound("email", "a@example.com", {"subject": "s", "text": "t"}))
    assert result.error is not None and result.error.kind == ErrorKind.PERMANENT
    assert twilio.requests == []


# -- error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "kind", "code"),
    [
        ("invalid_number", ErrorKind.RECIPIENT_INVALID, "21211"),
        ("opted_out", ErrorKind.RECIPIENT_OPTED_OUT, "21610"),
        ("not_mobile", ErrorKind.RECIPIENT_INVALID, "21614"),
    ],
)
async def test_number_errors_are_classed(
    provider: TwilioProvider, twilio: FakeTwilio, rule: str, kind: ErrorKind, code: str
) -> None:
    getattr(twilio, rule)(SMS_TO)
    result = await provider.send(outbound("sms", SMS_TO, {"text": "hi"}))
    assert result.error is not None
    assert (result.error.kind, result.error.code) == (kind, code)
    assert result.error.retry_after is None


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, 30007, ErrorKind.SENDER_FLAGGED),
        (400, 21408, ErrorKind.PERMANENT),
        (400, 21606, ErrorKind.SENDER_FLAGGED),
        (500, 20500, ErrorKind.TRANSIENT),
        (503, 20503, ErrorKind.TRANSIENT),
    ],
)
async def test_api_error_codes_are_classed(
    provider: TwilioProvider, twilio: FakeTwilio, status: int, code: int, kind: ErrorKind
) -> None:
    twilio.fail_next(1, status, error_body(code, "scripted", status))
    result = await provider.send(outbound("sms", SMS_TO, {"text": "hi"}))
    assert result.error is not None and (result.error.kind, result.error.code) == (kind, str(code))


async def test_429_is_rate_limited_with_the_servers_retry_after(provider: TwilioProvider, twilio: FakeTwilio) -> None:
    twilio.fail_next(1, 429, error_body(20429, "Too Many Requests", 429), {"Retry-After": "7"})
    result = await provider.send(outbound("sms", SMS_TO, {"text": "hi"}))
    assert result.error is not None
    assert (result.error.kind, result.error.code, result.error.retry_after) == (ErrorKind.RATE_LIMITED, "20429", 7.0)


async def test_a_5xx_without_a_json_body_is_transient(provider: TwilioProvider, twilio: FakeTwilio) -> None:
    twilio.fail_next(3, 502, b"<html>Bad Gateway</html>")
    results = [await provider.send(outbound("sms", SMS_TO, {"text": "hi"})) for _ in range(4)]
    assert [r.error.kind if r.error else None for r in results] == [ErrorKind.TRANSIENT] * 3 + [None]


async def test_wrong_credentials_are_refused_by_the_fake_and_transient_for_us(twilio: FakeTwilio) -> None:
    adapter = TwilioProvider(settings_for(twilio, auth_token="not-the-token"))
    await adapter.start()
    try:
        result = await adapter.send(outbound("sms", SMS_TO, {"text": "hi"}))
    finally:
        await adapter.close()
    assert result.error is not None and (result.error.kind, result.error.code) == (ErrorKind.TRANSIENT, "20003")
    assert twilio.created == {}


async def test_an_unreachable_api_is_transient(twilio: FakeTwilio) -> None:
    adapter = TwilioProvider(settings_for(twilio, api_base_url=f"http://127.0.0.1:{free_port()}"))
    await adapter.start()
    try:
        result = await adapter.send(outbound("sms", SMS_TO, {"text": "hi"}))
    finally:
        await adapter.close()
    assert result.error is not None and (result.error.kind, result.error.code) == (
        ErrorKind.TRANSIENT,
        "connect_failed",
    )


async def test_a_request_left_unanswered_is_a_handoff_of_unknown_outcome(twilio: FakeTwilio) -> None:
    adapter = TwilioProvider(settings_for(twilio, timeout=0.3))
    await adapter.start()
    twilio.hang_next(1, 2.0)
    try:
        with pytest.raises(HandoffUnknown):
            await adapter.send(outbound("sms", SMS_TO, {"text": "hi"}))
    finally:
        await adapter.close()


# -- callbacks ------------------------------------------------------------------------------------


async def test_a_message_status_callback_becomes_a_receipt_for_our_message(
    provider: TwilioProvider, twilio: FakeTwilio, sink: CallbackSink
) -> None:
    sid = (await provider.send(outbound("sms", SMS_TO, {"text": "hi"}))).provider_message_id
    assert sid is not None
    assert await twilio.send_status(sid, "delivered") == 200
    [receipt] = provider.parse_receipts(arrived(sink))
    assert (receipt.provider_message_id, receipt.status, receipt.reference) == (sid, "delivered", "msg_01HZX3")
    assert receipt.error_code is None


async def test_an_undelivered_callback_keeps_twilios_error_code(
    provider: TwilioProvider, twilio: FakeTwilio, sink: CallbackSink
) -> None:
    sid = (await provider.send(outbound("sms", SMS_TO, {"text": "hi"}))).provider_message_id
    assert sid is not None
    await twilio.send_status(sid, "undelivered", "30007")
    [receipt] = provider.parse_receipts(arrived(sink))
    assert (receipt.status, receipt.error_code) == ("undelivered", "30007")
    # 30007: the carrier filtered it as spam; the number sent it is flagged.
    assert receipt.error_kind == ErrorKind.SENDER_FLAGGED


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        ("undelivered", "30003", ErrorKind.TRANSIENT),
        ("undelivered", "30034", ErrorKind.SENDER_FLAGGED),
        ("failed", "30005", ErrorKind.RECIPIENT_INVALID),
        ("undelivered", "39999", None),
        ("delivered", None, None),
    ],
)
async def test_a_callbacks_error_code_is_classified(
    provider: TwilioProvider, twilio: FakeTwilio, sink: CallbackSink, status: str, code: str | None, kind: object
) -> None:
    sid = (await provider.send(outbound("sms", SMS_TO, {"text": "hi"}))).provider_message_id
    assert sid is not None
    await twilio.send_status(sid, status, code)
    [receipt] = provider.parse_receipts(arrived(sink))
    assert receipt.error_kind == kind


async def test_intermediate_message_statuses_record_nothing(
    provider: TwilioProvider, twilio: FakeTwilio, sink: CallbackSink
) -> None:
    sid = (await provider.send(outbound("sms", SMS_TO, {"text": "hi"}))).provider_message_id
    assert sid is not None
    await twilio.send_status(sid, "sending")
    assert provider.parse_receipts(arrived(sink)) == []


@pytest.mark.parametrize(
    ("call_status", "ours", "error_code"),
    [("completed", "delivered", None), ("busy", "undelivered", "busy"), ("failed", "failed", "failed")],
)
async def test_call_status_callbacks_become_receipts(
    provider: TwilioProvider,
    twilio: FakeTwilio,
    sink: CallbackSink,
    call_status: str,
    ours: str,
    error_code: str | None,
) -> None:
    sid = (await provider.send(outbound("voice", SMS_TO, {"text": "hi"}))).provider_message_id
    assert sid is not None
    await twilio.send_status(sid, call_status)
    [receipt] = provider.parse_receipts(arrived(sink))
    assert (receipt.provider_message_id, receipt.status, receipt.error_code) == (sid, ours, error_code)
    assert receipt.occurred_at == 1741083630.0  # the callback's Timestamp, Tue, 04 Mar 2025 10:20:30 +0000


async def test_a_tampered_callback_is_refused(provider: TwilioProvider, twilio: FakeTwilio, sink: CallbackSink) -> None:
    sid = (await provider.send(outbound("sms", SMS_TO, {"text": "hi"}))).provider_message_id
    assert sid is not None
    await twilio.send_status(sid, "undelivered", "30003")
    good = arrived(sink)
    forged = InboundRequest(good.method, good.url, good.headers, good.body.replace(b"undelivered", b"delivered"))
    with pytest.raises(SignatureError):
        provider.parse_receipts(forged)


async def test_a_callback_without_signature_or_for_another_url_is_refused(
    provider: TwilioProvider, twilio: FakeTwilio, sink: CallbackSink
) -> None:
    sid = (await provider.send(outbound("sms", SMS_TO, {"text": "hi"}))).provider_message_id
    assert sid is not None
    await twilio.send_status(sid, "delivered")
    good = arrived(sink)
    unsigned = {k: v for k, v in good.headers.items() if k.lower() != "x-twilio-signature"}
    with pytest.raises(SignatureError):
        provider.parse_receipts(InboundRequest(good.method, good.url, unsigned, good.body))
    # The ref is signed: a receipt cannot be re-pointed at another of our messages.
    other = good.url.replace("ref=msg_01HZX3", "ref=msg_other")
    with pytest.raises(SignatureError):
        provider.parse_receipts(InboundRequest(good.method, other, good.headers, good.body))


async def test_a_callback_signed_by_another_account_is_refused(
    provider: TwilioProvider, twilio: FakeTwilio, sink: CallbackSink
) -> None:
    sid = (await provider.send(outbound("sms", SMS_TO, {"text": "hi"}))).provider_message_id
    assert sid is not None
    twilio.auth_token = "someone-elses-token"
    await twilio.send_status(sid, "delivered")
    with pytest.raises(SignatureError):
        provider.parse_receipts(arrived(sink))


async def test_behind_a_proxy_the_configured_public_url_is_what_is_verified(twilio: FakeTwilio) -> None:
    public = "https://gateway.example.com"
    adapter = TwilioProvider(settings_for(twilio, public_base_url=public))
    await adapter.start()
    try:
        sid = (await adapter.send(outbound("sms", SMS_TO, {"text": "hi"}))).provider_message_id
    finally:
        await adapter.close()
    assert sid is not None
    url, body, headers = twilio.status_callback(sid, "delivered")
    assert url.startswith(public + "/v1/receipts/twilio?ref=")
    # What the gateway sees behind the proxy: its own internal address, same path and query.
    internal = "http://10.0.0.7:8080" + url.removeprefix(public)
    [receipt] = adapter.parse_receipts(InboundRequest("POST", internal, headers, body))
    assert receipt.status == "delivered"


async def test_incoming_sms_is_signature_checked_and_parsed(
    provider: TwilioProvider, twilio: FakeTwilio, sink: CallbackSink
) -> None:
    url = sink.url + "/v1/inbound/twilio"
    body, headers = twilio.incoming_sms(url, "+14155550100", FROM, "STOP")
    [reply] = provider.parse_inbound(InboundRequest("POST", url, headers, body))
    assert (reply.sender, reply.to, reply.text) == ("+14155550100", FROM, "STOP")
    with pytest.raises(SignatureError):
        provider.parse_inbound(InboundRequest("POST", url, headers, body.replace(b"STOP", b"YES")))


def test_credentials_stay_out_of_repr() -> None:
    settings = TwilioSettings(account_sid="AC1", auth_token="s3cr3t-token")
    assert "s3cr3t-token" not in repr(settings)
    assert "s3cr3t-token" not in repr(TwilioProvider(settings))


def test_capabilities_are_honest() -> None:
    with_receipts = TwilioProvider(TwilioSettings(account_sid="AC1", auth_token="x", public_base_url="https://g"))
    without = TwilioProvider(TwilioSettings(account_sid="AC1", auth_token="x"))
    assert with_receipts.capabilities.channels == {"sms", "voice"}
    assert with_receipts.capabilities.receipts and not without.capabilities.receipts
    assert not with_receipts.capabilities.lookup


def test_status_callback_reference_survives_encoding() -> None:
    adapter = TwilioProvider(TwilioSettings(account_sid="AC1", auth_token="x", public_base_url="https://g/"))
    url = adapter.status_callback_url("a b&c")
    assert url is not None and parse_qs(urlsplit(url).query)["ref"] == ["a b&c"]


def test_callbacks_are_answered_as_twilio_expects() -> None:
    adapter = TwilioProvider(TwilioSettings(account_sid="AC1", auth_token="x", public_base_url="https://g"))
    reply = as_received(adapter.acknowledge("inbound", {"opted_out": 1}))
    assert FakeTwilio.twiml_taken(reply), "an incoming message gets TwiML"
    assert reply.body == b'<?xml version="1.0" encoding="UTF-8"?><Response/>', "empty: no reply is sent"
    status = as_received(adapter.acknowledge("receipts", {"applied": 1}))
    assert FakeTwilio.status_callback_taken(status) and status.body == b""
    assert not FakeTwilio.twiml_taken(as_received(json_answer({"opted_out": 1}))), "our JSON is not TwiML"

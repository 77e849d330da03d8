"""The SMPP adapter against a fake SMSC that speaks SMPP 3.4 (tests/fakes/smsc.py, written apart from
the adapter): binds, windows, throttling, dropped connections, encodings, segments, receipts, MO."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from gateway.domain.content.encoding import measure_sms
from providers.base import ErrorKind, InboundMessage, Receipt
from providers.http import HandoffUnknown
from providers.smpp import SmppProvider, SmppSettings
from tests.fakes.smsc import (
    ESME_RINVDSTADR,
    ESME_RINVPASWD,
    ESME_RINVSRCADR,
    ESME_RMSGQFUL,
    ESME_RTHROTTLED,
    FakeSmsc,
    Fate,
)
from tests.integration.providers.conftest import outbound

TO = "+8613812345678"
FROM = "+14155550199"


class Intake:
    """Records what the provider hands over; can be made slow or failing."""

    def __init__(self) -> None:
        self.recorded: list[Receipt] = []
        self.replies: list[InboundMessage] = []
        self.gate: asyncio.Event | None = None
        self.failures = 0
        self.survived_errors: list[tuple[str, str]] = []

    def survived(self, loop: str, event: str, exc: BaseException, **context: Any) -> None:
        self.survived_errors.append((loop, repr(exc)))

    async def receipts(self, provider: str, receipts: Sequence[Receipt]) -> dict[str, int]:
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("store unavailable")
        self.recorded.extend(receipts)
        return {"applied": len(receipts)}

    async def inbound(self, provider: str, replies: Sequence[InboundMessage]) -> dict[str, int]:
        self.replies.extend(replies)
        return {"other": len(replies)}


@pytest.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    async with FakeSmsc({"acme": "secret"}) as fake:
        yield fake


def settings_for(smsc: FakeSmsc, **overrides: Any) -> SmppSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": "acme",
        "password": "secret",
        "response_timeout": 1.0,
        "connect_timeout": 2.0,
        "reconnect_min_seconds": 0.05,
        "receipt_batch_ms": 1.0,
        **overrides,
    }
    return SmppSettings(**values)


async def started(smsc: FakeSmsc, intake: Intake | None = None, **overrides: Any) -> SmppProvider:
    provider = SmppProvider(settings_for(smsc, **overrides))
    provider.attach(intake or Intake())
    await provider.start()
    return provider


def sms(text: str = "Your order has shipped", to: str = TO, **kwargs: Any) -> Any:
    return outbound("sms", to, {"text": text}, sender=kwargs.pop("sender", FROM), **kwargs)


async def test_a_message_goes_out_with_addresses_coding_receipt_request_and_validity(smsc: FakeSmsc) -> None:
    provider = await started(smsc)
    try:
        expires = time.time() + 3600
        result = await provider.send(sms("Price: 5€ [today]", expires_at=expires))
    finally:
        await provider.close()
    assert result.error is None
    (seen,) = smsc.submissions
    assert result.provider_message_id == seen.message_id
    assert (seen.source_addr_ton, seen.source_addr_npi, seen.source_addr) == (1, 1, "14155550199")
    assert (seen.dest_addr_ton, seen.dest_addr_npi, seen.destination_addr) == (1, 1, "8613812345678")
    assert (seen.data_coding, seen.registered_delivery, seen.text) == (0, 1, "Price: 5€ [today]")
    assert seen.validity_period == time.strftime("%y%m%d%H%M%S", time.gmtime(expires)) + "000+"


async def test_an_alphanumeric_sender_or_short_code_gets_its_ton(smsc: FakeSmsc) -> None:
    provider = await started(smsc)
    try:
        await provider.send(sms(sender="ACME Shop"))
        await provider.send(sms(sender="95588"))
    finally:
        await provider.close()
    assert [(s.source_addr_ton, s.source_addr_npi, s.source_addr) for s in smsc.submissions] == [
        (5, 0, "ACME Shop"),
        (3, 0, "95588"),
    ]


async def test_ucs2_and_multipart_with_the_content_policys_segment_count(smsc: FakeSmsc) -> None:
    text = "您的订单已发货，请注意查收。" * 12  # 168 UCS-2 units: 3 segments of 67
    length = measure_sms(text)
    provider = await started(smsc)
    try:
        result = await provider.send(sms(text, encoding=length.encoding, segments=length.segments))
    finally:
        await provider.close()
    assert len(smsc.submissions) == length.segments == 3
    assert {s.data_coding for s in smsc.submissions} == {8}
    assert [s.concatenation[1:] for s in smsc.submissions if s.concatenation] == [(3, 1), (3, 2), (3, 3)]
    assert smsc.texts_to("8613812345678") == [text]
    assert result.part_ids == tuple(s.message_id for s in smsc.submissions)
    assert result.provider_message_id == result.part_ids[0]


@pytest.mark.parametrize(
    "text",
    [
        "a" * 160,
        "a" * 161,
        "{" * 80,
        "a" * 152 + "€" + "b" * 10,  # an escape pair is never cut across two segments
        "😀" * 40,
        "x" * 66 + "😀" + "y" * 70,  # nor a surrogate pair
        "Grüße aus Köln! " * 30,
    ],
)
async def test_segments_agree_with_the_content_policy(smsc: FakeSmsc, text: str) -> None:
    length = measure_sms(text)
    provider = await started(smsc)
    try:
        result = await provider.send(sms(text, encoding=length.encoding, segments=length.segments))
    finally:
        await provider.close()
    assert result.error is None
    assert len(smsc.submissions) == length.segments
    assert smsc.texts_to("8613812345678") == [text]


@pytest.mark.parametrize("concatenation", ["sar", "payload"])
async def test_sar_tlvs_or_message_payload_where_the_account_says_so(smsc: FakeSmsc, concatenation: str) -> None:
    text = "Your parcel is on its way. " * 12  # 324 GSM-7 characters
    provider = await started(smsc, concatenation=concatenation)
    try:
        result = await provider.send(sms(text))
    finally:
        await provider.close()
    assert result.error is None
    assert len(smsc.submissions) == (3 if concatenation == "sar" else 1)
    assert all(s.esm_class & 0x40 == 0 for s in smsc.submissions)  # no UDH either way
    assert smsc.texts_to("8613812345678") == [text]


async def test_the_window_is_never_exceeded_and_binds_share_the_load(smsc: FakeSmsc) -> None:
    smsc.set(latency=0.03)
    provider = await started(smsc, binds=3, window=4)
    try:
        results = await asyncio.gather(*(provider.send(sms(to=f"+861381234{i:04d}")) for i in range(120)))
    finally:
        await provider.close()
    assert all(r.error is None for r in results)
    assert smsc.max_outstanding == 4
    assert len({s.session for s in smsc.submissions}) == 3
    assert len(smsc.taken) == 120


async def test_throttling_backs_off_and_loses_nothing(smsc: FakeSmsc) -> None:
    smsc.set(throttle_next=15)
    provider = await started(smsc, binds=2, window=4, throttle_backoff_seconds=0.01)
    try:
        results = await asyncio.gather(*(provider.send(sms(to=f"+861381234{i:04d}")) for i in range(30)))
        smsc.set(throttle_next=2, throttle_status=ESME_RMSGQFUL)
        queue_full = await provider.send(sms(to="+8613800000001"))
    finally:
        await provider.close()
    assert all(r.error is None for r in [*results, queue_full])
    refused = [s for s in smsc.submissions if s.status in (ESME_RTHROTTLED, ESME_RMSGQFUL)]
    assert len(refused) == 17
    destinations = [s.destination_addr for s in smsc.taken]
    assert len(destinations) == len(set(destinations)) == 31  # each message taken exactly once


async def test_throttled_past_the_give_up_time_is_rate_limited_for_the_worker(smsc: FakeSmsc) -> None:
    smsc.set(throttle_next=10_000)
    provider = await started(smsc, throttle_backoff_seconds=0.05, throttle_give_up_seconds=0.3)
    try:
        result = await provider.send(sms())
    finally:
        await provider.close()
    assert result.error is not None
    assert (result.error.kind, result.error.code) == (ErrorKind.RATE_LIMITED, "0x00000058")
    assert result.error.retry_after is not None and result.error.retry_after >= 1.0
    assert smsc.taken == []


async def test_a_dropped_connection_mid_window_loses_nothing_and_sends_nothing_twice(smsc: FakeSmsc) -> None:
    smsc.set(latency=0.2, drop_after=3)
    provider = await started(smsc, binds=1, window=4)
    try:
        results = await asyncio.gather(
            *(provider.send(sms(to=f"+861381234{i:04d}")) for i in range(10)), return_exceptions=True
        )
    finally:
        await provider.close()
    unknown = [i for i, r in enumerate(results) if isinstance(r, HandoffUnknown)]
    sent = [i for i, r in enumerate(results) if not isinstance(r, BaseException) and r.error is None]
    # The four in the window when the connection went have no answer: the worker decides by policy.
    # The six that were still waiting for the window went out on the new bind, once each.
    assert (len(unknown), len(sent)) == (4, 6)
    taken = [s.destination_addr for s in smsc.taken]
    assert len(taken) == len(set(taken)) == 10
    assert len([b for b in smsc.binds if b[2] == 0]) == 2


async def test_a_submit_without_a_response_is_a_handoff_of_unknown_outcome(smsc: FakeSmsc) -> None:
    smsc.set(unanswered_next=1)
    provider = await started(smsc, response_timeout=0.3)
    try:
        with pytest.raises(HandoffUnknown):
            await provider.send(sms())
        after = await provider.send(sms(to="+8613800000002"))
    finally:
        await provider.close()
    assert after.error is None


@pytest.mark.parametrize(
    ("knob", "key", "kind", "code"),
    [
        ("destination_errors", TO[1:], ErrorKind.RECIPIENT_INVALID, "0x0000000B"),
        ("source_errors", FROM[1:], ErrorKind.PERMANENT, "0x0000000A"),
    ],
)
async def test_an_invalid_destination_or_source_is_permanent(
    smsc: FakeSmsc, knob: str, key: str, kind: ErrorKind, code: str
) -> None:
    smsc.set(**{knob: {key: ESME_RINVDSTADR if knob == "destination_errors" else ESME_RINVSRCADR}})
    provider = await started(smsc)
    try:
        result = await provider.send(sms())
    finally:
        await provider.close()
    assert result.error is not None
    assert (result.error.kind, result.error.code, result.error.kind.retryable) == (kind, code, False)


async def test_a_refused_bind_leaves_the_provider_down_and_it_retries_with_backoff(smsc: FakeSmsc) -> None:
    provider = await started(smsc, password="wrong", connect_timeout=0.5)
    try:
        result = await provider.send(sms())
        assert result.error is not None
        assert (result.error.kind, result.error.code) == (ErrorKind.TRANSIENT, "not_bound")
        assert smsc.binds[0] == ("acme", "trx", ESME_RINVPASWD)
        assert len(smsc.binds) >= 2  # it kept trying
    finally:
        await provider.close()
    assert smsc.taken == []


async def test_enquire_link_keeps_the_bind_and_close_unbinds(smsc: FakeSmsc) -> None:
    provider = await started(smsc, binds=2, enquire_link_seconds=0.05)
    await smsc.wait_for(lambda: smsc.enquire_links >= 4)
    await provider.close()
    assert smsc.unbinds == 2
    assert smsc.sessions == []


async def test_a_lost_bind_is_bound_again(smsc: FakeSmsc) -> None:
    provider = await started(smsc)
    try:
        assert (await provider.send(sms())).error is None
        smsc.drop_all()
        await smsc.wait_for(lambda: len([b for b in smsc.binds if b[2] == 0]) == 2)
        assert (await provider.send(sms(to="+8613800000003"))).error is None
    finally:
        await provider.close()
    assert len([b for b in smsc.binds if b[2] == 0]) == 2


async def test_transmitter_and_receiver_binds(smsc: FakeSmsc) -> None:
    intake = Intake()
    provider = await started(smsc, intake, bind_mode="transmitter_receiver")
    try:
        result = await provider.send(sms())
        await smsc.wait_for(lambda: len(intake.recorded) == 1)
    finally:
        await provider.close()
    assert sorted(b[1] for b in smsc.binds) == ["rx", "tx"]
    assert intake.recorded[0].provider_message_id == result.provider_message_id


@pytest.mark.parametrize("form", ["text", "tlv", "both"])
async def test_receipts_in_either_form_are_read(smsc: FakeSmsc, form: str) -> None:
    smsc.set(receipt_form=form, fates={"8613800000009": Fate("UNDELIV", "011")})
    intake = Intake()
    provider = await started(smsc, intake)
    try:
        ok = await provider.send(sms())
        lost = await provider.send(sms(to="+8613800000009"))
        await smsc.wait_for(lambda: len(intake.recorded) == 2)
    finally:
        await provider.close()
    by_id = {r.provider_message_id: r for r in intake.recorded}
    assert by_id[ok.provider_message_id or ""].status == "delivered"
    undelivered = by_id[lost.provider_message_id or ""]
    assert (undelivered.status, undelivered.error_code) == ("undelivered", "UNDELIV:11")


async def test_receipts_before_the_response_out_of_order_and_twice_are_all_handed_over(smsc: FakeSmsc) -> None:
    smsc.set(receipts_before_response=True, duplicate_receipts=False)
    intake = Intake()
    provider = await started(smsc, intake)
    try:
        early = await provider.send(sms())
        smsc.set(receipts_before_response=False, hold_receipts=True, duplicate_receipts=True)
        results = [await provider.send(sms(to=f"+861381234{i:04d}")) for i in range(5)]
        smsc.release_receipts("shuffled")
        await smsc.wait_for(lambda: len(intake.recorded) == 1 + 10)
    finally:
        await provider.close()
    assert intake.recorded[0].provider_message_id == early.provider_message_id
    assert {r.provider_message_id for r in intake.recorded[1:]} == {r.provider_message_id for r in results}


async def test_a_receipt_is_acknowledged_only_once_recorded(smsc: FakeSmsc) -> None:
    intake = Intake()
    intake.gate = asyncio.Event()
    provider = await started(smsc, intake)
    try:
        await provider.send(sms())
        await smsc.wait_for(lambda: len(smsc.delivered) == 1)
        await asyncio.sleep(0.1)
        assert smsc.acks == []  # nothing acknowledged while the intake has not committed
        intake.gate.set()
        await smsc.wait_for(lambda: len(smsc.acks) == 1)
    finally:
        await provider.close()
    assert smsc.acks[0][1] == 0


async def test_a_receipt_that_could_not_be_recorded_is_refused_and_comes_again(smsc: FakeSmsc) -> None:
    intake = Intake()
    intake.failures = 1
    provider = await started(smsc, intake)
    try:
        result = await provider.send(sms())
        await smsc.wait_for(lambda: len(intake.recorded) == 1)
    finally:
        await provider.close()
    assert [status for _, status in smsc.acks] == [0x64, 0]  # ESME_RX_T_APPN, then taken
    assert intake.recorded[0].provider_message_id == result.provider_message_id
    assert intake.survived_errors == [("smpp-intake", "RuntimeError('store unavailable')")], "reported, not silent"


@pytest.mark.parametrize("text", ["STOP", "退订"])
async def test_mo_messages_go_to_the_inbound_intake(smsc: FakeSmsc, text: str) -> None:
    intake = Intake()
    provider = await started(smsc, intake)
    try:
        await smsc.wait_for(lambda: bool(provider.sessions))
        assert await smsc.send_mo("8613812345678", "14155550199", text) == 0
    finally:
        await provider.close()
    (reply,) = intake.replies
    assert (reply.sender, reply.to, reply.text) == (TO, FROM, text)


async def test_no_http_callback_is_taken_for_smpp(smsc: FakeSmsc) -> None:
    from providers.base import InboundRequest, SignatureError

    provider = SmppProvider(settings_for(smsc))
    request = InboundRequest("POST", "http://gw/v1/receipts/smpp", {}, b"{}")
    with pytest.raises(SignatureError):
        provider.parse_receipts(request)
    with pytest.raises(SignatureError):
        provider.parse_inbound(request)


def test_settings_refuse_what_cannot_work() -> None:
    base = {"host": "h", "system_id": "acme", "password": "x"}
    for bad, message in [
        ({"window": 0}, "window: must be at least 1"),
        ({"binds": 0}, "binds: must be at least 1"),
        ({"concatenation": "zip"}, "concatenation"),
        ({"source_addr": "A much too long sender"}, "source_addr"),
    ]:
        with pytest.raises(ValueError, match=message):
            SmppSettings(**{**base, **bad})  # type: ignore[arg-type]
    assert "hunter2" not in repr(replace(SmppSettings(**base), password="hunter2"))  # type: ignore[arg-type]


def test_it_works_on_uvloop_as_the_gateway_runs_it() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def round_trip() -> tuple[str | None, int]:
        async with FakeSmsc({"acme": "secret"}) as fake:
            intake = Intake()
            provider = await started(fake, intake)
            try:
                result = await provider.send(sms())
                await fake.wait_for(lambda: len(intake.recorded) == 1)
            finally:
                await provider.close()
            return result.provider_message_id, len(intake.recorded)

    loop = uvloop.new_event_loop()
    try:
        message_id, receipts = loop.run_until_complete(round_trip())
    finally:
        loop.close()
    assert message_id is not None and receipts == 1

"""SMPP 3.4: SMS straight to a carrier or aggregator over binds the provider keeps open.

Each account keeps `binds` sessions (transceivers, or transmitter + receiver pairs), each with a
window of `window` outstanding submit_sm. A message is one submit_sm per segment (UDH, SAR TLVs or
one message_payload); it is handed back to the worker when every segment is answered. Receipts and
MO messages arrive as deliver_sm on any bind, go through the gateway's intake in small batches, and
are acknowledged only once recorded (an SMSC resends what was not acknowledged).

Outcomes the worker's decisions rest on:
- a submit that never left (its bind went down first) is sent on another bind;
- ESME_RTHROTTLED / ESME_RMSGQFUL: that bind backs off and the segment goes again, on it or another,
  until `throttle_give_up_seconds`; then rate_limited with a retry_after;
- a submit written with no response (timeout, dropped connection) is a hand-off of unknown outcome
  (`HandoffUnknown`): the worker applies the resend-or-unknown policy of the job's category;
- no bind up within `connect_timeout`: transient `not_bound`, which the circuit breaker counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import structlog

from providers.base import (
    CallbackIntake,
    Capabilities,
    ErrorKind,
    InboundMessage,
    InboundRequest,
    JsonCallbackAnswers,
    Lookup,
    Outbound,
    ProviderError,
    ProviderType,
    Receipt,
    SendResult,
    SignatureError,
    setting,
)
from providers.http import HandoffUnknown
from providers.smpp import pdu, text
from providers.smpp.errors import error_kind
from providers.smpp.receipts import is_receipt, parse_receipt
from providers.smpp.session import BindRefused, NoAnswer, NotSent, Session

log = structlog.get_logger("providers.smpp")

RECEIPT_BATCH = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class SmppSettings:
    host: str = setting(doc="the SMSC's host", example="smsc.example.net")
    port: int = setting(2775, doc="the SMSC's port")
    system_id: str = setting(doc="the bind's system_id (the account)", example="acme")
    password: str = setting(
        doc="the bind password; or password_file", secret=True, example="/run/secrets/smpp_password"
    )
    system_type: str = setting("", doc="system_type, as the account requires")
    bind_mode: Literal["transceiver", "transmitter_receiver"] = setting(
        "transceiver", doc="transceiver, or transmitter_receiver: a transmitter and a receiver session per bind"
    )
    binds: int = setting(1, doc="sessions per account")
    window: int = setting(10, doc="outstanding submit_sm per bind")
    source_addr: str | None = setting(
        None,
        doc="sender when the job has none from a number pool (E.164, short code, or up to 11 letters)",
        example="ACME",
    )
    service_type: str = setting("", doc="service_type, as the account requires")
    registered_delivery: bool = setting(True, doc="ask for delivery receipts")
    concatenation: text.Concatenation = setting("udh", doc="how long messages are cut: udh, sar or payload")
    enquire_link_seconds: float = setting(30.0, doc="keep-alive interval")
    response_timeout: float = setting(5.0, doc="seconds a submit_sm waits for its response (below the worker's 10 s)")
    connect_timeout: float = setting(5.0, doc="how long a send waits for a bind to come up")
    reconnect_min_seconds: float = setting(0.5, doc="first pause before a lost bind reconnects (jittered, doubling)")
    reconnect_max_seconds: float = setting(30.0, doc="longest pause between reconnects")
    throttle_backoff_seconds: float = setting(0.2, doc="a throttled bind's first pause; doubles while throttled")
    throttle_max_seconds: float = setting(2.0, doc="the longest throttle pause")
    throttle_give_up_seconds: float = setting(4.0, doc="then the worker reschedules the job (rate_limited)")
    bind_max_per_second: float | None = setting(
        None, doc="submits per second per bind, as SMSCs often limit each session", example=50.0
    )
    max_per_second: float | None = setting(
        None, doc="the account's send rate, used as its default throughput", example=200.0
    )
    receipt_batch_ms: float = setting(5.0, doc="receipts recorded together, then acknowledged")

    def __post_init__(self) -> None:
        for key in ("binds", "window", "port"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key}: must be at least 1")
        for key in ("enquire_link_seconds", "response_timeout", "connect_timeout", "reconnect_min_seconds"):
            if float(getattr(self, key)) <= 0:
                raise ValueError(f"{key}: must be a positive number of seconds")
        if self.bind_mode not in ("transceiver", "transmitter_receiver"):
            raise ValueError(f"bind_mode: {self.bind_mode!r} is not transceiver or transmitter_receiver")
        if self.concatenation not in ("udh", "sar", "payload"):
            raise ValueError(f"concatenation: {self.concatenation!r} is not udh, sar or payload")
        if self.source_addr is not None:
            try:
                text.address_of(self.source_addr)
            except ValueError as exc:
                raise ValueError(f"source_addr: {exc}") from None


@dataclass(slots=True)
class _Incoming:
    session: Session
    sequence: int
    item: Receipt | InboundMessage


class SmppProvider(JsonCallbackAnswers):
    def __init__(self, settings: SmppSettings, *, name: str = "smpp") -> None:
        self.name = name
        self.settings = settings
        self.capabilities = Capabilities(
            channels=frozenset({"sms"}),
            receipts=settings.registered_delivery,
            lookup=False,  # an SMSC can be asked by its message id, never by our reference
            max_per_second=settings.max_per_second,
        )
        self.intake: CallbackIntake | None = None
        self.sessions: list[Session] = []
        self._bound = asyncio.Event()
        self._closing = False
        self._keepers: list[asyncio.Task[None]] = []
        self._incoming: list[_Incoming] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._turn = 0
        self._references = random.Random()

    def __repr__(self) -> str:
        return f"SmppProvider(name={self.name!r}, settings={self.settings!r})"

    def attach(self, intake: CallbackIntake) -> None:
        """Where receipts and MO messages go; binds open only in a process that has one (a worker)."""
        self.intake = intake

    # -- binds ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.intake is None or self._keepers:
            return
        self._closing = False
        commands = (
            [pdu.BIND_TRANSCEIVER]
            if self.settings.bind_mode == "transceiver"
            else [pdu.BIND_TRANSMITTER, pdu.BIND_RECEIVER]
        )
        for number in range(1, self.settings.binds + 1):
            for command in commands:
                self._keepers.append(
                    asyncio.create_task(self._keep_bound(number, command), name=f"{self.name}-bind-{number}")
                )

    async def _keep_bound(self, number: int, command: int) -> None:
        """Bind, and bind again after every loss, waiting longer after each failure (full jitter)."""
        s = self.settings
        failures = 0
        while not self._closing:
            session = Session(
                label=f"{self.name}#{number}",
                bind_command=command,
                window=s.window,
                response_timeout=s.response_timeout,
                enquire_link_seconds=s.enquire_link_seconds,
                max_per_second=s.bind_max_per_second,
                throttle_backoff=(s.throttle_backoff_seconds, s.throttle_max_seconds),
                on_deliver=self._delivered,
            )
            try:
                await session.open(s.host, s.port, s.system_id, s.password, s.system_type)
            except (BindRefused, OSError, TimeoutError) as exc:
                failures += 1
                wait = random.uniform(0, min(s.reconnect_max_seconds, s.reconnect_min_seconds * 2**failures))
                log.warning(
                    "SMPP bind failed", provider=self.name, bind=number, error=str(exc), retry_in=round(wait, 2)
                )
                await asyncio.sleep(wait)
                continue
            failures = 0
            self.sessions.append(session)
            self._bound.set()
            log.info("SMPP bound", provider=self.name, bind=number, mode=session.label)
            try:
                await session.lost
            finally:
                self.sessions.remove(session)
                if not any(x.can_submit for x in self.sessions):
                    self._bound.clear()
            if not self._closing:
                log.warning("SMPP bind lost; binding again", provider=self.name, bind=number)
                await asyncio.sleep(random.uniform(0, s.reconnect_min_seconds))

    async def close(self) -> None:
        self._closing = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._flush_now()
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        await asyncio.gather(*(session.unbind() for session in list(self.sessions)), return_exceptions=True)
        for task in self._keepers:
            task.cancel()
        for task in self._keepers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._keepers.clear()

    async def _session(self, deadline: float) -> Session | None:
        """A bound session for the next submit: the one with the fewest outstanding, in turn on ties."""
        while True:
            ready = [s for s in self.sessions if s.can_submit]
            if ready:
                self._turn += 1
                rotated = ready[self._turn % len(ready) :] + ready[: self._turn % len(ready)]
                return min(rotated, key=lambda s: (s.paused, s.in_flight))
            left = deadline - time.monotonic()
            if left <= 0 or self._closing:
                return None
            self._bound.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._bound.wait(), left)

    # -- sending -------------------------------------------------------------------------------

    async def send(self, message: Outbound) -> SendResult:
        if message.channel != "sms":
            return SendResult(error=ProviderError(ErrorKind.PERMANENT, "unsupported_channel", message.channel))
        sender = message.sender or self.settings.source_addr
        if not sender:
            return SendResult(error=ProviderError(ErrorKind.PERMANENT, "no_sender", "no sender and no source_addr"))
        try:
            source = text.address_of(sender)
            destination = text.address_of(message.to)
        except ValueError as exc:
            return SendResult(error=ProviderError(ErrorKind.PERMANENT, "invalid_address", str(exc)))
        body = str(message.content.get("text", ""))
        data_coding = text.data_coding_for(body, message.encoding)
        try:
            segments = text.segments_of(body, data_coding, self.settings.concatenation, self._references.randrange(256))
        except ValueError as exc:
            return SendResult(error=ProviderError(ErrorKind.PERMANENT, "too_long", str(exc)))
        fields = {
            "source": source,
            "destination": destination,
            "data_coding": data_coding,
            "registered_delivery": 1 if self.settings.registered_delivery else 0,
            "validity_period": text.validity_period(message.expires_at),
            "service_type": self.settings.service_type,
        }
        ids: list[str] = []
        for number, segment in enumerate(segments, start=1):
            outcome = await self._submit(segment, fields)
            if isinstance(outcome, str):
                ids.append(outcome)
                continue
            if ids:
                # Earlier parts are with the SMSC: sending the message again would repeat them.
                raise HandoffUnknown(
                    f"{self.name}: part {number} of {len(segments)} refused ({outcome.code}) after earlier parts went"
                )
            return SendResult(error=outcome)
        return SendResult(provider_message_id=ids[0], part_ids=tuple(ids) if len(ids) > 1 else ())

    async def _submit(self, segment: text.Segment, fields: Mapping[str, object]) -> str | ProviderError:
        """The SMSC's message id of one segment, or the error to report; raises HandoffUnknown."""
        s = self.settings
        give_up = time.monotonic() + s.throttle_give_up_seconds
        wait_for_bind = time.monotonic() + s.connect_timeout

        def build(sequence: int) -> bytes:
            return pdu.submit_sm(
                sequence,
                short_message=segment.short_message,
                esm_class=segment.esm_class,
                tlvs=segment.tlvs,
                **fields,  # type: ignore[arg-type]
            )

        while True:
            session = await self._session(max(wait_for_bind, time.monotonic()))
            if session is None:
                return ProviderError(ErrorKind.TRANSIENT, "not_bound", f"{self.name}: no bind is up")
            try:
                frame = await session.submit(build)
            except NotSent:
                wait_for_bind = time.monotonic() + s.connect_timeout
                continue  # it never left: another bind (or this one, rebound) takes it
            except NoAnswer as exc:
                raise HandoffUnknown(str(exc)) from exc
            if frame.status == pdu.ESME_ROK and frame.command_id == pdu.SUBMIT_SM | pdu.RESPONSE:
                return pdu.message_id_of(frame.body)
            kind = error_kind(frame.status)
            code = f"0x{frame.status:08X}"
            if kind is ErrorKind.RATE_LIMITED:
                if time.monotonic() + session.throttle_wait < give_up:
                    continue
                return ProviderError(kind, code, "throttled by the SMSC", retry_after=max(1.0, session.throttle_wait))
            return ProviderError(kind, code, f"{self.name}: submit_sm refused")

    # -- receipts and MO -------------------------------------------------------------------------

    def _delivered(self, session: Session, frame: pdu.Frame) -> None:
        try:
            delivered = pdu.deliver_sm(frame)
        except pdu.MalformedPdu as exc:
            log.exception("SMPP deliver_sm unreadable", provider=self.name, error=str(exc))
            session.answer_deliver(frame.sequence, 0x08)  # ESME_RSYSERR
            return
        item: Receipt | InboundMessage | None
        if is_receipt(delivered.esm_class):
            item = parse_receipt(delivered.short_message, delivered.tlvs)
            if item is None:
                log.warning("SMPP receipt names no message; acknowledged and dropped", provider=self.name)
        else:
            item = _mo_message(delivered)
        if item is None:
            session.answer_deliver(frame.sequence, pdu.ESME_ROK)
            return
        self._incoming.append(_Incoming(session, frame.sequence, item))
        if len(self._incoming) >= RECEIPT_BATCH:
            self._flush_now()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                self.settings.receipt_batch_ms / 1000, self._flush_now
            )

    def _flush_now(self) -> None:
        self._flush_timer = None
        batch, self._incoming = self._incoming, []
        if batch:
            task = asyncio.create_task(self._record(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _record(self, batch: list[_Incoming]) -> None:
        assert self.intake is not None
        receipts = [i.item for i in batch if isinstance(i.item, Receipt)]
        replies = [i.item for i in batch if isinstance(i.item, InboundMessage)]
        status = pdu.ESME_ROK
        try:
            if receipts:
                await self.intake.receipts(self.name, receipts)
            if replies:
                await self.intake.inbound(self.name, replies)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the SMSC is told to resend, never that we have them
            self.intake.survived(
                "smpp-intake", "SMPP receipts not recorded; the SMSC will resend them", exc, provider=self.name
            )
            status = pdu.ESME_RX_T_APPN
        for incoming in batch:
            incoming.session.answer_deliver(incoming.sequence, status)

    # -- what does not apply to SMPP -------------------------------------------------------------

    async def lookup(self, reference: str) -> Lookup | None:
        return None

    def parse_receipts(self, request: InboundRequest) -> list[Receipt]:
        raise SignatureError("SMPP receipts arrive over the binds; none is taken over HTTP")

    def parse_inbound(self, request: InboundRequest) -> list[InboundMessage]:
        raise SignatureError("SMPP MO messages arrive over the binds; none is taken over HTTP")


def _mo_message(delivered: pdu.Delivered) -> InboundMessage:
    body = delivered.tlvs.get(text.TAG_MESSAGE_PAYLOAD, delivered.short_message)
    if delivered.esm_class & text.ESM_CLASS_UDHI and body:
        body = body[body[0] + 1 :]
    return InboundMessage(
        sender=text.phone_of(delivered.source_addr_ton, delivered.source_addr),
        to=text.phone_of(delivered.dest_addr_ton, delivered.destination_addr),
        text=text.decode_text(body, delivered.data_coding),
        received_at=time.time(),
    )


PROVIDER_TYPE = ProviderType(
    name="smpp",
    settings=SmppSettings,
    build=lambda settings, name: SmppProvider(settings, name=name),
    account_key="system_id",
)

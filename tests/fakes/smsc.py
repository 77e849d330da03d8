"""A fake SMSC: an SMPP 3.4 server on loopback, written from the specification with `struct` alone.

It shares no code with the adapter (nor with the adapter's SMPP library), so a test that passes
shows the two read the specification the same way. What a test can ask of it:

- binds (transmitter, receiver, transceiver) checked against its accounts, or refused outright;
- `submit_sm` answered after a configurable latency, refused for chosen destinations or sources,
  throttled (ESME_RTHROTTLED / ESME_RMSGQFUL) for the next N, or left unanswered (the response
  never comes);
- the connection dropped after the next N submits, with the submits in flight at the cut either
  taken (the SMSC has them, their responses are lost) or lost with the connection;
- delivery receipts as `deliver_sm` (esm_class 0x04) in the text form and/or with the
  receipted_message_id / message_state TLVs, per segment, in order, reversed, shuffled, before the
  `submit_sm_resp`, or twice; an unacknowledged receipt is sent again on the next bind, as SMSCs do;
- MO messages (`deliver_sm`, esm_class 0) in GSM-7 or UCS-2.

It records what it took: every submit (with its UDH or SAR concatenation parsed and its text
decoded), the most `submit_sm` a session ever had outstanding, binds, enquire_links, unbinds and
acknowledged deliveries. Run on its own (`python -m tests.fakes.smsc --port 2775`) it is the SMSC
simulator of bench/smpp.py and of the README's worked example.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import signal
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015
RESPONSE = 0x80000000

ESME_ROK = 0x00
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58

TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427
TAG_NETWORK_ERROR_CODE = 0x0423
TAG_SAR_MSG_REF_NUM = 0x020C
TAG_SAR_TOTAL_SEGMENTS = 0x020E
TAG_SAR_SEGMENT_SEQNUM = 0x020F
TAG_MESSAGE_PAYLOAD = 0x0424

# message_state values (SMPP 3.4, 5.2.28) for the receipt's stat: word.
MESSAGE_STATES = {"DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}

# GSM 03.38 default alphabet by septet value, ESC (0x1B) included; and its extension table.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|"}
GSM_EXTENSION[0x65] = "€"
GSM_ENCODE = {char: bytes([i]) for i, char in enumerate(GSM_BASIC) if i != 0x1B}
GSM_ENCODE.update({char: bytes([0x1B, code]) for code, char in GSM_EXTENSION.items()})


def gsm_decode(data: bytes) -> str:
    """Unpacked GSM-7 (one septet per octet, as SMPP carries it with data_coding 0)."""
    out, escaped = [], False
    for octet in data:
        if escaped:
            out.append(GSM_EXTENSION.get(octet, " "))
            escaped = False
        elif octet == 0x1B:
            escaped = True
        else:
            out.append(GSM_BASIC[octet & 0x7F])
    return "".join(out)


def gsm_encode(text: str) -> bytes:
    return b"".join(GSM_ENCODE[char] for char in text)


def pdu(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def cstring(value: str | bytes) -> bytes:
    return (value.encode("latin-1") if isinstance(value, str) else value) + b"\x00"


class Reader:
    """Fields of a PDU body in order: C-octet strings, integers, then TLVs."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.at = 0

    def cstring(self) -> str:
        end = self.body.index(b"\x00", self.at)
        value = self.body[self.at : end].decode("latin-1")
        self.at = end + 1
        return value

    def byte(self) -> int:
        value = self.body[self.at]
        self.at += 1
        return value

    def octets(self, count: int) -> bytes:
        value = self.body[self.at : self.at + count]
        self.at += count
        return value

    def tlvs(self) -> dict[int, bytes]:
        found = {}
        while self.at + 4 <= len(self.body):
            tag, length = struct.unpack_from(">HH", self.body, self.at)
            found[tag] = self.body[self.at + 4 : self.at + 4 + length]
            self.at += 4 + length
        return found


@dataclass
class Submission:
    """One `submit_sm` as the SMSC read it."""

    session: int
    system_id: str
    sequence: int
    service_type: str
    source_addr_ton: int
    source_addr_npi: int
    source_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str
    esm_class: int
    protocol_id: int
    priority_flag: int
    schedule_delivery_time: str
    validity_period: str
    registered_delivery: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]
    received_at: float
    message_id: str | None = None
    status: int | None = None  # what the SMSC answered; None while unanswered

    @property
    def payload(self) -> bytes:
        return self.tlvs.get(TAG_MESSAGE_PAYLOAD, self.short_message)

    @property
    def udh(self) -> bytes | None:
        if not self.esm_class & 0x40 or not self.payload:
            return None
        return self.payload[: self.payload[0] + 1]

    @property
    def body(self) -> bytes:
        udh = self.udh
        return self.payload[len(udh) :] if udh else self.payload

    @property
    def text(self) -> str:
        if self.data_coding == 8:
            return self.body.decode("utf-16-be")
        return gsm_decode(self.body)

    @property
    def concatenation(self) -> tuple[int, int, int] | None:
        """(reference, total, part) from the UDH (IE 0x00 or 0x08) or the SAR TLVs; None when whole."""
        udh = self.udh
        if udh is not None:
            at = 1
            while at < len(udh):
                iei, length = udh[at], udh[at + 1]
                data = udh[at + 2 : at + 2 + length]
                if iei == 0x00:
                    return data[0], data[1], data[2]
                if iei == 0x08:
                    return int.from_bytes(data[:2], "big"), data[2], data[3]
                at += 2 + length
        if TAG_SAR_TOTAL_SEGMENTS in self.tlvs:
            return (
                int.from_bytes(self.tlvs[TAG_SAR_MSG_REF_NUM], "big"),
                self.tlvs[TAG_SAR_TOTAL_SEGMENTS][0],
                self.tlvs[TAG_SAR_SEGMENT_SEQNUM][0],
            )
        return None


@dataclass
class Delivery:
    """A deliver_sm the SMSC owes an ESME: a receipt or an MO message."""

    system_id: str
    body: bytes
    message_id: str | None  # the receipted message, for receipts
    kind: str  # "receipt" or "mo"
    acked: asyncio.Future[int] | None = None


@dataclass
class Fate:
    stat: str = "DELIVRD"
    err: str = "000"


@dataclass
class Knobs:
    latency: float = 0.0  # seconds before each submit_sm_resp
    receipts: bool = True
    receipt_delay: float = 0.0
    receipt_form: str = "both"  # "text", "tlv" (receipted_message_id + message_state, no text) or "both"
    receipt_order: str = "in_order"  # "in_order", "reversed", "shuffled": of each batch of held receipts
    receipts_before_response: bool = False
    duplicate_receipts: bool = False
    hold_receipts: bool = False  # keep receipts until release_receipts()
    refuse_binds: int | None = None
    throttle_next: int = 0
    throttle_status: int = ESME_RTHROTTLED
    unanswered_next: int = 0  # submits taken without any response
    drop_after: int | None = None  # cut the connection after this many more submits
    drop_takes_in_flight: bool = True  # the cut submits were taken (their responses lost), or lost
    destination_errors: dict[str, int] = field(default_factory=dict)
    source_errors: dict[str, int] = field(default_factory=dict)
    fates: dict[str, Fate] = field(default_factory=dict)  # destination -> receipt stat
    keep_submissions: bool = True  # a long benchmark keeps only `taken_log`


class Session(asyncio.Protocol):
    def __init__(self, smsc: FakeSmsc, number: int) -> None:
        self.smsc = smsc
        self.number = number
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.bound: str | None = None  # "tx", "rx" or "trx"
        self.system_id = ""
        self.sequence = itertools.count(1)
        self.outstanding = 0
        self.unacked: dict[int, Delivery] = {}
        self.closed = False

    @property
    def can_receive(self) -> bool:
        return self.bound in ("rx", "trx") and not self.closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, though they behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.smsc.sessions.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self in self.smsc.sessions:
            self.smsc.sessions.remove(self)
        # What the ESME never acknowledged is owed still: sent again on its next bind.
        for delivery in self.unacked.values():
            self.smsc.owe(delivery)
        self.unacked.clear()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 16 and not self.closed:
            length = int.from_bytes(self.buffer[:4], "big")
            if len(self.buffer) < length:
                return
            command_id, status, sequence = struct.unpack_from(">III", self.buffer, 4)
            body = bytes(self.buffer[16:length])
            del self.buffer[:length]
            self.handle(command_id, status, sequence, body)

    def handle(self, command_id: int, status: int, sequence: int, body: bytes) -> None:
        smsc = self.smsc
        if command_id in (BIND_TRANSMITTER, BIND_RECEIVER, BIND_TRANSCEIVER):
            self.bind(command_id, sequence, body)
        elif command_id == ENQUIRE_LINK:
            smsc.enquire_links += 1
            self.write(pdu(ENQUIRE_LINK | RESPONSE, ESME_ROK, sequence))
        elif command_id == UNBIND:
            smsc.unbinds += 1
            self.write(pdu(UNBIND | RESPONSE, ESME_ROK, sequence))
            self.bound = None
            if self.transport is not None:
                self.transport.close()
        elif command_id == SUBMIT_SM:
            if self.bound not in ("tx", "trx"):
                self.write(pdu(SUBMIT_SM | RESPONSE, ESME_RINVBNDSTS, sequence, b"\x00"))
                return
            smsc.submit(self, sequence, body)
        elif command_id == DELIVER_SM | RESPONSE:
            delivery = self.unacked.pop(sequence, None)
            if delivery is not None:
                smsc.acknowledged(delivery, status)
        elif command_id & RESPONSE:
            pass  # enquire_link_resp, unbind_resp, generic_nack
        else:
            self.write(pdu(GENERIC_NACK, ESME_RINVCMDID, sequence))

    def bind(self, command_id: int, sequence: int, body: bytes) -> None:
        fields = Reader(body)
        system_id, password = fields.cstring(), fields.cstring()
        kind = {BIND_TRANSMITTER: "tx", BIND_RECEIVER: "rx", BIND_TRANSCEIVER: "trx"}[command_id]
        smsc = self.smsc
        if self.bound is not None:
            status = ESME_RALYBND
        elif smsc.knobs.refuse_binds is not None:
            status = smsc.knobs.refuse_binds
        elif system_id not in smsc.accounts:
            status = ESME_RINVSYSID
        elif smsc.accounts[system_id] != password:
            status = ESME_RINVPASWD
        else:
            status = ESME_ROK
        smsc.binds.append((system_id, kind, status))
        self.write(pdu(command_id | RESPONSE, status, sequence, cstring(smsc.system_id) if status == 0 else b""))
        if status != ESME_ROK:
            return
        self.bound, self.system_id = kind, system_id
        if self.can_receive:
            smsc.flush_owed()

    def deliver(self, delivery: Delivery) -> None:
        sequence = next(self.sequence)
        self.unacked[sequence] = delivery
        self.smsc.delivered.append(delivery)
        self.write(pdu(DELIVER_SM, ESME_ROK, sequence, delivery.body))

    def answer(self, submission: Submission, status: int) -> None:
        if self.closed:
            return
        self.outstanding -= 1
        submission.status = status
        body = cstring(submission.message_id or "") if status == ESME_ROK else b"\x00"
        self.write(pdu(SUBMIT_SM | RESPONSE, status, submission.sequence, body))


class FakeSmsc:
    def __init__(
        self,
        accounts: dict[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        system_id: str = "FAKESMSC",
        seed: int = 7,
        **knobs: object,
    ) -> None:
        self.accounts = accounts if accounts is not None else {"acme": "secret"}
        self.host, self.port, self.system_id = host, port, system_id
        self.knobs = Knobs(**knobs)  # type: ignore[arg-type]
        self.random = random.Random(seed)
        self.server: asyncio.Server | None = None
        self.sessions: list[Session] = []
        self.session_numbers = itertools.count(1)
        self.ids = itertools.count(1)
        self.id_prefix = f"{random.getrandbits(24):06x}"
        self.submissions: list[Submission] = []  # every submit read, answered or not
        self.binds: list[tuple[str, str, int]] = []
        self.enquire_links = 0
        self.unbinds = 0
        self.max_outstanding = 0  # the most submit_sm one session ever had unanswered
        self.delivered: list[Delivery] = []  # every deliver_sm written, resends included
        self.acks: list[tuple[Delivery, int]] = []
        self.owed: list[Delivery] = []  # waiting for a bind that can receive
        self.held: list[Delivery] = []  # receipts kept back by hold_receipts
        self.lost_ids: set[str] = set()  # ids of submits lost in a cut: no receipt for them
        self.submitted_count = 0
        self.taken_log: list[str] = []  # "time destination" of each submit taken, when logging
        self.logging = False
        self.changed = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSmsc:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Session(self, next(self.session_numbers)), self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.abort()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    # -- what a test changes -----------------------------------------------------------------------

    def set(self, **knobs: object) -> None:
        for name, value in knobs.items():
            if not hasattr(self.knobs, name):
                raise AttributeError(name)
            setattr(self.knobs, name, value)

    def drop_all(self) -> None:
        """Cut every connection now (a network failure, not an unbind)."""
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.abort()

    def release_receipts(self, order: str | None = None) -> int:
        """Send the held receipts, in their order or the one given."""
        held, self.held = self.held, []
        for delivery in self.ordered(held, order or self.knobs.receipt_order):
            self.owe(delivery)
        return len(held)

    async def send_mo(self, source: str, destination: str, text: str, *, ucs2: bool | None = None) -> int:
        """An MO message from a handset; returns the ESME's deliver_sm_resp status once it comes."""
        if ucs2 is None:
            ucs2 = any(char not in GSM_ENCODE for char in text)
        encoded = text.encode("utf-16-be") if ucs2 else gsm_encode(text)
        body = self.deliver_body(source, destination, 0x00, 8 if ucs2 else 0, encoded, b"")
        system_id = next(iter(self.accounts))
        delivery = Delivery(system_id, body, None, "mo", asyncio.get_running_loop().create_future())
        self.owe(delivery)
        assert delivery.acked is not None
        return await delivery.acked

    # -- what a test reads -----------------------------------------------------------------------

    @property
    def taken(self) -> list[Submission]:
        """Submits the SMSC has (answered OK, or cut off while it held them)."""
        return [s for s in self.submissions if s.message_id is not None]

    def messages(self) -> dict[tuple[str, str], list[Submission]]:
        """Taken submits grouped into messages: (destination, concatenation reference or id) -> parts."""
        grouped: dict[tuple[str, str], list[Submission]] = {}
        for submission in self.taken:
            concat = submission.concatenation
            key = (submission.destination_addr, f"ref:{concat[0]}" if concat else f"id:{submission.message_id}")
            grouped.setdefault(key, []).append(submission)
        return grouped

    def texts_to(self, destination: str) -> list[str]:
        """Whole texts taken for a destination, segments joined in part order."""
        texts = []
        for (dest, _), parts in self.messages().items():
            if dest == destination:
                ordered = sorted(parts, key=lambda s: (s.concatenation or (0, 1, 1))[2])
                texts.append("".join(s.text for s in ordered))
        return texts

    async def wait_for(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the fake SMSC did not reach the expected state")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.05)

    # -- the SMSC's work -------------------------------------------------------------------------

    def submit(self, session: Session, sequence: int, body: bytes) -> None:
        submission = self.read_submit(session, sequence, body)
        if self.knobs.keep_submissions:
            self.submissions.append(submission)
        session.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, session.outstanding)
        self.changed.set()
        knobs = self.knobs
        if knobs.drop_after is not None:
            knobs.drop_after -= 1
            if knobs.drop_after < 0:
                # The cut comes with this submit in flight: taken (its response is lost) or lost.
                knobs.drop_after = None
                for cut in self.submissions:
                    if cut.session == session.number and cut.status is None:
                        if knobs.drop_takes_in_flight:
                            cut.message_id = cut.message_id or self.new_id()
                        elif cut.message_id is not None:
                            self.lost_ids.add(cut.message_id)  # the SMSC never committed it
                            cut.message_id = None
                session.closed = True
                if session.transport is not None:
                    session.transport.abort()
                return
        status = self.judge(submission)
        if status == ESME_ROK:
            submission.message_id = self.new_id()
            self.submitted_count += 1
            if self.logging:
                self.taken_log.append(f"{submission.received_at:.4f} {submission.destination_addr}\n")
        if status is None:
            return  # taken, never answered
        if status == ESME_ROK and knobs.receipts and submission.registered_delivery & 0x01:
            receipt = self.receipt_for(submission)
            if knobs.receipts_before_response:
                self.owe(receipt)
            else:
                self.schedule_receipt(receipt, knobs.latency + knobs.receipt_delay)
        if knobs.latency > 0:
            asyncio.get_running_loop().call_later(knobs.latency, session.answer, submission, status)
        else:
            session.answer(submission, status)

    def judge(self, submission: Submission) -> int | None:
        knobs = self.knobs
        if knobs.unanswered_next > 0:
            knobs.unanswered_next -= 1
            submission.message_id = self.new_id()
            return None
        if knobs.throttle_next > 0:
            knobs.throttle_next -= 1
            return knobs.throttle_status
        if submission.destination_addr in knobs.destination_errors:
            return knobs.destination_errors[submission.destination_addr]
        if submission.source_addr in knobs.source_errors:
            return knobs.source_errors[submission.source_addr]
        return ESME_ROK

    def new_id(self) -> str:
        return f"{self.id_prefix}{next(self.ids):08x}"

    def read_submit(self, session: Session, sequence: int, body: bytes) -> Submission:
        r = Reader(body)
        service_type = r.cstring()
        source_ton, source_npi, source = r.byte(), r.byte(), r.cstring()
        dest_ton, dest_npi, dest = r.byte(), r.byte(), r.cstring()
        esm_class, protocol_id, priority = r.byte(), r.byte(), r.byte()
        schedule, validity = r.cstring(), r.cstring()
        registered, _replace, data_coding, _default_id = r.byte(), r.byte(), r.byte(), r.byte()
        short_message = r.octets(r.byte())
        return Submission(
            session.number,
            session.system_id,
            sequence,
            service_type,
            source_ton,
            source_npi,
            source,
            dest_ton,
            dest_npi,
            dest,
            esm_class,
            protocol_id,
            priority,
            schedule,
            validity,
            registered,
            data_coding,
            short_message,
            r.tlvs(),
            time.time(),
        )

    def receipt_for(self, submission: Submission) -> Delivery:
        assert submission.message_id is not None
        fate = self.knobs.fates.get(submission.destination_addr, Fate())
        stamp = time.strftime("%y%m%d%H%M")
        delivered = "001" if fate.stat == "DELIVRD" else "000"
        text = (
            f"id:{submission.message_id} sub:001 dlvrd:{delivered} submit date:{stamp} done date:{stamp} "
            f"stat:{fate.stat} err:{fate.err} text:"
        ).encode()
        form = self.knobs.receipt_form
        tlvs = b""
        if form in ("tlv", "both"):
            tlvs = (
                _tlv(TAG_RECEIPTED_MESSAGE_ID, cstring(submission.message_id))
                + _tlv(TAG_MESSAGE_STATE, bytes([MESSAGE_STATES[fate.stat]]))
                + _tlv(TAG_NETWORK_ERROR_CODE, b"\x03" + int(fate.err).to_bytes(2, "big"))
            )
        message = text if form in ("text", "both") else b""
        body = self.deliver_body(
            submission.destination_addr, submission.source_addr, 0x04, 0, message, tlvs, submission
        )
        return Delivery(submission.system_id, body, submission.message_id, "receipt")

    def deliver_body(
        self,
        source: str,
        destination: str,
        esm_class: int,
        data_coding: int,
        message: bytes,
        tlvs: bytes,
        original: Submission | None = None,
    ) -> bytes:
        source_ton = original.dest_addr_ton if original else 1
        dest_ton = original.source_addr_ton if original else 1
        return (
            cstring("")
            + bytes([source_ton, 1])
            + cstring(source.lstrip("+"))
            + bytes([dest_ton, 1 if dest_ton != 5 else 0])
            + cstring(destination)
            + bytes([esm_class, 0, 0])
            + cstring("")
            + cstring("")
            + bytes([0, 0, data_coding, 0, len(message)])
            + message
            + tlvs
        )

    def schedule_receipt(self, receipt: Delivery, delay: float) -> None:
        if self.knobs.hold_receipts:
            self.held.append(receipt)
            if self.knobs.duplicate_receipts:
                self.held.append(Delivery(receipt.system_id, receipt.body, receipt.message_id, receipt.kind))
            return
        copies = 2 if self.knobs.duplicate_receipts else 1
        for _ in range(copies):
            duplicate = Delivery(receipt.system_id, receipt.body, receipt.message_id, receipt.kind)
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self.owe, duplicate)
            else:
                self.owe(duplicate)

    def ordered(self, deliveries: list[Delivery], order: str) -> Iterable[Delivery]:
        if order == "reversed":
            return list(reversed(deliveries))
        if order == "shuffled":
            shuffled = list(deliveries)
            self.random.shuffle(shuffled)
            return shuffled
        return deliveries

    def owe(self, delivery: Delivery) -> None:
        self.owed.append(delivery)
        self.flush_owed()

    def flush_owed(self) -> None:
        waiting, self.owed = self.owed, []
        for delivery in waiting:
            if delivery.message_id in self.lost_ids:
                continue
            receivers = [s for s in self.sessions if s.can_receive and s.system_id == delivery.system_id]
            if not receivers:
                self.owed.append(delivery)
                continue
            self.random.choice(receivers).deliver(delivery)
        self.changed.set()

    def acknowledged(self, delivery: Delivery, status: int) -> None:
        self.acks.append((delivery, status))
        if delivery.acked is not None and not delivery.acked.done():
            delivery.acked.set_result(status)
        if status != ESME_ROK:
            # A refused deliver_sm is tried again, as SMSCs retry until the ESME takes it.
            asyncio.get_running_loop().call_later(0.05, self.owe, delivery)
        self.changed.set()


def _tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


def _append(path: str, line: str) -> None:
    with open(path, "a") as stats:
        stats.write(line)


async def _serve(args: argparse.Namespace) -> None:
    accounts = dict(pair.split(":", 1) for pair in args.account)
    smsc = FakeSmsc(
        accounts,
        port=args.port,
        latency=args.latency_ms / 1000,
        receipt_delay=args.receipt_delay_ms / 1000,
        keep_submissions=False,
    )
    smsc.logging = bool(args.log)
    await smsc.start()
    print(f"fake SMSC listening on 127.0.0.1:{smsc.port} accounts={','.join(accounts)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        started = time.monotonic()
        last = 0
        while not stop.is_set() and time.monotonic() - started < args.max_seconds:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 - time.time() % 1.0)
            if args.stats:
                _append(args.stats, f"{int(time.time()) - 1},{smsc.submitted_count - last},{smsc.submitted_count}\n")
                last = smsc.submitted_count
            if args.log and smsc.taken_log:
                lines, smsc.taken_log = smsc.taken_log, []
                _append(args.log, "".join(lines))
    finally:
        await smsc.stop()
        if args.log and smsc.taken_log:
            _append(args.log, "".join(smsc.taken_log))
        print(f"SUMMARY submit_sm={smsc.submitted_count} receipts={len(smsc.delivered)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="a fake SMSC (SMPP 3.4) on 127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument("--account", action="append", default=[], help="system_id:password (repeatable)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of each submit_sm_resp")
    parser.add_argument("--receipt-delay-ms", type=float, default=0.0)
    parser.add_argument("--stats", help="append 'second,submits in it,total' lines to this CSV")
    parser.add_argument("--log", help="append 'time destination' of every submit taken to this file")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this long")
    args = parser.parse_args()
    if not args.account:
        args.account = ["acme:secret"]
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()

"""SMPP 3.4 PDUs: submit_sm and deliver_sm through the smpp34 codec; the short fixed-layout PDUs of a
session (binds, enquire_link, unbind, responses), which smpp34's Python codec has no classes for,
with struct."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import smpp34

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
ESME_RX_T_APPN = 0x64  # the ESME cannot take it now: the SMSC tries again later
THROTTLED = frozenset({0x58, 0x14})  # ESME_RTHROTTLED, ESME_RMSGQFUL: slow down, then send again

INTERFACE_VERSION = 0x34
HEADER = struct.Struct(">IIII")
MAX_PDU = 64 * 1024  # far above any real PDU; a larger length means the stream is garbage


@dataclass(frozen=True, slots=True)
class Frame:
    command_id: int
    status: int
    sequence: int
    body: bytes
    raw: bytes


def pdu(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return HEADER.pack(16 + len(body), command_id, status, sequence) + body


def _c(value: str) -> bytes:
    return value.encode("latin-1") + b"\x00"


def bind(
    command_id: int, sequence: int, system_id: str, password: str, system_type: str = "", address_range: str = ""
) -> bytes:
    body = _c(system_id) + _c(password) + _c(system_type) + bytes([INTERFACE_VERSION, 0, 0]) + _c(address_range)
    return pdu(command_id, ESME_ROK, sequence, body)


def submit_sm(
    sequence: int,
    *,
    source: tuple[int, int, str],
    destination: tuple[int, int, str],
    short_message: bytes,
    esm_class: int,
    data_coding: int,
    registered_delivery: int,
    validity_period: str,
    service_type: str,
    tlvs: Sequence[tuple[int, bytes]],
) -> bytes:
    return smpp34.SubmitSm(
        source[2],
        destination[2],
        short_message,
        service_type=service_type,
        source_addr_ton=source[0],
        source_addr_npi=source[1],
        dest_addr_ton=destination[0],
        dest_addr_npi=destination[1],
        esm_class=esm_class,
        validity_period=validity_period,
        registered_delivery=registered_delivery,
        data_coding=data_coding,
        tlvs=[smpp34.Tlv(tag, value) for tag, value in tlvs],
        sequence_number=sequence,
    ).encode()


@dataclass(frozen=True, slots=True)
class Delivered:
    """The fields of a deliver_sm we act on."""

    source_addr_ton: int
    source_addr: str
    dest_addr_ton: int
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]


# What decoding a malformed PDU raises.
MalformedPdu = (smpp34.SmppError, ValueError)


def deliver_sm(frame: Frame) -> Delivered:
    """Raises smpp34.SmppError (or ValueError) when the PDU is malformed."""
    decoded = smpp34.decode(frame.raw)
    if not isinstance(decoded, smpp34.DeliverSm):
        raise ValueError(f"not a deliver_sm: {type(decoded).__name__}")
    return Delivered(
        decoded.source_addr_ton,
        decoded.source_addr,
        decoded.dest_addr_ton,
        decoded.destination_addr,
        decoded.esm_class,
        decoded.data_coding,
        decoded.short_message,
        {tlv.tag: tlv.value for tlv in decoded.tlvs},
    )


def message_id_of(body: bytes) -> str:
    """submit_sm_resp: one C-octet string (empty on an error answer)."""
    return body.split(b"\x00", 1)[0].decode("latin-1")


def frames(buffer: bytearray) -> list[Frame]:
    """Whole PDUs at the front of `buffer`, removed from it; raises ValueError on a corrupt length."""
    found = []
    while len(buffer) >= 16:
        length = int.from_bytes(buffer[:4], "big")
        if length < 16 or length > MAX_PDU:
            raise ValueError(f"PDU length {length} out of range")
        if len(buffer) < length:
            break
        raw = bytes(buffer[:length])
        command_id, status, sequence = struct.unpack_from(">III", raw, 4)
        found.append(Frame(command_id, status, sequence, raw[16:], raw))
        del buffer[:length]
    return found

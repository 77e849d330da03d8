"""What goes into a submit_sm's addresses and message fields: GSM-7 or UCS-2 text, cut into
concatenated segments (UDH, SAR TLVs, or one message_payload), TON/NPI, validity_period."""

from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass
from typing import Literal

Concatenation = Literal["udh", "sar", "payload"]

DATA_CODING_GSM7 = 0x00  # SMSC default alphabet; SMPP carries it unpacked, one septet per octet
DATA_CODING_UCS2 = 0x08
ESM_CLASS_UDHI = 0x40

TAG_SAR_MSG_REF_NUM = 0x020C
TAG_SAR_TOTAL_SEGMENTS = 0x020E
TAG_SAR_SEGMENT_SEQNUM = 0x020F
TAG_MESSAGE_PAYLOAD = 0x0424

# GSM 03.38 default alphabet by septet (0x1B is the escape to the extension table).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E}
GSM7_EXTENSION.update({"|": 0x40, "€": 0x65})
_GSM7 = {char: bytes([code]) for code, char in enumerate(GSM7_BASIC) if code != 0x1B}
_GSM7.update({char: bytes([0x1B, code]) for char, code in GSM7_EXTENSION.items()})
_GSM7_DECODE = {code: char for code, char in enumerate(GSM7_BASIC)}
_GSM7_EXTENSION_DECODE = {code: char for char, code in GSM7_EXTENSION.items()}

# Octets of text per segment: a single message, and a part after its 6-octet UDH (GSM 03.40);
# an escape sequence or a surrogate pair is never cut in two, as the content policy counts them.
SINGLE = {DATA_CODING_GSM7: 160, DATA_CODING_UCS2: 140}
PART = {DATA_CODING_GSM7: 153, DATA_CODING_UCS2: 134}


@dataclass(frozen=True, slots=True)
class Segment:
    short_message: bytes
    esm_class: int = 0
    tlvs: tuple[tuple[int, bytes], ...] = ()


def data_coding_for(text: str, encoding: str | None) -> int:
    """The content policy's encoding when the job carries it, else GSM-7 when every character has a septet."""
    if encoding == "UCS-2" or not all(char in _GSM7 for char in text):
        return DATA_CODING_UCS2
    return DATA_CODING_GSM7


def _units(text: str, data_coding: int) -> list[bytes]:
    """The text as indivisible units: one character each (an escape pair, a surrogate pair)."""
    if data_coding == DATA_CODING_GSM7:
        return [_GSM7[char] for char in text]
    return [char.encode("utf-16-be") for char in text]


def _pack(units: list[bytes], capacity: int) -> list[bytes]:
    parts: list[bytes] = []
    current = bytearray()
    for unit in units:
        if len(current) + len(unit) > capacity:
            parts.append(bytes(current))
            current.clear()
        current += unit
    parts.append(bytes(current))
    return parts


def segments_of(text: str, data_coding: int, concatenation: Concatenation, reference: int) -> list[Segment]:
    """The submit_sm bodies of one message; `reference` (0-255) ties the parts of one message together."""
    units = _units(text, data_coding)
    whole = b"".join(units)
    if len(whole) <= SINGLE[data_coding]:
        return [Segment(whole)]
    if concatenation == "payload":
        return [Segment(b"", tlvs=((TAG_MESSAGE_PAYLOAD, whole),))]
    parts = _pack(units, PART[data_coding])
    total = len(parts)
    if total > 255:
        raise ValueError(f"a message of {total} segments cannot be concatenated (at most 255)")
    if concatenation == "sar":
        return [
            Segment(
                part,
                tlvs=(
                    (TAG_SAR_MSG_REF_NUM, struct.pack(">H", reference)),
                    (TAG_SAR_TOTAL_SEGMENTS, bytes([total])),
                    (TAG_SAR_SEGMENT_SEQNUM, bytes([number])),
                ),
            )
            for number, part in enumerate(parts, start=1)
        ]
    return [
        Segment(bytes([0x05, 0x00, 0x03, reference & 0xFF, total, number]) + part, ESM_CLASS_UDHI)
        for number, part in enumerate(parts, start=1)
    ]


def decode_text(data: bytes, data_coding: int) -> str:
    """An MO message's text: UCS-2, the GSM default alphabet, or Latin-1/ASCII."""
    if data_coding == DATA_CODING_UCS2:
        return data.decode("utf-16-be", errors="replace")
    if data_coding == DATA_CODING_GSM7:
        chars, escaped = [], False
        for octet in data:
            if escaped:
                chars.append(_GSM7_EXTENSION_DECODE.get(octet, " "))
                escaped = False
            elif octet == 0x1B:
                escaped = True
            else:
                chars.append(_GSM7_DECODE.get(octet & 0x7F, "?"))
        return "".join(chars)
    return data.decode("latin-1")


TON_UNKNOWN, TON_INTERNATIONAL, TON_NATIONAL, TON_NETWORK, TON_ALPHANUMERIC = 0, 1, 2, 3, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1
_SHORT_CODE = re.compile(r"\d{3,8}")
_E164 = re.compile(r"\+\d{6,15}")


def address_of(sender: str) -> tuple[int, int, str]:
    """(TON, NPI, address) of a sender: an E.164 number, a short code, or an alphanumeric id."""
    if _E164.fullmatch(sender):
        return TON_INTERNATIONAL, NPI_ISDN, sender[1:]
    if _SHORT_CODE.fullmatch(sender):
        return TON_NETWORK, NPI_UNKNOWN, sender
    if len(sender) > 11:
        raise ValueError(f"an alphanumeric sender has at most 11 characters, {sender!r} has {len(sender)}")
    return TON_ALPHANUMERIC, NPI_UNKNOWN, sender


def phone_of(ton: int, address: str) -> str:
    """An address from a deliver_sm in our form: international numbers get their '+'."""
    if ton == TON_INTERNATIONAL and address.isdigit():
        return "+" + address
    return address


def validity_period(expires_at: float | None, now: float | None = None) -> str:
    """Absolute time format (SMPP 3.4, 7.1.1) in UTC: YYMMDDhhmmsstnnp; empty: the SMSC's default."""
    if expires_at is None:
        return ""
    moment = max(expires_at, (now if now is not None else time.time()) + 60)
    return time.strftime("%y%m%d%H%M%S", time.gmtime(moment)) + "000+"

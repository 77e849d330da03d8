"""SMS character encoding and segment counting (3GPP TS 23.038 GSM-7 vs UCS-2)."""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

SmsEncoding = Literal["GSM-7", "UCS-2"]

# The default alphabet as it appears on the wire; the escape code 0x1B itself is not a character a
# sender can type, so it is left out.
GSM7_BASIC_CHARS = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Each of these is sent as ESC + code, so it costs two septets.
GSM7_EXTENSION_CHARS = "\f^{}\\[~]|€"

GSM7_SINGLE_SEGMENT_SEPTETS = 160
GSM7_MULTIPART_SEGMENT_SEPTETS = 153
UCS2_SINGLE_SEGMENT_UNITS = 70
UCS2_MULTIPART_SEGMENT_UNITS = 67

# A regex scan stops at the first character outside the alphabet, which for CJK text is usually
# the first one; a Python loop or max() over the text costs several times more.
_NOT_GSM7 = re.compile("[^" + re.escape(GSM7_BASIC_CHARS + GSM7_EXTENSION_CHARS) + "]")
_DELETE_GSM7_EXTENSION = str.maketrans("", "", GSM7_EXTENSION_CHARS)


class SmsLength(NamedTuple):  # a tuple because it is made for every message and dataclasses cost more
    encoding: SmsEncoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def measure_sms(text: str) -> SmsLength:
    if not text:
        return SmsLength("GSM-7", 0, 0)
    if _NOT_GSM7.search(text) is None:
        escapes = len(text) - len(text.translate(_DELETE_GSM7_EXTENSION))
        septets = len(text) + escapes
        return SmsLength("GSM-7", septets, _gsm7_segments(text, septets, has_escapes=escapes > 0))
    units = len(text.encode("utf-16-le")) // 2
    return SmsLength("UCS-2", units, _ucs2_segments(text, units, has_surrogates=units != len(text)))


def _gsm7_segments(text: str, septets: int, *, has_escapes: bool) -> int:
    if septets <= GSM7_SINGLE_SEGMENT_SEPTETS:
        return 1
    if not has_escapes:
        return -(-septets // GSM7_MULTIPART_SEGMENT_SEPTETS)
    # An escape sequence must not be split across two segments (TS 23.038), so a segment that would
    # end between ESC and its character closes one septet early.
    return _pack([2 if char in GSM7_EXTENSION_CHARS else 1 for char in text], GSM7_MULTIPART_SEGMENT_SEPTETS)


def _ucs2_segments(text: str, units: int, *, has_surrogates: bool) -> int:
    if units <= UCS2_SINGLE_SEGMENT_UNITS:
        return 1
    if not has_surrogates:
        return -(-units // UCS2_MULTIPART_SEGMENT_UNITS)
    # Handsets show a broken glyph when a surrogate pair is split across segments, so senders keep
    # each pair whole, like an escape sequence in GSM-7.
    return _pack([2 if ord(char) > 0xFFFF else 1 for char in text], UCS2_MULTIPART_SEGMENT_UNITS)


def _pack(widths: list[int], capacity: int) -> int:
    segments = 1
    used = 0
    for width in widths:
        if used + width > capacity:
            segments += 1
            used = 0
        used += width
    return segments

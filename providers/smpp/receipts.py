"""Delivery receipts in deliver_sm: the receipted_message_id / message_state TLVs or the text form
(`id:... sub:... dlvrd:... submit date:... done date:... stat:DELIVRD err:...`, SMPP 3.4 appendix B),
mapped onto our status lattice."""

from __future__ import annotations

import calendar
import re
import time

from providers.base import ErrorKind, Receipt

ESM_CLASS_TYPE_MASK = 0x3C
ESM_CLASS_RECEIPT = 0x04  # SMSC delivery receipt
ESM_CLASS_INTERMEDIATE = 0x20  # intermediate delivery notification

TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427
TAG_NETWORK_ERROR_CODE = 0x0423

# message_state values (SMPP 3.4, 5.2.28) -> the stat word of the text form.
MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD"}
MESSAGE_STATES.update({7: "UNKNOWN", 8: "REJECTD"})

# stat -> (our receipt status, the class of its error). ACCEPTD, ENROUTE and UNKNOWN say nothing
# about the handset yet: they are recorded as `sent`, which never moves a status down the lattice.
RECEIPT_STATES: dict[str, tuple[str, ErrorKind | None]] = {
    "DELIVRD": ("delivered", None),
    "ACCEPTD": ("sent", None),
    "ENROUTE": ("sent", None),
    "UNKNOWN": ("sent", None),
    "EXPIRED": ("undelivered", ErrorKind.TRANSIENT),  # the handset stayed unreachable for the validity
    "UNDELIV": ("undelivered", None),
    "DELETED": ("failed", ErrorKind.PERMANENT),
    "REJECTD": ("failed", ErrorKind.PERMANENT),
}

_FIELD = re.compile(r"(id|sub|dlvrd|submit date|done date|stat|err):(\S*)", re.IGNORECASE)


def is_receipt(esm_class: int) -> bool:
    return esm_class & ESM_CLASS_TYPE_MASK in (ESM_CLASS_RECEIPT, ESM_CLASS_INTERMEDIATE)


def parse_receipt(short_message: bytes, tlvs: dict[int, bytes]) -> Receipt | None:
    """The receipt a deliver_sm carries; the TLVs win over the text where both say something.
    None when it names no message (nothing to match it to)."""
    text = short_message.decode("latin-1", errors="replace")
    fields = {name.lower(): value for name, value in _FIELD.findall(text)}
    message_id = _c_string(tlvs.get(TAG_RECEIPTED_MESSAGE_ID)) or fields.get("id")
    if not message_id:
        return None
    state = tlvs.get(TAG_MESSAGE_STATE)
    stat = MESSAGE_STATES.get(state[0], "UNKNOWN") if state else fields.get("stat", "UNKNOWN").upper()
    status, kind = RECEIPT_STATES.get(stat, ("sent", None))
    err = _network_error(tlvs.get(TAG_NETWORK_ERROR_CODE)) or fields.get("err")
    if err and err.isdigit():
        err = str(int(err))  # "011" in the text form is 11 in the TLV
    error_code = None if status in ("delivered", "sent") else f"{stat}:{err}" if err else stat
    return Receipt(
        provider_message_id=message_id,
        status=status,
        error_code=error_code,
        occurred_at=_done_date(fields.get("done date")),
        raw=text or None,
        error_kind=kind if error_code else None,
    )


def _c_string(value: bytes | None) -> str | None:
    if not value:
        return None
    return value.split(b"\x00", 1)[0].decode("latin-1") or None


def _network_error(value: bytes | None) -> str | None:
    # network_error_code: one octet of network type, two of the code.
    if not value or len(value) < 3:
        return None
    return str(int.from_bytes(value[1:3], "big"))


def _done_date(value: str | None) -> float | None:
    """YYMMDDhhmm (or with seconds), read as UTC: the text form names no zone."""
    if not value or not value.isdigit() or len(value) not in (10, 12):
        return None
    try:
        parsed = time.strptime(value, "%y%m%d%H%M%S" if len(value) == 12 else "%y%m%d%H%M")
    except ValueError:
        return None
    return float(calendar.timegm(parsed))

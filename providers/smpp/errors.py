"""SMPP 3.4 command_status (section 5.1.3) of a submit_sm_resp or generic_nack -> our error classes.

The one table the worker's decisions come from: throttling waits and retries, an invalid
destination is the recipient's, an invalid source or a malformed message is permanent, and a
failure of the SMSC or of our bind is transient (another bind or provider may take it).
"""

from __future__ import annotations

from providers.base import ErrorKind

ERROR_KINDS: dict[int, ErrorKind] = {
    0x58: ErrorKind.RATE_LIMITED,  # ESME_RTHROTTLED: over the SMSC's rate for this bind or account
    0x14: ErrorKind.RATE_LIMITED,  # ESME_RMSGQFUL: the SMSC's queue for this destination is full
    0x0B: ErrorKind.RECIPIENT_INVALID,  # ESME_RINVDSTADR
    0x50: ErrorKind.RECIPIENT_INVALID,  # ESME_RINVDSTTON
    0x51: ErrorKind.RECIPIENT_INVALID,  # ESME_RINVDSTNPI
    0x0A: ErrorKind.PERMANENT,  # ESME_RINVSRCADR: the sender is not allowed on this account
    0x48: ErrorKind.PERMANENT,  # ESME_RINVSRCTON
    0x49: ErrorKind.PERMANENT,  # ESME_RINVSRCNPI
    0x01: ErrorKind.PERMANENT,  # ESME_RINVMSGLEN
    0x06: ErrorKind.PERMANENT,  # ESME_RINVPRTFLG
    0x07: ErrorKind.PERMANENT,  # ESME_RINVREGDLVFLG
    0x15: ErrorKind.PERMANENT,  # ESME_RINVSERTYP
    0x43: ErrorKind.PERMANENT,  # ESME_RINVESMCLASS
    0x61: ErrorKind.PERMANENT,  # ESME_RINVSCHED
    0x62: ErrorKind.PERMANENT,  # ESME_RINVEXPIRY: validity_period refused
    0x65: ErrorKind.PERMANENT,  # ESME_RX_P_APPN: permanent application error at the SMSC
    0x66: ErrorKind.PERMANENT,  # ESME_RX_R_APPN: the SMSC rejects the message
    0xC0: ErrorKind.PERMANENT,  # ESME_RINVOPTPARSTREAM
    0xC1: ErrorKind.PERMANENT,  # ESME_ROPTPARNOTALLWD
    0xC2: ErrorKind.PERMANENT,  # ESME_RINVPARLEN
    0xC3: ErrorKind.PERMANENT,  # ESME_RMISSINGOPTPARAM
    0xC4: ErrorKind.PERMANENT,  # ESME_RINVOPTPARAMVAL
    0x04: ErrorKind.TRANSIENT,  # ESME_RINVBNDSTS: our bind was not in a state to submit
    0x08: ErrorKind.TRANSIENT,  # ESME_RSYSERR
    0x0D: ErrorKind.TRANSIENT,  # ESME_RBINDFAIL
    0x45: ErrorKind.TRANSIENT,  # ESME_RSUBMITFAIL
    0x64: ErrorKind.TRANSIENT,  # ESME_RX_T_APPN: temporary application error
    0xFE: ErrorKind.TRANSIENT,  # ESME_RDELIVERYFAILURE
    0xFF: ErrorKind.TRANSIENT,  # ESME_RUNKNOWNERR
}


def error_kind(status: int) -> ErrorKind:
    """Codes outside the table (vendor-specific 0x400-0x4FF among them) are transient: retried with
    backoff and the retry budget, failed over, and shown with their code in the failure report."""
    return ERROR_KINDS.get(status, ErrorKind.TRANSIENT)

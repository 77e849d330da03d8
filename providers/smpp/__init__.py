"""The SMPP 3.4 provider: `providers/smpp/provider.py` (binds, sending, receipts), `session.py` (one
bind), `pdu.py` (the wire), `text.py` (encodings, segments, addresses), `receipts.py`, `errors.py`."""

from providers.smpp.provider import PROVIDER_TYPE, SmppProvider, SmppSettings

__all__ = ["PROVIDER_TYPE", "SmppProvider", "SmppSettings"]

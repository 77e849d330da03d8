"""The sandbox's record of what it accepted is shared by every worker process, like a provider's:
a lookup after a crash sees what any process handed over, including after its own first look."""

from __future__ import annotations

from pathlib import Path

from providers.base import Lookup, Outbound
from providers.sandbox import SandboxProvider


def _sms(reference: str) -> Outbound:
    return Outbound(reference, "default", "sms", "+8613812345678", {"text": "hi"}, "transactional")


async def test_a_lookup_sees_what_another_process_sent_after_this_one_first_looked(tmp_path: Path) -> None:
    ledger = str(tmp_path / "sandbox-ledger.ndjson")
    recovering = SandboxProvider(receipt_url=None, secret="s", latency_ms=0, ledger_path=ledger)
    sending = SandboxProvider(receipt_url=None, secret="s", latency_ms=0, ledger_path=ledger)
    await recovering.start()
    await sending.start()
    try:
        first = await sending.send(_sms("msg_A"))
        assert await recovering.lookup("msg_A") == Lookup(True, first.provider_message_id)
        # Sent after the recovering process has read the ledger once: it must still see it.
        second = await sending.send(_sms("msg_B"))
        assert await recovering.lookup("msg_B") == Lookup(True, second.provider_message_id)
        assert await recovering.lookup("msg_never_sent") == Lookup(accepted=False)
    finally:
        await sending.close()
        await recovering.close()


async def test_a_line_still_being_written_is_read_once_complete(tmp_path: Path) -> None:
    path = tmp_path / "sandbox-ledger.ndjson"
    recovering = SandboxProvider(receipt_url=None, secret="s", latency_ms=0, ledger_path=str(path))
    await recovering.start()
    try:
        assert await recovering.lookup("msg_C") == Lookup(accepted=False)
        line = b'{"ref":"msg_C","sid":"SBX1","fate":"delivered","at":1}\n'
        with path.open("ab") as ledger:
            ledger.write(line[:20])  # another process mid-append
            ledger.flush()
            assert await recovering.lookup("msg_C") == Lookup(accepted=False)
            ledger.write(line[20:])
        assert await recovering.lookup("msg_C") == Lookup(accepted=True, provider_message_id="SBX1")
    finally:
        await recovering.close()

"""What the gateway does with receipts and replies once a provider has parsed them, whichever way they
came: an HTTP callback (api/receipts.py, api/suppressions.py) or a provider's own connection (SMPP
`deliver_sm`). Receipts are recorded once each and move statuses up the lattice, and feed number
health; an opt-out or opt-in reply changes the suppression list at once."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from gateway.background import survived
from gateway.domain.email_address import parse_mailbox
from gateway.domain.jobs import normalise_phone
from gateway.domain.numbers import Signal, receipt_signals
from gateway.domain.optout import ReplyIntent, parse_opt_out
from gateway.metrics import Metrics
from gateway.number_pool import NumberPool
from gateway.store.port import IntakeStore
from gateway.store.records import ReceiptRecord
from providers.base import InboundMessage, Receipt

log = structlog.get_logger("gateway.callback_intake")


def normalise_address(value: str) -> str:
    """The form addresses are stored in, so a suppression matches however it was written."""
    if value.startswith("+"):
        return normalise_phone(value) or value
    if "@" in value and "://" not in value:
        mailbox = parse_mailbox(value)
        if mailbox is not None:
            return mailbox.address
        local, _, domain = value.rpartition("@")
        return f"{local}@{domain.lower()}"
    return value


def receipt_record(provider: str, r: Receipt) -> ReceiptRecord:
    return ReceiptRecord(
        provider=provider,
        provider_message_id=r.provider_message_id,
        status=r.status,
        reference=r.reference,
        error_code=r.error_code,
        occurred_at=r.occurred_at,
        raw=r.raw,
        error_kind=r.error_kind.value if r.error_kind is not None else None,
        part=r.part,
        parts=r.parts,
    )


class CallbackIntake:
    """Implements providers.base.CallbackIntake for the gateway's store, number pool and metrics."""

    def __init__(
        self, store: IntakeStore, metrics: Metrics, numbers: NumberPool | None, limits: Mapping[str, Any]
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.numbers = numbers
        self.keywords = parse_opt_out(limits.get("opt_out"))

    def survived(self, loop: str, event: str, exc: BaseException, **context: Any) -> None:
        survived(self.metrics, loop, event, exc, **context)

    async def receipts(self, provider: str, receipts: Sequence[Receipt]) -> dict[str, int]:
        records = [receipt_record(provider, r) for r in receipts]
        observed: list[tuple[str, ReceiptRecord]] | None = None
        if self.numbers is not None and await self.numbers.has_numbers():
            observed = []
        summary = await self.store.apply_receipts(records, observed)
        for result, count in summary.items():
            if count:
                self.metrics.receipts.labels(provider, result).inc(count)
        if self.numbers is not None and observed:
            try:
                await self.numbers.observe_senders(
                    [
                        (sender, provider, None, signal)
                        for sender, receipt in observed
                        for signal in receipt_signals(receipt.status, receipt.error_kind)
                    ]
                )
            except Exception as exc:  # noqa: BLE001
                # The receipts are recorded; losing their evidence must not make the provider resend them.
                survived(
                    self.metrics, "receipt-evidence", "number health not updated from receipts", exc, provider=provider
                )
        return summary

    async def inbound(self, provider: str, replies: Sequence[InboundMessage]) -> dict[str, int]:
        counts = {"opted_out": 0, "opted_in": 0, "other": 0, "unmatched": 0}
        for reply in replies:
            intent = self.keywords.classify(reply.text).intent
            if intent not in (ReplyIntent.OPT_OUT, ReplyIntent.OPT_IN):
                counts["other"] += 1
                await self._record_reply(provider, reply)
                continue
            address = normalise_address(reply.sender)
            tenants = await self.store.tenants_that_messaged(address)
            if not tenants:
                counts["unmatched"] += 1
                continue
            await self._change_suppression(provider, intent, address, tenants)
            counts["opted_out" if intent is ReplyIntent.OPT_OUT else "opted_in"] += 1
            if intent is ReplyIntent.OPT_OUT and reply.to and self.numbers is not None:
                # Recipients answering a number with STOP: complaints come next, then the carrier's flag.
                try:
                    await self.numbers.observe_senders([(reply.to, provider, None, Signal.OPT_OUT)])
                except Exception as exc:  # noqa: BLE001 - the opt-out is recorded; only its evidence is lost
                    survived(
                        self.metrics, "reply-evidence", "number health not updated from a reply", exc, provider=provider
                    )
            log.info("reply changed a suppression", provider=provider, to=address, intent=intent.value)
        return counts

    async def _record_reply(self, provider: str, reply: InboundMessage) -> None:
        """A reply that is no opt-out is news for the campaign system (an `inbound` callback)."""
        address = normalise_address(reply.sender)
        at = reply.received_at or time.time()
        rows = [
            {"tenant_id": t, "at": at, "provider": provider, "from": address, "to": reply.to, "text": reply.text}
            for t in await self.store.tenants_that_messaged(address)
        ]
        if rows:
            await self.store.record_replies(rows)

    async def _change_suppression(
        self, provider: str, intent: ReplyIntent, address: str, tenants: Sequence[str]
    ) -> None:
        now = time.time()
        for tenant_id in tenants:
            if intent is ReplyIntent.OPT_OUT:
                await self.store.add_suppressions(
                    [
                        {
                            "tenant_id": tenant_id,
                            "kind": "address",
                            "value": address,
                            "reason": "opt_out.reply",
                            "source": f"inbound:{provider}",
                            "created_at": now,
                        }
                    ]
                )
            else:
                await self.store.remove_suppression(tenant_id, "address", address, f"inbound:{provider}")

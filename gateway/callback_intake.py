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
from gateway.domain.optout import ReplyIntent, SuppressionScope, answered_by, parse_opt_out
from gateway.metrics import Metrics
from gateway.number_pool import NumberPool
from gateway.store.port import IntakeStore
from gateway.store.records import ReceiptRecord
from gateway.tenant_settings import TenantSettings
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
        self,
        store: IntakeStore,
        metrics: Metrics,
        numbers: NumberPool | None,
        limits: Mapping[str, Any],
        tenants: Mapping[str, TenantSettings] | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.numbers = numbers
        self.keywords = parse_opt_out(limits.get("opt_out"))
        self.tenants = dict(tenants or {})
        # Our numbers -> the tenants that configured them ([tenants.<t>] inbound_numbers).
        self.inbound_numbers: dict[str, list[str]] = {}
        for tenant_id, own in self.tenants.items():
            for number in own.inbound_numbers:
                self.inbound_numbers.setdefault(normalise_address(number), []).append(tenant_id)

    def _scope(self, tenant_id: str) -> str:
        own = self.tenants.get(tenant_id)
        if own is not None and "opt_out_scope" in own.model_fields_set:
            return own.opt_out_scope
        return self.tenants.get("default", TenantSettings()).opt_out_scope

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
        """Each reply speaks to the tenant whose message it answered (docs/recipients.md): it is kept as an
        `inbound.reply` event there; an opt-out suppresses that tenant's marketing, an opt-in lifts it."""
        counts = {"opted_out": 0, "opted_in": 0, "other": 0, "unmatched": 0}
        for reply in replies:
            verdict = self.keywords.classify(reply.text)
            address = normalise_address(reply.sender)
            ours = normalise_address(reply.to) if reply.to else None
            tenants, matched_by, answered, pool = await self._addressees(address, ours)
            if verdict.intent not in (ReplyIntent.OPT_OUT, ReplyIntent.OPT_IN):
                counts["other"] += 1
            elif not tenants:
                counts["unmatched"] += 1
            else:
                await self._change_suppression(provider, verdict.intent, address, tenants, pool)
                counts["opted_out" if verdict.intent is ReplyIntent.OPT_OUT else "opted_in"] += 1
                await self._number_evidence(provider, verdict.intent, reply)
            if tenants:
                event = {
                    "tenant_id": answered["tenant_id"] if answered else None,
                    "message_id": answered["id"] if answered else None,
                    "from": address,
                    "to": ours,
                    "text": reply.text,
                    "intent": verdict.intent.value,
                    "keyword": verdict.keyword,
                    "matched_by": matched_by,
                    "provider": provider,
                }
                await self.store.record_reply(tenants, address, event)
            log.info("reply", provider=provider, to=address, intent=verdict.intent.value, tenants=len(tenants))
        return counts

    async def _addressees(
        self, address: str, ours: str | None
    ) -> tuple[list[str], str, dict[str, Any] | None, str | None]:
        """The tenants a reply speaks to, how that was decided, the message it answered, the sender pool."""
        answered = await self.store.answered_message(address, ours)
        pool: str | None = None
        same_pool: list[str] = []
        if answered is not None and answered["sender"] and self._scope(answered["tenant_id"]) == "tenant_and_pool":
            pool, same_pool = await self.store.tenants_reached_from_pool(address, answered["sender"])
        configured = self.inbound_numbers.get(ours, []) if ours else []
        tenants, matched_by = answered_by(answered["tenant_id"] if answered else None, same_pool, configured)
        return tenants, matched_by, answered, pool

    async def _number_evidence(self, provider: str, intent: ReplyIntent, reply: InboundMessage) -> None:
        if intent is ReplyIntent.OPT_OUT and reply.to and self.numbers is not None:
            # Recipients answering a number with STOP: complaints come next, then the carrier's flag.
            try:
                await self.numbers.observe_senders([(reply.to, provider, None, Signal.OPT_OUT)])
            except Exception as exc:  # noqa: BLE001 - the opt-out is recorded; only its evidence is lost
                survived(
                    self.metrics, "reply-evidence", "number health not updated from a reply", exc, provider=provider
                )

    async def _change_suppression(
        self, provider: str, intent: ReplyIntent, address: str, tenants: Sequence[str], pool: str | None
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
                            "scope": SuppressionScope.MARKETING.value,
                            "pool": pool,
                        }
                    ]
                )
            else:
                await self.store.remove_suppression(tenant_id, "address", address, f"inbound:{provider}")

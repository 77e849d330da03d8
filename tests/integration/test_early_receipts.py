"""A receipt can reach the gateway before the worker has recorded the hand-off it is about (fast
carriers, a slow commit). It is held, applied when the hand-off is recorded, and what it says about
the sender number (filtered as spam) still reaches number health."""

from __future__ import annotations

import time

import pytest

from gateway.domain.numbers import Signal, receipt_signals
from gateway.store.records import Outcome, ReceiptRecord
from tests.harness import SMS, GatewayStarter


async def test_a_receipt_held_for_its_send_comes_back_with_its_error_kind(start_gateway: GatewayStarter) -> None:
    async with start_gateway(role="api") as gw:
        store = gw.gateway.store
        accepted = await gw.post("/v1/messages", {**SMS, "category": "transactional"})
        message_id = (await accepted.json())["id"]
        early = ReceiptRecord(
            provider="sandbox",
            provider_message_id="SBXearly",
            status="undelivered",
            error_code="SBX-30007",
            error_kind="sender_flagged",
        )
        assert await store.apply_receipts([early]) == {"applied": 0, "duplicate": 0, "held": 1}

        now = time.time()
        sent = Outcome(
            message_id,
            "default",
            "sent",
            now,
            reason="provider.accepted",
            attempt=1,
            attempt_outcome="sent",
            provider="sandbox",
            provider_message_id="SBXearly",
            next_attempt_at=now + 3600,
        )
        applied = await store.record_outcome(sent)

        assert [(r.status, r.error_code, r.error_kind) for r in applied] == [
            ("undelivered", "SBX-30007", "sender_flagged")
        ]
        shown = await (await gw.get(f"/v1/messages/{message_id}")).json()
        assert shown["status"] == "undelivered"
        # Recorded once: a later outcome of the same message has no early receipt left to report.
        assert await store.record_outcome(sent) == []


@pytest.mark.parametrize(
    ("status", "kind", "signals"),
    [
        ("delivered", None, [Signal.DELIVERED]),
        ("undelivered", "sender_flagged", [Signal.FAILED, Signal.FILTERED]),
        ("failed", "permanent", [Signal.FAILED]),
        ("sent", None, []),
        ("queued", "sender_flagged", []),
    ],
)
def test_only_final_receipts_are_evidence_and_only_filtering_blames_the_number(
    status: str, kind: str | None, signals: list[Signal]
) -> None:
    assert receipt_signals(status, kind) == signals

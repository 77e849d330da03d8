"""The receipt ordering rules (domain/receipts.py): the lattice, segments, earlier channels, batches."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from gateway.domain.models import Status
from gateway.domain.receipts import (
    Verdict,
    is_delivered_segment,
    is_earlier_channel,
    judge,
    judge_batch,
    outcome_keeps_status,
    receipt_may_replace,
    segments_complete,
    status_reason,
)

S = Status


@dataclass(frozen=True)
class Rcpt:
    status: str
    parts: int | None = None
    pmid: str = "P1"


# (current status, receipt status, moves?) - every receipt status a provider reports, against every
# status a message can be in when its receipt arrives.
LATTICE = [
    (S.QUEUED, S.SENT, True),
    (S.SENDING, S.SENT, True),
    (S.SENDING, S.DELIVERED, True),
    (S.UNKNOWN, S.SENT, True),
    (S.UNKNOWN, S.FAILED, True),
    (S.SENT, S.DELIVERED, True),
    (S.SENT, S.UNDELIVERED, True),
    (S.SENT, S.FAILED, True),
    (S.UNDELIVERED, S.DELIVERED, True),  # a handset retry that got through in the end
    (S.FAILED, S.DELIVERED, True),
    (S.SENT, S.SENT, False),  # the same word twice moves nothing
    (S.DELIVERED, S.SENT, False),  # a late `sent` never overwrites `delivered`
    (S.DELIVERED, S.UNDELIVERED, False),
    (S.DELIVERED, S.FAILED, False),
    (S.UNDELIVERED, S.FAILED, False),  # equal rank: the first final word stands
    (S.FAILED, S.UNDELIVERED, False),
    (S.UNDELIVERED, S.SENT, False),
    # Policy's final statuses are off the lattice: no receipt moves them.
    (S.REJECTED, S.DELIVERED, False),
    (S.SUPPRESSED, S.DELIVERED, False),
    (S.EXPIRED, S.DELIVERED, False),
]


@pytest.mark.parametrize(("current", "incoming", "moves"), LATTICE)
def test_a_receipt_moves_a_status_only_strictly_up(current: Status, incoming: Status, moves: bool) -> None:
    assert receipt_may_replace(current, incoming) is moves


def test_a_status_no_provider_reports_moves_nothing() -> None:
    assert not receipt_may_replace(S.QUEUED, "accepted-by-carrier")
    assert not receipt_may_replace(S.QUEUED, S.QUEUED)


def test_the_lattice_has_no_cycle() -> None:
    """Whatever two statuses, at most one of them may replace the other."""
    for a, b in itertools.product(Status, repeat=2):
        assert not (receipt_may_replace(a, b) and receipt_may_replace(b, a)), (a, b)


# (message's current status, outcome the worker records, status kept?)
OUTCOMES = [
    (S.DELIVERED, S.SENT, True),
    (S.DELIVERED, S.UNKNOWN, True),
    (S.DELIVERED, S.QUEUED, True),  # a retry of a delivered message would send it twice
    (S.UNDELIVERED, S.SENT, True),
    (S.FAILED, S.SENT, True),
    (S.SENT, S.UNKNOWN, True),  # a `sent` receipt beat the call's timeout: the provider has it
    (S.SENT, S.QUEUED, True),
    (S.SENT, S.SENT, False),
    (S.SENT, S.FAILED, False),
    (S.SENDING, S.SENT, False),
    (S.SENDING, S.UNKNOWN, False),
    (S.SENDING, S.QUEUED, False),
    (S.QUEUED, S.EXPIRED, False),
]


@pytest.mark.parametrize(("current", "outcome", "kept"), OUTCOMES)
def test_a_late_outcome_never_undoes_a_receipt(current: Status, outcome: Status, kept: bool) -> None:
    assert outcome_keeps_status(current, outcome) is kept


@pytest.mark.parametrize(
    ("status", "parts", "segment"),
    [
        (S.DELIVERED, 3, True),
        (S.DELIVERED, 2, True),
        (S.DELIVERED, 1, False),  # one segment is the whole message
        (S.DELIVERED, None, False),
        (S.UNDELIVERED, 3, False),  # a lost segment speaks for the whole message at once
        (S.SENT, 3, False),
    ],
)
def test_only_a_delivered_segment_of_several_waits(status: Status, parts: int | None, segment: bool) -> None:
    assert is_delivered_segment(status, parts) is segment


@pytest.mark.parametrize(("parts", "delivered", "complete"), [(3, 2, False), (3, 3, True), (2, 0, False)])
def test_a_message_is_delivered_when_every_segment_is(parts: int, delivered: int, complete: bool) -> None:
    assert segments_complete(parts, delivered) is complete


def test_an_attempt_on_another_channel_is_an_earlier_one() -> None:
    assert is_earlier_channel("sms", "voice")
    assert not is_earlier_channel("sms", "sms")


@pytest.mark.parametrize(
    ("current", "receipt", "left", "segments_done", "verdict"),
    [
        (S.SENT, Rcpt(S.DELIVERED), None, False, Verdict.ADVANCE),
        (S.DELIVERED, Rcpt(S.SENT), None, False, Verdict.STALE),
        # The message fell back to voice: even a higher SMS receipt leaves the status alone.
        (S.QUEUED, Rcpt(S.DELIVERED), "sms", False, Verdict.EARLIER_CHANNEL),
        (S.SENT, Rcpt(S.DELIVERED, parts=3), None, False, Verdict.AWAIT_SEGMENTS),
        (S.SENT, Rcpt(S.DELIVERED, parts=3), None, True, Verdict.ADVANCE),
        (S.SENT, Rcpt(S.UNDELIVERED, parts=3), None, False, Verdict.ADVANCE),
        (S.DELIVERED, Rcpt(S.DELIVERED, parts=3), None, True, Verdict.STALE),
    ],
)
def test_one_receipt_is_judged_against_its_message(
    current: Status, receipt: Rcpt, left: str | None, segments_done: bool, verdict: Verdict
) -> None:
    assert judge(current, receipt, left_channel=left, segments_done=segments_done) is verdict


@pytest.mark.parametrize("order", list(itertools.permutations([S.SENT, S.DELIVERED, S.UNDELIVERED])))
def test_a_batch_ends_at_its_highest_receipt_whatever_the_order(order: tuple[Status, ...]) -> None:
    judged = judge_batch([("m1", Rcpt(s)) for s in order], {"m1": S.SENDING}, lambda m, r: None)
    assert [(j.receipt.status, j.verdict) for j in judged] == [
        (S.SENT, Verdict.ADVANCE),
        (S.UNDELIVERED, Verdict.ADVANCE),
        (S.DELIVERED, Verdict.ADVANCE),
    ]


def test_a_batch_judges_each_receipt_against_what_the_ones_before_it_set() -> None:
    judged = judge_batch(
        [("m1", Rcpt(S.FAILED)), ("m1", Rcpt(S.UNDELIVERED)), ("m2", Rcpt(S.SENT))],
        {"m1": S.SENT, "m2": S.DELIVERED},
        lambda m, r: None,
    )
    verdicts = {(j.message_id, j.receipt.status): j.verdict for j in judged}
    assert verdicts == {
        ("m2", S.SENT): Verdict.STALE,
        ("m1", S.FAILED): Verdict.ADVANCE,
        ("m1", S.UNDELIVERED): Verdict.STALE,  # the first final word of equal rank stands
    }


def test_a_batch_names_the_channel_a_receipt_came_from() -> None:
    judged = judge_batch(
        [("m1", Rcpt(S.DELIVERED, pmid="SMS1")), ("m1", Rcpt(S.SENT, pmid="VOICE1"))],
        {"m1": S.SENDING},
        lambda m, r: "sms" if r.pmid == "SMS1" else None,
        segments_done=(),
    )
    assert [(j.receipt.pmid, j.verdict, j.left_channel) for j in judged] == [
        ("VOICE1", Verdict.ADVANCE, None),
        ("SMS1", Verdict.EARLIER_CHANNEL, "sms"),
    ]


def test_a_batch_waits_for_the_last_segment() -> None:
    receipts = [("m1", Rcpt(S.DELIVERED, parts=2)), ("m2", Rcpt(S.DELIVERED, parts=2))]
    judged = judge_batch(receipts, {"m1": S.SENT, "m2": S.SENT}, lambda m, r: None, segments_done={"m2"})
    assert {j.message_id: j.verdict for j in judged} == {"m1": Verdict.AWAIT_SEGMENTS, "m2": Verdict.ADVANCE}


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (S.DELIVERED, None, "receipt"),
        (S.UNDELIVERED, "30003", "provider.undelivered.30003"),
        (S.FAILED, None, "provider.failed.none"),
    ],
)
def test_the_reason_a_receipt_records(status: Status, code: str | None, reason: str) -> None:
    assert status_reason(status, code) == reason

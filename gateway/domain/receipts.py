"""The receipt ordering rules: which status may replace which, how a message's segments combine into
its status, and which receipts belong to a channel the message has since left.

Receipts arrive late, twice, out of order, per segment, and for attempts the message fell back from.
The store reads the facts (current statuses, attempt channels, delivered segment counts) and applies
the verdicts given here; nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from gateway.domain.models import RECEIPT_RANK, RECEIPTED, Status

# A status the ranking does not know: as a receipt it moves nothing, as a message's status (a job
# rejected, suppressed or expired by policy) nothing moves it.
_UNRANKED_RECEIPT = 0
_UNRANKED_CURRENT = 99

# A `sent` receipt means the provider has the message: an outcome that would resend it (a retry,
# back to `queued`) or call the hand-off unknowable must not undo that.
SENT_HOLDS_AGAINST = frozenset({Status.UNKNOWN, Status.QUEUED})


_RANK: dict[str, int] = {status.value: rank for status, rank in RECEIPT_RANK.items()}


def receipt_rank(status: str) -> int:
    """A status's place on the lattice when a receipt proposes it."""
    return _RANK.get(status, _UNRANKED_RECEIPT)


def receipt_may_replace(current: str, incoming: str) -> bool:
    """Whether a receipt saying `incoming` moves a message now at `current`: only strictly up."""
    return receipt_rank(incoming) > _RANK.get(current, _UNRANKED_CURRENT)


def outcome_keeps_status(current: str, outcome: str) -> bool:
    """Whether a message at `current` keeps it against a recorded hand-off outcome `outcome`.

    A receipt is the provider's word on what reached the handset: once one has set a final status,
    no later outcome of the same hand-off (sent, unknown, a retry) moves the message back down."""
    return current in RECEIPTED or (current == Status.SENT and outcome in SENT_HOLDS_AGAINST)


def is_delivered_segment(status: str, parts: int | None) -> bool:
    """A `delivered` receipt for one segment of a message sent in several."""
    return parts is not None and parts > 1 and status == Status.DELIVERED


def segments_complete(parts: int, delivered_parts: int) -> bool:
    """Whether every segment of a message sent in `parts` has a delivered receipt."""
    return delivered_parts >= parts


def is_earlier_channel(attempt_channel: str, message_channel: str) -> bool:
    """A receipt for an attempt on a channel other than the message's own belongs to a channel the
    message fell back from."""
    return attempt_channel != message_channel


class Verdict(enum.StrEnum):
    """What a matched receipt does to its message."""

    ADVANCE = "advance"  # it sets the message's status
    EARLIER_CHANNEL = "earlier_channel"  # recorded as evidence of a channel left; status kept
    AWAIT_SEGMENTS = "await_segments"  # one segment delivered; the message waits for the rest
    STALE = "stale"  # not above the status the message already has


class Receipt(Protocol):
    """What the rules need to know of a receipt."""

    @property
    def status(self) -> str: ...

    @property
    def parts(self) -> int | None: ...


R = TypeVar("R", bound=Receipt)


def judge(current: str, receipt: Receipt, *, left_channel: str | None, segments_done: bool) -> Verdict:
    """One receipt against its message's current status.

    `left_channel`: the channel the receipt's attempt was made on, if the message has since left it.
    `segments_done`: whether every segment of the message is delivered (counting this receipt)."""
    if left_channel is not None:
        return Verdict.EARLIER_CHANNEL
    if is_delivered_segment(receipt.status, receipt.parts) and not segments_done:
        return Verdict.AWAIT_SEGMENTS
    if not receipt_may_replace(current, receipt.status):
        return Verdict.STALE
    return Verdict.ADVANCE


@dataclass(frozen=True, slots=True)
class Judged(Generic[R]):
    message_id: str
    receipt: R
    verdict: Verdict
    left_channel: str | None = None


def judge_batch(
    matched: Sequence[tuple[str, R]],
    current: Mapping[str, str],
    left_channel: Callable[[str, R], str | None],
    segments_done: Iterable[str] = (),
) -> list[Judged[R]]:
    """Every matched (message id, receipt) judged, in the order they are to be applied.

    Receipts of one batch are taken lowest first, each against the status the ones before it set,
    so the batch ends where the highest of them would: the order they came in does not matter."""
    done = set(segments_done)
    status = dict(current)
    judged: list[Judged[R]] = []
    for message_id, receipt in sorted(matched, key=lambda m: receipt_rank(m[1].status)):
        channel = left_channel(message_id, receipt)
        verdict = judge(status[message_id], receipt, left_channel=channel, segments_done=message_id in done)
        if verdict is Verdict.ADVANCE:
            status[message_id] = receipt.status
        judged.append(Judged(message_id, receipt, verdict, channel))
    return judged


def status_reason(status: str, error_code: str | None) -> str:
    """The reason recorded with a status a receipt set."""
    return "receipt" if status == Status.DELIVERED else f"provider.{status}.{error_code or 'none'}"

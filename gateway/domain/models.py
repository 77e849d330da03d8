"""The vocabulary of the gateway: channels, categories, statuses and the send job."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Channel(enum.StrEnum):
    SMS = "sms"
    VOICE = "voice"
    PUSH = "push"
    EMAIL = "email"
    WEBHOOK = "webhook"


class Category(enum.StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class Status(enum.StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    REJECTED = "rejected"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    # In an experiment's holdout (domain/experiments): recorded, never sent, so the campaign's
    # effect can be measured against people it did not reach. Final; no receipt can move it.
    HELD_OUT = "held_out"


def is_member(value: object, enum: type[enum.StrEnum]) -> bool:
    """Whether a JSON value names a member; a list or object is simply not one (and not a crash)."""
    return isinstance(value, str) and value in enum._value2member_map_


# Each set of statuses is defined here once; SQL uses them too (as bound values, in_(sorted(...))).

# Statuses a worker may pick up; everything from SENDING on belongs to a hand-off or is final.
DISPATCHABLE = frozenset({Status.QUEUED, Status.DEFERRED})
# What the console shows as the queue: waiting, or in a hand-off.
IN_QUEUE = (Status.QUEUED, Status.DEFERRED, Status.SENDING)
FINAL = frozenset(
    {
        Status.DELIVERED,
        Status.UNDELIVERED,
        Status.FAILED,
        Status.REJECTED,
        Status.SUPPRESSED,
        Status.EXPIRED,
        Status.UNKNOWN,
        Status.HELD_OUT,
    }
)
# Where a job's dispatch ended without a message (counted as failed in the metrics).
FINAL_FAILURES = frozenset({Status.FAILED, Status.REJECTED, Status.SUPPRESSED, Status.EXPIRED, Status.UNKNOWN})
# A hand-off that reached the recipient's side: its cap and number reservations stand.
HANDED_OVER = frozenset({Status.SENT, Status.DELIVERED})
# The final statuses a receipt sets; no later outcome of the same hand-off moves a job out of them.
RECEIPTED = frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED})
# A campaign report's "sent": the provider took the message, whatever its receipt said later.
SENT = frozenset({Status.SENT, Status.DELIVERED, Status.UNDELIVERED})
# A campaign report's "failed": it did not reach the handset.
FAILED = frozenset({Status.FAILED, Status.UNDELIVERED, Status.REJECTED, Status.EXPIRED, Status.UNKNOWN})


class AttemptOutcome(enum.StrEnum):
    """What one provider call came to (an attempt's outcome, not the message's status)."""

    PENDING = "pending"  # the `sending` mark is committed; the call has not answered yet
    SENT = "sent"
    TRANSIENT = "transient"
    FAILED = "failed"
    UNKNOWN = "unknown"


# Receipts may arrive late, twice or out of order; a status only ever moves up this ranking so a
# late "sent" can never overwrite "delivered".
RECEIPT_RANK: dict[Status, int] = {
    Status.QUEUED: 0,
    Status.DEFERRED: 0,
    Status.SENDING: 1,
    Status.UNKNOWN: 2,
    Status.SENT: 3,
    Status.UNDELIVERED: 4,
    Status.FAILED: 4,
    Status.DELIVERED: 5,
}


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """A job's template as the request names it: rendered at accept into the job's content."""

    name: str
    version: int | None = None  # None: the latest published version
    locale: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendJob:
    """A validated send job, as accepted from a campaign system."""

    channel: Channel
    to: str
    content: dict[str, Any]
    category: Category = Category.MARKETING
    user_id: str | None = None
    campaign: str | None = None
    variant: str | None = None
    send_at: float | None = None
    expires_at: float | None = None
    fallback: tuple[Channel, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    tz: str | None = None  # the recipient's IANA time zone, when the campaign system knows it
    # "cost": try the channels (own and fallback) that take the address cheapest first, by routing.costs.
    channel_order: str = "listed"
    template: TemplateRef | None = None  # given instead of content; rendered at accept


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed job as the dispatch path sees it: the stored message, typed, read-only.

    `content` is the stored JSON text (parsed only by the steps that need it); `fallback` the
    channels still to try, comma-separated, as stored."""

    id: str
    tenant_id: str
    channel: str
    to_addr: str
    content: str
    category: str
    status: Status
    attempt_count: int
    next_attempt_at: float
    created_at: float
    updated_at: float
    user_id: str | None = None
    campaign: str | None = None
    variant: str | None = None
    send_at: float | None = None
    expires_at: float | None = None
    fallback: str | None = None
    tz: str | None = None
    reason: str | None = None
    provider: str | None = None
    sender: str | None = None

    @property
    def fallback_channels(self) -> list[str]:
        return [c for c in (self.fallback or "").split(",") if c]

    @property
    def retrying(self) -> bool:
        """Back in the queue after a failed or recovered attempt (not a first try, nor a deferral)."""
        return self.reason is not None and self.reason.startswith(("retry.", "recovered."))

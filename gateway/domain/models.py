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


def is_member(value: object, enum: type[enum.StrEnum]) -> bool:
    """Whether a JSON value names a member; a list or object is simply not one (and not a crash)."""
    return isinstance(value, str) and value in enum._value2member_map_


# Statuses a worker may pick up; everything from SENDING on belongs to a hand-off or is final.
DISPATCHABLE = frozenset({Status.QUEUED, Status.DEFERRED})
FINAL = frozenset(
    {
        Status.DELIVERED,
        Status.UNDELIVERED,
        Status.FAILED,
        Status.REJECTED,
        Status.SUPPRESSED,
        Status.EXPIRED,
        Status.UNKNOWN,
    }
)

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

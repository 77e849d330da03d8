"""Plain records passed between the store and the rest of the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.domain.models import AttemptOutcome, Job, Status
from gateway.domain.numbers import NumberState, SenderKind, SenderNumber
from gateway.domain.recipients import RecipientProfile

# What a purged message's content column holds: JSON null, so the API shows `"content": null`.
PURGED_CONTENT = "null"


@dataclass(slots=True)
class AcceptOutcome:
    """What became of one accepted job: stored now, or the key had been used before."""

    kind: Literal["accepted", "replay", "mismatch"]
    row: dict[str, Any]


@dataclass(slots=True)
class SendingMark:
    """A job about to be handed to a provider; committed before the hand-off so a crash is visible."""

    message_id: str
    tenant_id: str
    attempt: int
    channel: str
    provider: str
    sender: str | None
    at: float
    links: list[dict[str, Any]] = field(default_factory=list)  # tracked links in what is being sent
    # The worker whose lease the job is under; the mark only holds while that lease does.
    worker: str | None = None


# A row key (not a column) of an accepted recipient's job: the detail of its `channel.chosen` event.
CHANNEL_CHOICE = "channel_choice"
# What choosing a recipient's job's channels needs of the person: a profile of their addresses alone
# (no time zone, locale or attributes: store/sql/recipients.reachable_at) and their own preferences.
Addressing = tuple[RecipientProfile, dict[str, dict[str, bool]]]


@dataclass(slots=True)
class Outcome:
    """The result of one attempt, or a decision taken without one (expired, rejected, ...)."""

    message_id: str
    tenant_id: str
    status: Status
    at: float
    reason: str | None = None
    attempt: int | None = None
    attempt_outcome: AttemptOutcome | None = None  # None: no attempt was made
    provider: str | None = None
    provider_message_id: str | None = None
    error_kind: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    next_attempt_at: float | None = None
    channel: str | None = None  # set when the job falls back to another channel
    to_addr: str | None = None  # set when that channel takes another address (a recipient's job)
    part_ids: tuple[str, ...] = ()  # the provider's id of each segment, when it numbered them apart
    fallback: str | None = None  # the job's remaining fallback channels, with `channel`
    detail: dict[str, Any] = field(default_factory=dict)
    cost: float | None = None  # what the attempt cost, by the route's price table (domain/pricing)
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    provider: str
    provider_message_id: str
    status: str
    reference: str | None = None  # our message id, when the provider echoes it back
    error_code: str | None = None
    occurred_at: float | None = None
    raw: str | None = None
    error_kind: str | None = None  # the provider's class of error_code: feeds number health
    part: int | None = None  # segment `part` of `parts`, when the provider reports segments apart
    parts: int | None = None

    @property
    def dedup_key(self) -> str:
        key = f"{self.provider}:{self.provider_message_id}:{self.status}:{self.error_code or ''}"
        return f"{key}:{self.part}/{self.parts}" if self.parts else key


@dataclass(frozen=True, slots=True)
class MessageFilter:
    tenant_id: str
    campaign: str | None = None
    status: tuple[str, ...] = ()
    to: str | None = None
    user_id: str | None = None
    since: float | None = None
    until: float | None = None
    before_id: str | None = None
    limit: int = 50


def _split(value: str | None) -> frozenset[str]:
    return frozenset(part for part in (value or "").split(",") if part)


def to_number(row: Mapping[str, Any]) -> SenderNumber:
    return SenderNumber(
        id=row["id"],
        pool=row["pool"],
        sender=row["sender"],
        channel=row["channel"],
        state=NumberState(row["state"]),
        kind=SenderKind(row["kind"]),
        provider=row["provider"],
        countries=_split(row["countries"]),
        categories=_split(row["categories"]),
        region=row["region"],
        daily_cap=row["daily_cap"],
        rate=row["rate"],
        warmup=bool(row["warmup"]),
        epoch=int(row["epoch"]),
        state_since=float(row["state_since"]),
        cooldown_until=row["cooldown_until"],
        created_at=float(row["created_at"]),
    )


def to_job(row: Mapping[Any, Any]) -> Job:
    """The dispatch path's view of a claimed (or unreceipted) messages row."""
    return Job(
        id=row["id"],
        tenant_id=row["tenant_id"],
        channel=row["channel"],
        to_addr=row["to_addr"],
        content=row["content"],
        category=row["category"],
        status=Status(row["status"]),
        attempt_count=int(row["attempt_count"]),
        next_attempt_at=float(row["next_attempt_at"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        user_id=row["user_id"],
        campaign=row["campaign"],
        variant=row["variant"],
        send_at=row["send_at"],
        expires_at=row["expires_at"],
        fallback=row["fallback"],
        tz=row["tz"],
        reason=row["reason"],
        provider=row["provider"],
        sender=row["sender"],
    )


@dataclass(frozen=True)
class RecipientFilter:
    tenant_id: str
    address_kind: str | None = None  # phone, email, push, webhook
    attribute: tuple[str, str] | None = None
    # (unanswered marketing sends, since): only recipients the sleeping policy leaves alone
    sleeping: tuple[int, float] | None = None
    asleep: bool = True  # False: only those the policy does not leave alone
    after_user_id: str | None = None
    limit: int = 100

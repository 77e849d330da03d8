"""The one interface every provider implements, and the vocabulary of provider outcomes."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import orjson


class ErrorKind(enum.StrEnum):
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    PERMANENT = "permanent"
    RECIPIENT_INVALID = "recipient_invalid"
    RECIPIENT_OPTED_OUT = "recipient_opted_out"
    SENDER_FLAGGED = "sender_flagged"

    @property
    def retryable(self) -> bool:
        return self in (ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED, ErrorKind.SENDER_FLAGGED)


@dataclass(frozen=True, slots=True)
class ProviderError:
    kind: ErrorKind
    code: str
    message: str = ""
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Outbound:
    """What a provider needs to send one message; `reference` is our message id."""

    reference: str
    tenant_id: str
    channel: str
    to: str
    content: Mapping[str, Any]
    category: str
    sender: str | None = None
    campaign: str | None = None
    attempt: int = 1
    segments: int = 1  # SMS segments of the content as sent (after link rewriting)
    encoding: str | None = None  # the content policy's SMS encoding of the text ("GSM-7" or "UCS-2")
    expires_at: float | None = None  # the job's own deadline (epoch seconds): no use delivering it later


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str | None = None
    error: ProviderError | None = None
    # When the provider gave each segment of a long SMS an id of its own (SMPP), all of them in part
    # order (the first is provider_message_id): their receipts name these ids.
    part_ids: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the provider knows of a reference after a crash: did it take the message?"""

    accepted: bool
    provider_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    provider_message_id: str
    status: str  # one of our statuses: sent, delivered, undelivered, failed
    reference: str | None = None
    error_code: str | None = None
    occurred_at: float | None = None
    raw: str | None = None
    # The class of error_code (SENDER_FLAGGED: the carrier filtered the sender as spam), so receipts
    # feed sender-number health without the gateway knowing each provider's codes.
    error_kind: ErrorKind | None = None
    # Set when the provider reports each segment of a long SMS on its own: this is segment `part`
    # (1-based) of `parts`. The gateway combines them: delivered once every part is.
    part: int | None = None
    parts: int | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A reply from a recipient (e.g. "STOP" or "退订"), as the provider reported it."""

    sender: str  # the recipient who replied (E.164 for SMS)
    to: str | None  # our number they replied to
    text: str
    received_at: float | None = None


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """An HTTP callback from a provider, free of any web framework."""

    method: str
    url: str  # the public URL the provider called (what its signature covers)
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Capabilities:
    channels: frozenset[str]
    receipts: bool = False
    lookup: bool = False
    max_per_second: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


CallbackKind = Literal["receipts", "inbound"]


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    """What the gateway answers a provider's callback with once it is recorded: the provider may
    retry a callback whose answer is not the one it documents."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None


def json_answer(summary: Mapping[str, int]) -> CallbackAnswer:
    """Our own answer: what was recorded, as JSON (for providers that only look at the status)."""
    return CallbackAnswer(200, orjson.dumps(dict(summary)), "application/json")


class JsonCallbackAnswers:
    """The default `acknowledge`: our JSON summary. Providers that document an answer override it."""

    def acknowledge(self, kind: CallbackKind, summary: Mapping[str, int]) -> CallbackAnswer:
        return json_answer(summary)


class SignatureError(Exception):
    """A callback's signature is missing, wrong or stale; nothing of it may be recorded."""


class CallbackFormatError(Exception):
    """A callback is signed correctly but cannot be understood."""


class CallbackIntake(Protocol):
    """Where a provider that pushes over its own connection (SMPP) hands receipts and replies: the
    same recording, opt-out handling and number evidence as the HTTP callbacks. It returns once they
    are committed, so the provider acknowledges only what is recorded; it raises when they are not."""

    async def receipts(self, provider: str, receipts: Sequence[Receipt]) -> Mapping[str, int]: ...

    async def inbound(self, provider: str, replies: Sequence[InboundMessage]) -> Mapping[str, int]: ...


@runtime_checkable
class Provider(Protocol):
    name: str
    capabilities: Capabilities

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, message: Outbound) -> SendResult: ...

    async def lookup(self, reference: str) -> Lookup | None:
        """None when this provider cannot be asked about a reference."""
        ...

    def parse_receipts(self, request: InboundRequest) -> list[Receipt]:
        """Verify the callback's signature and turn it into receipts; raises SignatureError."""
        ...

    def parse_inbound(self, request: InboundRequest) -> list[InboundMessage]:
        """Verify the callback's signature and turn it into replies; raises SignatureError."""
        ...

    def acknowledge(self, kind: CallbackKind, summary: Mapping[str, int]) -> CallbackAnswer:
        """The answer to a recorded receipts or inbound callback, in the form the provider documents
        (JsonCallbackAnswers gives our JSON summary). Refusals stay problem+json."""
        ...

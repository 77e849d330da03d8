"""The one interface every provider implements, and the vocabulary of provider outcomes."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
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
    # The answer is itself the delivery receipt (a webhook receiver's 2xx): the message is delivered
    # as the answer is recorded, and no receipt will follow.
    delivered: bool = False
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


def setting(
    default: Any = MISSING, *, doc: str, secret: bool = False, example: Any = None, from_key_file: bool = False
) -> Any:
    """A field of a provider's settings class, with the line that documents it in the generated
    example configuration: `secret` keeps it out of reprs and lets `<name>_file` supply it,
    `example` is what the example shows for a key without a default, and `from_key_file` marks a
    value read from a credentials file the section names rather than written in the section."""
    metadata = {"doc": doc, "example": example, "from_key_file": from_key_file}
    return field(default=default, repr=not secret, metadata=metadata)


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
    # The provider sends only templates registered with it (Alibaba Cloud without a free-text
    # template, Tencent Cloud): a job must carry its ids for this provider (providers/templates.py).
    requires_registered_template: bool = False
    # The keys a job's provider_templates entry for this provider must give (e.g. {"template_code"}).
    template_id_keys: frozenset[str] = frozenset()


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

    def survived(self, loop: str, event: str, exc: BaseException, **context: Any) -> None:
        """Report an error the provider's own loop caught and carries on after (logged and counted)."""


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


@dataclass(frozen=True, slots=True)
class ExtraKey:
    """A key of a provider section that is not a field of its settings class (read by `prepare`)."""

    name: str
    example: str
    doc: str


@dataclass(frozen=True, slots=True)
class ProviderType:
    """How the gateway offers one kind of provider: a module of providers/ that declares
    `PROVIDER_TYPE = ProviderType(...)` is found by providers.catalog; nothing else is registered."""

    name: str  # the `type` of a [providers.<section>] section (default: the section's name)
    settings: type[Any]  # a dataclass whose fields are declared with setting()
    build: Callable[[Any, str], Provider]  # (settings, section name) -> the adapter; opens nothing
    # The setting naming the account: sections of one type that share it share its limits
    # (`limits.throughput.account`, keyed "<type>:<value>").
    account_key: str | None = None
    # Turns a section's keys into the settings class's (e.g. a credentials file into its fields),
    # given the gateway's public URL.
    prepare: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    extra_keys: tuple[ExtraKey, ...] = ()
    # Credentials that are not settings fields, by the key of the file that may hold each one
    # (FCM: service_account_file -> service_account_json).
    secret_extras: Mapping[str, str] = field(default_factory=dict)

"""Send jobs in, the delivery log out: accept one, accept a batch, read one, list them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from gateway.contract.base import NO_CONTROL, Body, JsonValue, Label, Reply, Timestamp, explain_pattern
from gateway.contract.jobs import BATCH_ITEM, SEND_JOB
from gateway.contract.operations import (
    Answer,
    Operation,
    Query,
    auth_answers,
    body_answers,
    problem,
)
from gateway.contract.problems import Problem
from gateway.domain.models import Status

STATUSES = tuple(s.value for s in Status)
_ONE_STATUS = "|".join(STATUSES)
_STATUS_LIST = explain_pattern(
    f"^({_ONE_STATUS})(,({_ONE_STATUS}))*$", f"must be one or more of {', '.join(STATUSES)}, comma-separated"
)
MESSAGE_ID_PATTERN = r"^msg_[0-9A-Z]{26}$"
Channel = Literal["sms", "voice", "push", "email", "webhook"]
Category = Literal["marketing", "transactional"]
StatusName = Literal[STATUSES]  # type: ignore[valid-type]
Iso = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "the same key and body within the retention period get the first answer again",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
}
MAX_BATCH_ITEMS = 1000

SMS_EXAMPLE = {
    "channel": "sms",
    "to": "+14155552671",
    "content": {"text": "Your code is 123456"},
    "category": "transactional",
}
JOB_EXAMPLES = {
    "sms": SMS_EXAMPLE,
    "voice": {"channel": "voice", "to": "+14155552671", "content": {"text": "Your code is 1 2 3 4 5 6"}},
    "push": {
        "channel": "push",
        "to": "fcm-device-token-0001",
        "content": {"title": "Your order shipped", "body": "It arrives on Friday"},
        "campaign": "orders",
    },
    "email": {
        "channel": "email",
        "to": "Ann Lee <ann@example.com>",
        "content": {"subject": "Your receipt", "text": "Thank you for your order."},
        "category": "transactional",
    },
    "webhook": {"channel": "webhook", "to": "https://example.com/hooks/orders", "content": {"payload": {"order": 42}}},
}


class TemplateUsed(Reply):
    name: str
    version: int
    locale: str | None = Field(description="the locale variant used; null: the base bodies")


class TemplatePinned(TemplateUsed):
    params: dict[str, Any]


class AcceptedMessage(Reply):
    id: Annotated[str, StringConstraints(pattern=MESSAGE_ID_PATTERN)]
    status: Literal["queued", "held_out"] = Field(description="held_out: in the experiment's holdout, never sent")
    channel: Channel
    to: str
    category: Category
    user_id: str | None
    campaign: str | None
    variant: str | None
    send_at: Iso | None
    expires_at: Iso | None
    idempotency_key: str | None
    created_at: Iso
    template: TemplateUsed | None = Field(None, description="the template version a templated job was rendered from")


class Message(Reply):
    id: Annotated[str, StringConstraints(pattern=MESSAGE_ID_PATTERN)]
    status: StatusName
    reason: str | None
    channel: Channel
    to: str
    content: dict[str, Any] | None = Field(description="null once the retention policy purged it")
    category: Category
    user_id: str | None
    campaign: str | None
    variant: str | None
    send_at: Iso | None
    expires_at: Iso | None
    fallback: list[Channel]
    metadata: dict[str, Any]
    tz: str | None
    provider: str | None
    provider_message_id: str | None
    sender: str | None
    attempt_count: Annotated[int, Field(ge=0)]
    next_attempt_at: Iso | None
    error_code: str | None
    error_message: str | None
    idempotency_key: str | None
    created_at: Iso
    updated_at: Iso
    template: TemplatePinned | None = Field(
        None, description="the template version, locale and params a templated job was rendered from"
    )


class Attempt(Reply):
    number: int
    channel: Channel
    provider: str
    sender: str | None
    started_at: Iso | None
    finished_at: Iso | None
    outcome: str | None
    error_kind: str | None
    error_code: str | None
    error_message: str | None
    provider_message_id: str | None
    cost: float | None = Field(None, description="what the provider charges for it, by routing.prices")
    currency: str | None = Field(None, description="ISO 4217, the price table's currency")


class Receipt(Reply):
    provider: str
    provider_message_id: str | None
    status: str
    error_code: str | None
    occurred_at: Iso | None
    received_at: Iso | None


class Click(Reply):
    at: Iso
    url: str
    automated: bool


class Event(Reply):
    at: Iso
    type: str
    status: str | None
    reason: str | None
    detail: dict[str, Any]


class Link(Reply):
    url: str
    short_url: str


class MessageDetail(Message):
    attempts: list[Attempt]
    receipts: list[Receipt]
    clicks: list[Click]
    events: list[Event]
    links: list[Link]


class MessageList(Reply):
    data: list[Message]
    next_cursor: str | None


class BatchResult(Reply):
    index: int
    status: Literal[202, 409, 422]
    id: str | None = None
    replayed: bool | None = None
    problem: Problem | None = None


class BatchResponse(Reply):
    accepted: Annotated[int, Field(ge=0)]
    results: list[BatchResult]


class BatchRequest(Body):
    """Up to 1000 send jobs. Each item is judged on its own, so the envelope takes any value as an item
    and an item that is not a valid BatchItem gets its own 422 in `results` (the others go ahead)."""

    messages: Annotated[
        list[JsonValue],
        Field(
            min_length=1,
            max_length=MAX_BATCH_ITEMS,
            description="send jobs, each a BatchItem: a SendJob with an optional idempotency_key",
        ),
    ]


class MessageQuery(Query):
    campaign: Label | None = None
    status: Annotated[str, StringConstraints(pattern=_STATUS_LIST)] | None = Field(
        None, description=f"comma-separated, any of: {', '.join(STATUSES)}", examples=["failed,undelivered"]
    )
    to: Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=NO_CONTROL)] | None = Field(
        None, description="the address as the job gave it (a phone number in any E.164 spelling)"
    )
    user_id: Label | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    cursor: Annotated[str, StringConstraints(pattern=MESSAGE_ID_PATTERN)] | None = Field(
        None, description="next_cursor of the previous page: the page goes on after that message"
    )

    @property
    def statuses(self) -> tuple[str, ...]:
        return tuple(self.status.split(",")) if self.status else ()


ACCEPTED_HEADERS: dict[str, dict[str, Any]] = {
    "Location": {"schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "schema": {"enum": ["true"]},
        "description": "present when this is the answer to an earlier request with the same key",
    },
}
MESSAGE_ID = {"type": "string", "pattern": MESSAGE_ID_PATTERN, "examples": ["msg_01JD5ZQ8W1X2Y3Z4A5B6C7D8E9"]}

OPERATIONS = (
    Operation(
        "post",
        "/v1/messages",
        "createMessage",
        "Accept one send job",
        body=SEND_JOB,
        body_examples=JOB_EXAMPLES,
        headers=(IDEMPOTENCY_KEY,),
        answers={
            202: Answer("accepted and durable", AcceptedMessage, headers=ACCEPTED_HEADERS),
            **body_answers(),
            **auth_answers(),
            409: problem("a request with this Idempotency-Key is still being processed"),
            422: problem("an invalid job, content the policy blocks, or the key reused with a different body"),
        },
    ),
    Operation(
        "get",
        "/v1/messages",
        "listMessages",
        "The delivery log, newest first",
        query=MessageQuery,
        answers={200: Answer("a page of messages", MessageList), 400: problem("invalid query"), **auth_answers()},
    ),
    Operation(
        "post",
        "/v1/messages/batch",
        "createMessageBatch",
        f"Accept up to {MAX_BATCH_ITEMS} send jobs, each judged on its own",
        body=BatchRequest,
        body_examples={
            "two": {"messages": [{**SMS_EXAMPLE, "idempotency_key": "order-42-code"}, JOB_EXAMPLES["push"]]}
        },
        answers={
            200: Answer("one result per item, in order", BatchResponse),
            **body_answers(),
            **auth_answers(),
            422: problem(f"not a batch, or more than {MAX_BATCH_ITEMS} items (or the operator's api.max_batch_items)"),
        },
    ),
    Operation(
        "get",
        "/v1/messages/{id}",
        "getMessage",
        "A message with its attempts, receipts, clicks, links and events",
        path_params={"id": MESSAGE_ID},
        answers={200: Answer("the message", MessageDetail), **auth_answers(), 404: problem("no such message")},
    ),
)
# Named in the document for clients, though the batch envelope takes any object as an item.
NAMED = (BATCH_ITEM,)

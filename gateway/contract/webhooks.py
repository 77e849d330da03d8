"""Status callbacks: a tenant's subscriptions (`/v1/webhooks`), their secrets, their deliveries and
replay. Events are delivered per Standard Webhooks (docs/webhooks.md).

Whether a URL's host resolves to a public address is known only by resolving it: the handler
checks that (and, with `[webhooks] allow_http`, lets plain http through), the document says so in
the `webhook-url` format's description; everything else about the URL is in its pattern."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from gateway.contract.base import BLANK, LABEL_PATTERN, Body, Reply, Timestamp, absent, explain_pattern, fail
from gateway.contract.operations import Answer, Operation, Query, auth_answers, body_answers, problem
from gateway.domain.webhooks import ALL_EVENTS, EVENT_TYPES, DeliveryState, EndpointState, url_refusal

ID_PATTERN = r"^whk_[0-9A-Z]{26}$"
MAX_URL_CHARS = 2048
MAX_GRACE_SECONDS = 7 * 86_400
URL_PATTERN = explain_pattern(
    rf"^https?://[^{BLANK}\x00-\x1f\x7f/?#@]+([/?][^{BLANK}\x00-\x1f\x7f#]*)?$",
    "must be an https URL without credentials or a fragment",
)
Iso = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
EventType = Literal[(ALL_EVENTS, *EVENT_TYPES)]  # type: ignore[valid-type]


def _form(url: str) -> str:
    refusal = url_refusal(url, allow_http=True)
    if refusal is not None:
        raise fail(refusal)
    return url


WebhookUrl = Annotated[
    str,
    StringConstraints(max_length=MAX_URL_CHARS, pattern=URL_PATTERN),
    AfterValidator(_form),
    Field(
        description="where events are POSTed: an https URL (http only where [webhooks] allow_http = true), no"
        " credentials, no fragment, whose host resolves to public addresses only (loopback, link-local and"
        " private ranges only where [webhooks] allow_private_networks = true)",
        json_schema_extra={"format": "webhook-url"},
        examples=["https://campaigns.example.com/gateway-events"],
    ),
]


class NewWebhook(Body):
    url: WebhookUrl
    events: list[EventType] = Field(
        min_length=1,
        max_length=len(EVENT_TYPES) + 1,
        description="the event types to deliver; `*` for all",
        examples=[["message.delivered", "message.failed"]],
    )
    description: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=LABEL_PATTERN)] = absent()


class Rotation(Body):
    grace_seconds: Annotated[float, Field(ge=0, le=MAX_GRACE_SECONDS)] | None = Field(
        default_factory=lambda: None,
        description="how long the old secret keeps signing beside the new one"
        " (default: [webhooks] rotation_grace_seconds)",
    )


class Replay(Body):
    since: Timestamp = Field(description="events that happened at or after this time")
    include_delivered: bool = Field(
        False, description="also what the receiver acknowledged (it drops repeats by webhook-id)"
    )


class DeliveryQuery(Query):
    state: Literal[tuple(s.value for s in DeliveryState)] | None = Field(  # type: ignore[valid-type]
        None, description="only deliveries in this state (dead: the dead-letter list)"
    )
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: (
        Annotated[
            str, StringConstraints(pattern=explain_pattern(r"^[0-9]{1,18}$", "is not a cursor this API gave out"))
        ]
        | None
    ) = Field(None, description="next_cursor of the previous page")


class WebhookHealth(Reply):
    delivered: int = Field(description="attempts the receiver acknowledged")
    failed: int = Field(description="attempts that failed")
    success_rate: float | None = Field(description="delivered / (delivered + failed); null before any attempt")
    pending: int = Field(description="events waiting to be delivered")
    dead: int = Field(description="events on the dead-letter list")
    lag_seconds: float = Field(description="age of the oldest event still waiting (0 when none waits)")
    consecutive_failures: int


class Webhook(Reply):
    id: str
    url: str
    events: list[str]
    description: str | None = None
    state: Literal[tuple(s.value for s in EndpointState)]  # type: ignore[valid-type]
    paused_reason: str | None = Field(None, description="why the gateway paused it (resume with POST .../resume)")
    secret_rotated_until: Iso | None = Field(None, description="the old secret signs too until then")
    created_at: Iso
    health: WebhookHealth


class WebhookWithSecret(Webhook):
    secret: str = Field(description="whsec_<base64>: shown only in this answer; verify signatures with it")


class WebhookList(Reply):
    data: list[Webhook]


class TestResult(Reply):
    delivered: bool
    status_code: int | None = Field(description="the receiver's HTTP status; null when none came")
    error: str | None = None


class Delivery(Reply):
    webhook_id: str = Field(description="the webhook-id header: the same on every retry and replay")
    type: str
    message_id: str | None = None
    state: str
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: Iso | None = None
    delivered_at: Iso | None = None
    occurred_at: Iso


class DeliveryList(Reply):
    data: list[Delivery]
    next_cursor: str | None


class Replayed(Reply):
    replayed: int = Field(description="deliveries due again now")


ID = {"type": "string", "pattern": ID_PATTERN, "examples": ["whk_01J0000000000000000000000A"]}
NOT_FOUND = problem("no such subscription")
INVALID = problem("a field is invalid; each is named (e.g. /url for a private address)")
EXAMPLE = {"url": "https://campaigns.example.com/gateway-events", "events": ["message.delivered", "message.failed"]}


def _action(action: str, summary: str, body: Any = None, examples: dict[str, Any] | None = None) -> Operation:
    answers: dict[int, Answer] = {**auth_answers(), 404: NOT_FOUND}
    if body is not None:
        answers |= {**body_answers(), 422: INVALID}
    results = {
        "rotate-secret": Answer("the new secret, shown once", WebhookWithSecret),
        "test": Answer("what the receiver answered a webhook.test event", TestResult),
        "resume": Answer("active again; what waited is due now", Webhook),
        "replay": Answer("due again", Replayed),
    }
    answers[200] = results[action]
    return Operation(
        "post",
        f"/v1/webhooks/{{id}}/{action}",
        f"{action.replace('-s', 'S')}Webhook",
        summary,
        path_params={"id": ID},
        body=body,
        body_required=action == "replay",
        body_examples=examples or {},
        answers=answers,
    )


OPERATIONS = (
    Operation(
        "post",
        "/v1/webhooks",
        "createWebhook",
        "Subscribe a URL to events (admin scope); the answer holds its signing secret, shown once",
        body=NewWebhook,
        body_examples={"delivery": EXAMPLE, "all": {"url": "https://crm.example.com/hooks", "events": ["*"]}},
        answers={
            201: Answer("subscribed", WebhookWithSecret, headers={"Location": {"schema": {"type": "string"}}}),
            **body_answers(),
            **auth_answers(),
            409: problem("the tenant holds the most subscriptions allowed ([webhooks] max_endpoints_per_tenant)"),
            422: INVALID,
        },
    ),
    Operation(
        "get",
        "/v1/webhooks",
        "listWebhooks",
        "The tenant's subscriptions with their health",
        answers={200: Answer("the subscriptions", WebhookList), **auth_answers()},
    ),
    Operation(
        "get",
        "/v1/webhooks/{id}",
        "getWebhook",
        "One subscription with its health",
        path_params={"id": ID},
        answers={200: Answer("the subscription", Webhook), **auth_answers(), 404: NOT_FOUND},
    ),
    Operation(
        "delete",
        "/v1/webhooks/{id}",
        "deleteWebhook",
        "Unsubscribe (admin scope); what was not delivered yet is dropped",
        path_params={"id": ID},
        answers={204: Answer("removed"), **auth_answers(), 404: NOT_FOUND},
    ),
    Operation(
        "get",
        "/v1/webhooks/{id}/deliveries",
        "listWebhookDeliveries",
        "Deliveries, newest first: state, attempts, last error (state=dead: the dead-letter list)",
        path_params={"id": ID},
        query=DeliveryQuery,
        answers={
            200: Answer("a page of deliveries", DeliveryList),
            400: problem("invalid query"),
            **auth_answers(),
            404: NOT_FOUND,
        },
    ),
    _action(
        "rotate-secret",
        "A new signing secret (admin scope); the old one signs beside it for the grace period",
        Rotation,
        {"grace": {"grace_seconds": 3600}},
    ),
    _action("test", "Send a webhook.test event now and say what the receiver answered (admin scope)"),
    _action("resume", "Resume a paused subscription (admin scope)"),
    _action(
        "replay",
        "Send again what the receiver missed since a time (admin scope)",
        Replay,
        {"since": {"since": "2026-01-31T09:00:00+08:00"}},
    ),
)

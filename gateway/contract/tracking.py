"""The closed loop: tracked short links, conversion postbacks and the campaign report."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from gateway.contract.base import NO_NUL, Body, Reply, Timestamp, explain_pattern, fail
from gateway.contract.messages import MESSAGE_ID_PATTERN, Iso
from gateway.contract.operations import Answer, Operation, auth_answers, body_answers, problem
from gateway.domain.tracking import TOKEN_RE

TOKEN_PATTERN = explain_pattern(TOKEN_RE.pattern, "must be a click token: the 10 letters and digits after /c/")
ClickToken = Annotated[
    str,
    StringConstraints(pattern=TOKEN_PATTERN),
    Field(description="the token of the short link clicked (`/c/<token>`)", examples=["a1B2c3D4e5"]),
]
MessageId = Annotated[
    str,
    StringConstraints(
        pattern=explain_pattern(MESSAGE_ID_PATTERN, "must be a message id: msg_ and 26 capital letters and digits")
    ),
    Field(description="the message the conversion is credited to", examples=["msg_01JD5ZQ8W1X2Y3Z4A5B6C7D8E9"]),
]
EITHER = "give either click_token or message_id"
# Exactly one of the two is given (not null): what the validator on click_token checks.
_ONE_OF = [{"required": [name], "properties": {name: {"type": "string"}}} for name in ("click_token", "message_id")]


MAX_CONVERSION_VALUE = 1e12


class ConversionRequest(Body):
    """A conversion credited to the click that led to it, or to a message."""

    # Exactly one of the two is given (not null): what the validator on click_token checks.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["click_token"], "properties": {"click_token": {"type": "string"}}},
                {"required": ["message_id"], "properties": {"message_id": {"type": "string"}}},
            ],
        }
    )

    message_id: MessageId | None = None
    click_token: ClickToken | None = Field(None, validate_default=True)
    event: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL), Field(examples=["purchase"])]
    # Bounded so that a campaign's sum stays a number on every store (PostgreSQL's float sum overflows
    # to an error past 1.8e308); an amount in any currency fits.
    value: float | None = Field(
        None,
        ge=-MAX_CONVERSION_VALUE,
        le=MAX_CONVERSION_VALUE,
        description="e.g. the order's amount (negative for a refund), at most 1e12 either way; summed in the"
        " campaign report",
    )
    occurred_at: Timestamp | None = Field(None, description="default: when the postback arrives")
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)] | None = Field(
        None,
        description="your id of the event: the same event_id again is the same conversion (default: the "
        "message or token, event and occurred_at)",
    )

    @field_validator("click_token")
    @classmethod
    def _one_of_two(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "message_id" not in info.data:
            return value  # message_id itself is refused
        if (value is None) == (info.data["message_id"] is None):
            raise fail(EITHER)
        return value


class ClaimRequest(Body):
    """A claim token as the landing page received it (the `claim` query parameter)."""

    token: Annotated[
        str,
        StringConstraints(
            min_length=1,
            max_length=1024,
            pattern=explain_pattern(r"^[A-Za-z0-9_.-]+$", "must be a claim token: letters, digits, _ - and a dot"),
        ),
        Field(examples=["bXNnXzAxSkQ1WlE4VzFYMlkzWjRBNUI2QzdEOEU5CjE3OTY0Nzk5OTkKc3ByaW5n.pJbq3kQ7bS0cUu1YvK8T2w"]),
    ]


class ClaimAnswer(Reply):
    result: Literal["valid", "expired", "forged", "claimed"] = Field(
        description="valid: genuine, in time, claimed now; expired; forged (not ours, altered, truncated or another"
        " tenant's); claimed: claimed before (a replay, refused and counted)"
    )
    message_id: str | None = Field(None, description="the message the token was sent with (not for forged)")
    campaign: str | None = Field(None, description="its campaign (not for forged)")


class Conversion(Reply):
    event_id: str
    message_id: str | None = Field(description="null for a link shared by a whole variant (per_campaign links)")
    click_token: str | None
    event: str
    value: float | None
    occurred_at: Iso


TOKEN: dict[str, Any] = {"type": "string", "pattern": TOKEN_PATTERN, "examples": ["a1B2c3D4e5"]}

OPERATIONS = (
    Operation(
        "get",
        "/c/{token}",
        "click",
        "A tracked short link: records the click, 302 to the destination fixed at send time",
        path_params={"token": TOKEN},
        auth=False,
        answers={
            302: Answer(
                "to the registered destination (with utm_campaign and utm_content when links.append_utm is on)",
                headers={
                    "Location": {"schema": {"type": "string", "format": "uri"}},
                    "Cache-Control": {"schema": {"const": "no-store"}},
                    "Referrer-Policy": {"schema": {"const": "no-referrer"}},
                },
            ),
            404: problem("an unknown or tampered token; nothing recorded"),
            429: problem(
                "over links.clicks_per_ip_per_second from this client IP; nothing recorded",
                {"Retry-After": {"schema": {"type": "integer"}}},
            ),
            503: problem("the database is unavailable; retry after the Retry-After seconds"),
        },
    ),
    Operation(
        "post",
        "/v1/conversions",
        "recordConversion",
        "A conversion credited to a click or a message; the same event_id is recorded once",
        body=ConversionRequest,
        body_examples={
            "after_a_click": {"click_token": "a1B2c3D4e5", "event": "purchase", "value": 42.5},
            "for_a_message": {
                "message_id": "msg_01JD5ZQ8W1X2Y3Z4A5B6C7D8E9",
                "event": "signup",
                "occurred_at": "2026-01-31T09:00:00+08:00",
                "event_id": "order-1001",
            },
        },
        answers={
            200: Answer("already recorded (the same event_id): the first record", Conversion),
            201: Answer("recorded", Conversion),
            **body_answers(),
            **auth_answers(),
            404: problem("no such click_token or message_id for this tenant"),
            422: problem("an invalid field"),
        },
    ),
    Operation(
        "post",
        "/v1/claims/verify",
        "verifyClaim",
        "Verify a one-time claim token from a landing page's back end; the first valid verify claims it",
        body=ClaimRequest,
        body_examples={
            "from_the_landing_page": {"token": "bXNnXzAxSkQ1WlE4VzFYMlkzWjRBNUI2QzdEOEU5.pJbq3kQ7bS0cUu1YvK8T2w"}
        },
        answers={
            200: Answer("what the token is; claimed once, atomically across processes", ClaimAnswer),
            **body_answers(),
            **auth_answers(),
            422: problem("not a token at all (empty, too long, characters no token has)"),
        },
    ),
)

"""Recipients: a person's addresses per channel, time zone, locale, attributes and preferences.

Addresses are judged as a send job's `to` is on their channel (the same PhoneNumber, Mailbox and
DeviceToken types), so what a profile holds is what a job could send to. An e-mail address may carry a
display name (`张三 <zhang@example.cn>`) and be internationalised (RFC 6532, IDNA): the bare address is
stored in the form jobs and suppressions match on, the display name beside it (`email_name`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from gateway.contract.base import NO_NUL, Body, Reply, Timestamp, absent, explain_pattern, json_size
from gateway.contract.jobs import HTTPS_URL, DeviceToken, Mailbox, PhoneNumber, TimeZone
from gateway.contract.operations import Answer, Operation, Query, auth_answers, body_answers, problem

MAX_PUSH_TOKENS = 20
MAX_ATTRIBUTES = 50
NDJSON = "application/x-ndjson"
CSV = "text/csv"
Iso = Annotated[str, Field(json_schema_extra={"format": "date-time"})]

# A user_id as a path segment: a job's user_id (1-128 characters, no control characters) without "/",
# and not "." or "..", which URLs resolve away.
USER_ID_PATTERN = explain_pattern(
    r"^([^\x00-\x1f/.][^\x00-\x1f/]{0,127}|\.[^\x00-\x1f/.][^\x00-\x1f/]{0,126}|\.\.[^\x00-\x1f/]{1,126})$",
    "must be 1-128 characters, no control characters or /, not . or ..",
)
UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN), Field(examples=["u-1001"])]
USER_ID_PARAM = {"type": "string", "pattern": USER_ID_PATTERN, "examples": ["u-1001"]}
Locale = Annotated[
    str,
    StringConstraints(
        pattern=explain_pattern(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$", "must be a BCP 47 language tag, e.g. zh-CN")
    ),
    Field(description="a BCP 47 language tag", examples=["zh-CN"]),
]
WebhookUrl = Annotated[
    str, StringConstraints(max_length=2048, pattern=HTTPS_URL), Field(examples=["https://example.com/hook"])
]
AttributeName = Annotated[
    str,
    StringConstraints(
        pattern=explain_pattern(r"^[A-Za-z0-9_.-]{1,64}$", "must be 1-64 letters, digits, _ . or -"),
    ),
]
AttributeValue = Annotated[str, StringConstraints(max_length=256, pattern=NO_NUL)] | bool | int | float
Attributes = Annotated[
    dict[AttributeName, AttributeValue],
    Field(
        max_length=MAX_ATTRIBUTES,
        description=f"up to {MAX_ATTRIBUTES} named values (strings up to 256 characters, numbers, true/false) "
        "to filter recipients by",
        examples=[{"tier": "gold"}],
    ),
    json_size(8192),
]
Platform = Literal["android", "ios", "web", "huawei"]


class PushTokenBody(Body):
    token: DeviceToken
    platform: Platform = Field(description="refused when no configured push provider serves the platform")
    last_seen_at: Timestamp | None = Field(
        default_factory=lambda: None,
        description="when the app last reported this token; the most recent token is used first",
    )


PushTokens = Annotated[list[PushTokenBody], Field(max_length=MAX_PUSH_TOKENS)]


class RecipientBody(Body):
    """A whole profile (PUT): fields left out are cleared."""

    phone: PhoneNumber = absent()
    email: Mailbox = absent()
    push_tokens: PushTokens = Field(default_factory=list)
    webhook_url: WebhookUrl = absent()
    tz: TimeZone = absent()
    locale: Locale = absent()
    attributes: Attributes = Field(default_factory=dict)


class RecipientPatch(Body):
    """Some fields of a profile (PATCH): given fields replace, null clears, absent ones stay; attributes
    are merged key by key (a null value removes the key)."""

    phone: PhoneNumber | None = absent()
    email: Mailbox | None = absent()
    push_tokens: PushTokens | None = absent()
    webhook_url: WebhookUrl | None = absent()
    tz: TimeZone | None = absent()
    locale: Locale | None = absent()
    attributes: (
        Annotated[
            dict[AttributeName, AttributeValue | None],
            Field(max_length=MAX_ATTRIBUTES, description="merged into the profile's; null removes a key"),
            json_size(8192),
        ]
        | None
    ) = absent()


class ImportLine(RecipientBody):
    """One line of a bulk import: the profile and whose it is."""

    user_id: UserId


class Switches(Body):
    """channel -> wanted; channels left out keep their current setting."""

    sms: bool = absent()
    voice: bool = absent()
    push: bool = absent()
    email: bool = absent()
    webhook: bool = absent()


class PreferencesBody(Body):
    """category -> channel -> on/off. Only the job's own category counts: turning marketing off leaves
    transactional messages (codes, receipts) flowing."""

    marketing: Switches = absent()
    transactional: Switches = absent()


class PushTokenReply(Reply):
    token: str
    platform: str
    last_seen_at: Iso | None


class Recipient(Reply):
    user_id: str
    phone: str | None
    email: str | None
    email_name: str | None = Field(description="the display name the e-mail address came with")
    push_tokens: list[PushTokenReply]
    webhook_url: str | None
    tz: str | None
    locale: str | None
    attributes: dict[str, Any]
    created_at: Iso
    updated_at: Iso


class RecipientList(Reply):
    data: list[Recipient]
    next_cursor: str | None


class Preferences(Reply):
    """What the person said, and what applies (their word over the tenant's defaults)."""

    user_id: str
    preferences: dict[str, dict[str, bool]]
    effective: dict[str, dict[str, bool]]


class RecipientQuery(Query):
    sleeping: bool | None = Field(None, description="true: only recipients the sleeping policy leaves alone")
    has_channel: Literal["sms", "voice", "push", "email", "webhook"] | None = Field(
        None, description="only recipients with an address this channel can use"
    )
    attribute: (
        Annotated[
            str,
            StringConstraints(
                pattern=explain_pattern(r"^[A-Za-z0-9_.-]{1,64}:[^\x00]{0,256}$", "must be name:value, e.g. tier:gold")
            ),
        ]
        | None
    ) = Field(None, description="name:value, e.g. tier:gold (numbers and true/false as JSON writes them)")
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: UserId | None = Field(None, description="next_cursor of the previous page")


class ImportResult(Reply):
    line: int = Field(description="1-based; a CSV's header is line 1")
    user_id: str | None
    result: Literal["created", "updated", "invalid"]
    errors: list[dict[str, str]] = Field(default_factory=list)


PATH = "/v1/recipients/{user_id}"
NOT_FOUND = problem("no recipient with this user_id")
INVALID = problem("a field is invalid (each is named), or a push platform no configured provider serves")
EXAMPLE = {
    "phone": "+8613812345678",
    "email": "li@example.com",
    "push_tokens": [{"token": "fcm-token-0001", "platform": "android"}],
    "tz": "Asia/Shanghai",
    "locale": "zh-CN",
    "attributes": {"tier": "gold"},
}
ONE = {"user_id": USER_ID_PARAM}

OPERATIONS = (
    Operation(
        "put",
        PATH,
        "putRecipient",
        "Create or replace a recipient's profile",
        path_params=ONE,
        body=RecipientBody,
        body_examples={"profile": EXAMPLE},
        answers={
            200: Answer("replaced", Recipient),
            201: Answer("created", Recipient),
            **body_answers(),
            **auth_answers(),
            404: problem("a user_id no recipient can have (a control character, /, . or ..)"),
            422: INVALID,
        },
    ),
    Operation(
        "patch",
        PATH,
        "patchRecipient",
        "Change some fields of a recipient's profile",
        path_params=ONE,
        body=RecipientPatch,
        body_examples={"moved": {"tz": "Europe/Berlin", "attributes": {"tier": None}}},
        answers={200: Answer("changed", Recipient), **body_answers(), **auth_answers(), 404: NOT_FOUND, 422: INVALID},
    ),
    Operation(
        "get",
        PATH,
        "getRecipient",
        "A recipient's profile",
        path_params=ONE,
        answers={200: Answer("the profile", Recipient), **auth_answers(), 404: NOT_FOUND},
    ),
    Operation(
        "delete",
        PATH,
        "eraseRecipient",
        "Erase a person: profile and preferences deleted, their addresses masked in messages, events and "
        "suppressions (audited)",
        path_params=ONE,
        answers={204: Answer("erased"), **auth_answers(), 404: NOT_FOUND},
    ),
    Operation(
        "get",
        "/v1/recipients",
        "listRecipients",
        "Recipients by user_id, filtered",
        query=RecipientQuery,
        answers={200: Answer("a page of recipients", RecipientList), 400: problem("invalid query"), **auth_answers()},
    ),
    Operation(
        "post",
        "/v1/recipients",
        "importRecipients",
        "Create or replace many profiles: NDJSON (one ImportLine a line) or CSV (header: user_id, phone, email, "
        "push_token, push_platform, webhook_url, tz, locale, attr.<name>...); answered line by line as NDJSON "
        "(a CSV header naming an unknown column is line 1's error, and nothing further is read)",
        body={
            "type": "string",
            "minLength": 1,
            "description": "one ImportLine per line",
            "examples": ['{"user_id": "u-1", "phone": "+8613812345678"}\n'],
        },
        body_content_type=NDJSON,
        body_also={
            CSV: {
                "type": "string",
                "minLength": 1,
                "examples": ["user_id,phone,tz\nu-1,+8613812345678,Asia/Shanghai\n"],
            }
        },
        body_examples={"ndjson": '{"user_id": "u-1", "phone": "+8613812345678"}\n'},
        answers={
            200: Answer("each line's result, in order, as it is committed", ImportResult, NDJSON),
            **body_answers(),
            **auth_answers(),
        },
    ),
    Operation(
        "put",
        PATH + "/preferences",
        "putPreferences",
        "Set a recipient's preferences (category -> channel -> on/off); channels left out keep their setting",
        path_params=ONE,
        body=PreferencesBody,
        body_examples={"no-marketing-sms": {"marketing": {"sms": False}}},
        answers={
            200: Answer("the preferences", Preferences),
            **body_answers(),
            **auth_answers(),
            404: NOT_FOUND,
            422: problem("an unknown category or channel, named"),
        },
    ),
    Operation(
        "get",
        PATH + "/preferences",
        "getPreferences",
        "A recipient's preferences and what applies with the tenant's defaults",
        path_params=ONE,
        answers={200: Answer("the preferences", Preferences), **auth_answers(), 404: NOT_FOUND},
    ),
)

"""The suppression list (opt-outs): add a recipient, list them, lift one.

An address is judged as a send job's `to` is on the channel the body names; with no channel, on the
channel its form shows (`+`: a phone number, `@`: an e-mail address, `://`: a URL). So a suppression
is one model per channel, and one for "no channel"; the handler picks it as the document's union does."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, TypeAdapter

from gateway.contract.base import (
    LABEL_PATTERN,
    SAYS_SOMETHING,
    Body,
    Label,
    Reply,
    absent,
    explain_pattern,
    fail,
    judge,
)
from gateway.contract.jobs import ANY_HTTP_URL, CHANNELS, HTTPS_URL, DeviceToken, Mailbox, PhoneNumber
from gateway.contract.operations import Answer, Named, Operation, Query, auth_answers, body_answers, problem
from gateway.domain.jobs import FieldError, JobLimits, suppression_address
from gateway.domain.models import Channel

MAX_ADDRESS_CHARS = 2048  # the suppressions table's column
GIVE_ONE = "give an address or a user_id (or both)"
Iso = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


def _by_form(limits: JobLimits) -> Any:
    def check(raw: str) -> str:
        value, refusal = suppression_address(raw, None, limits)
        if value is None:
            raise fail(refusal or "is not an address")
        return value

    return Annotated[
        str,
        StringConstraints(min_length=1, max_length=MAX_ADDRESS_CHARS),
        AfterValidator(check),
        Field(
            description="a phone number in E.164 form (starting with +), an e-mail address or an https URL: "
            "judged as a send job's `to` on the channel its form shows",
            json_schema_extra={"format": "recipient-address"},
            examples=["+8613812345678"],
        ),
    ]


Reason = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=LABEL_PATTERN)]
Url = Annotated[
    str,
    StringConstraints(max_length=MAX_ADDRESS_CHARS, pattern=HTTPS_URL),
    Field(examples=["https://example.com/hook"]),
]
PlainHttpUrl = Annotated[str, StringConstraints(max_length=MAX_ADDRESS_CHARS, pattern=ANY_HTTP_URL)]
StoredDeviceToken = Annotated[DeviceToken, StringConstraints(max_length=MAX_ADDRESS_CHARS)]


class _Suppression(Body):
    """address, user_id or both (each is suppressed), each judged as a send job's `to` and `user_id`."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["address"]}, {"required": ["user_id"]}]})

    address: str = absent()
    user_id: Label = absent()
    reason: Reason = Field("opt_out", examples=["complaint"])
    channel_value: ClassVar[Channel | None] = None

    def recipients(self, limits: JobLimits) -> list[tuple[str, str]]:
        """(kind, value) of each recipient named, in the form jobs store it (so they match)."""
        found: list[tuple[str, str]] = []
        if self.address is not None:
            value, _ = suppression_address(self.address, self.channel_value, limits)
            found.append(("address", value or self.address))
        if self.user_id is not None:
            found.append(("user_id", self.user_id))
        return found


class SuppressionByForm(_Suppression):
    address: _by_form(JobLimits()) = absent()  # type: ignore[valid-type]


class SuppressionByFormPlainHttp(_Suppression):
    address: _by_form(JobLimits(allow_http_webhooks=True)) = absent()  # type: ignore[valid-type]


class PhoneSuppression(_Suppression):
    channel_value = Channel.SMS
    channel: Literal["sms", "voice"]
    address: PhoneNumber = absent()


class EmailSuppression(_Suppression):
    channel_value = Channel.EMAIL
    channel: Literal["email"]
    address: Mailbox = absent()


class PushSuppression(_Suppression):
    channel_value = Channel.PUSH
    channel: Literal["push"]
    address: StoredDeviceToken = absent()


class WebhookSuppression(_Suppression):
    channel_value = Channel.WEBHOOK
    channel: Literal["webhook"]
    address: Url = absent()


class PlainHttpWebhookSuppression(WebhookSuppression):
    address: PlainHttpUrl = absent()


_BY_CHANNEL: dict[str, type[_Suppression]] = {
    "sms": PhoneSuppression,
    "voice": PhoneSuppression,
    "email": EmailSuppression,
    "push": PushSuppression,
    "webhook": WebhookSuppression,
}
SUPPRESSION_REQUEST = Named(
    "SuppressionRequest",
    TypeAdapter(SuppressionByForm | PhoneSuppression | EmailSuppression | PushSuppression | WebhookSuppression),
)


def _by_form_model(limits: JobLimits) -> type[_Suppression]:
    return SuppressionByFormPlainHttp if limits.allow_http_webhooks else SuppressionByForm


def _channel_model(channel: Any, limits: JobLimits) -> type[_Suppression] | None:
    model = _BY_CHANNEL.get(channel) if isinstance(channel, str) else None
    if model is WebhookSuppression and limits.allow_http_webhooks:
        return PlainHttpWebhookSuppression
    return model


def judge_suppression(body: Any, limits: JobLimits) -> tuple[_Suppression | None, list[FieldError]]:
    """A suppression to add, every problem named; an unknown channel is named and the address judged by its form."""
    if not isinstance(body, dict):
        return None, [FieldError("/", "must be a JSON object")]
    model = _channel_model(body["channel"], limits) if "channel" in body else _by_form_model(limits)
    errors: list[FieldError] = []
    if model is None:
        errors.append(FieldError("/channel", f"must be one of {', '.join(CHANNELS)}"))
        model = _by_form_model(limits)
        body = {k: v for k, v in body.items() if k != "channel"}
    judged, found = judge(model, body)
    errors += found
    if body.get("address") is None and body.get("user_id") is None:
        errors.append(FieldError("/address", GIVE_ONE))
    return (None, errors) if errors else (judged, [])


# A name to look up: surrounding white space is dropped, so it must hold something else.
Lookup = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ADDRESS_CHARS, pattern=SAYS_SOMETHING)]


class SuppressionQuery(Query):
    address: Lookup | None = Field(None, description="this address only (in any form a job's `to` takes)")
    user_id: Lookup | None = Field(None, description="this user only (when no address is given)")
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: (
        Annotated[
            str, StringConstraints(pattern=explain_pattern(r"^[0-9]{1,18}$", "is not a cursor this API gave out"))
        ]
        | None
    ) = Field(None, description="next_cursor of the previous page")


class LiftQuery(Query):
    """Whom to take off the list: an address, a user_id or both."""

    as_one_object = "recipient"

    address: Lookup | None = Field(None, description="lift this address")
    user_id: Lookup | None = Field(None, description="lift this user_id")


class Suppression(Reply):
    address: str | None = Field(None, description="present when an address is suppressed")
    user_id: str | None = Field(None, description="present when a user is suppressed")
    reason: str
    source: str = Field(description="api, inbound:<provider> (a reply) or provider:<name>")
    scope: Literal["all", "marketing"] = Field(
        description="the categories it stops: all (the API's), or marketing (a reply's opt-out: transactional "
        "messages still go), for this tenant"
    )
    pool: str | None = Field(
        description="the sender pool whose number an opt-out reply answered, when the opt-out reached that "
        "pool's other tenants ([tenants] opt_out_scope = tenant_and_pool)"
    )
    created_at: Iso


class SuppressionList(Reply):
    data: list[Suppression]
    next_cursor: str | None


OPERATIONS = (
    Operation(
        "get",
        "/v1/suppressions",
        "listSuppressions",
        "The suppression list (opt-outs), newest first",
        query=SuppressionQuery,
        answers={
            200: Answer("a page of suppressions", SuppressionList),
            400: problem("invalid query"),
            **auth_answers(),
        },
    ),
    Operation(
        "post",
        "/v1/suppressions",
        "addSuppression",
        "Suppress a recipient: an address, a user_id, or both at once",
        body=SUPPRESSION_REQUEST,
        body_examples={
            "phone": {"address": "+8613812345678", "reason": "complaint"},
            "both": {"address": "ann@example.com", "user_id": "u-42"},
            "device": {"address": "fcm-device-token-0001", "channel": "push"},
        },
        answers={
            200: Answer("on the list already", Suppression),
            201: Answer("added to the list", Suppression),
            **body_answers(),
            **auth_answers(),
            422: problem("an address or user_id a send job could not have; an unknown field"),
        },
    ),
    Operation(
        "delete",
        "/v1/suppressions",
        "deleteSuppression",
        "Lift a suppression (?address=, ?user_id=, or both)",
        query=LiftQuery,
        answers={
            204: Answer("lifted"),
            400: problem("no recipient named, or an invalid query"),
            **auth_answers(),
            404: problem("not on the list"),
        },
    ),
)

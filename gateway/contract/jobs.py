"""The send job as the API takes it: one model per channel (the channel decides what `to`, `content`
and `fallback` may be), validated into the domain's SendJob."""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StringConstraints, TypeAdapter, WithJsonSchema

from gateway.contract.base import (
    BLANK,
    NO_NUL,
    Body,
    ExactInteger,
    JsonObject,
    JsonString,
    JsonValue,
    Label,
    Timestamp,
    absent,
    explain_pattern,
    fail,
    json_size,
    judge,
    text,
)
from gateway.contract.operations import Named
from gateway.domain.email_address import parse_mailbox
from gateway.domain.jobs import (
    ADDRESS_KINDS,
    RECEIVER_HOST,
    FieldError,
    JobLimits,
    normalise_phone,
    reachable_channels,
    timing_problems,
    valid_zone,
)
from gateway.domain.models import Category, Channel, SendJob, TemplateRef

LIMITS = JobLimits()
_CATEGORIES = {c.value: c for c in Category}
CHANNELS = tuple(c.value for c in Channel)


def _phone(raw: str) -> str:
    number = normalise_phone(raw)
    if number is None:
        raise fail("must be a valid phone number in E.164 form, e.g. +8613812345678")
    return number


def _mailbox(raw: str) -> str:
    if parse_mailbox(raw) is None:
        raise fail("must be an e-mail address, e.g. ann@example.com or 张三 <zhang@example.cn>")
    return raw


def _zone(raw: str) -> str:
    if not valid_zone(raw):
        raise fail("must be an IANA time zone, e.g. Asia/Shanghai")
    return raw


# `format` names a check JSON Schema has no keyword for; the description says what it is.
PhoneNumber = Annotated[
    str,
    StringConstraints(min_length=1, max_length=20),
    AfterValidator(_phone),
    Field(
        description="a valid phone number in E.164 form (spaces and dashes are tolerated)",
        json_schema_extra={"format": "phone-e164"},
        examples=["+8613812345678"],
    ),
]
Mailbox = Annotated[
    str,
    StringConstraints(min_length=3, max_length=254 + 200),
    AfterValidator(_mailbox),
    Field(
        description="an e-mail address, optionally with a display name; internationalised addresses allowed: "
        "张三 <zhang@例子.中国>",
        json_schema_extra={"format": "mailbox"},
        examples=["ann@example.com"],
    ),
]
DeviceToken = Annotated[
    str,
    StringConstraints(
        pattern=explain_pattern(r"^[\x21-\x7e]{8,4096}$", "must be a device token of 8-4096 printable characters")
    ),
    Field(description="a push device token: 8-4096 printable ASCII characters", examples=["fcm-token-0001"]),
]
# A receiver's URL: its host a DNS name or an IPv4 address (what a client can connect to; a host
# such as "Þ]x" was taken and broke every client that read the job back), then anything printable.
_URL_AFTER_SCHEME = rf"(?:[^{BLANK}\x00-\x1f\x7f/?#@\[\]]*@)?{RECEIVER_HOST}(?:[/?#][^{BLANK}\x00-\x1f\x7f]*)?"
HTTPS_URL = explain_pattern(
    rf"^https://{_URL_AFTER_SCHEME}$", "must be an https URL whose host is a DNS name or an IPv4 address"
)
ANY_HTTP_URL = explain_pattern(
    rf"^https?://{_URL_AFTER_SCHEME}$", "must be an http or https URL whose host is a DNS name or an IPv4 address"
)
TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_zone),
    Field(
        description="the recipient's IANA time zone; default: from the number",
        json_schema_extra={"format": "iana-time-zone"},
        examples=["Asia/Shanghai"],
    ),
]


def whole(value: Any) -> Any:
    """JSON has one number type: 3.0 is the integer 3 to JSON Schema, so to the API too."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _with_article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _fallback(channel: Channel) -> Any:
    """The channels a job on `channel` may fall back to, each once. Whether each can take the job's
    address is judged with the whole job (`address_problems`): a job for a `user_id` without `to`
    takes each channel's address from the recipient's profile."""
    others = [c for c in CHANNELS if c != channel.value]

    def check(value: str) -> str:
        if value == channel.value:
            raise fail("repeats a channel already tried")
        if value not in others:
            raise fail(f"must be one of {', '.join(CHANNELS)}")
        return value

    item = Annotated[str, AfterValidator(check)]
    schema: dict[str, Any] = {
        "type": "array",
        "items": {"enum": others},
        "maxItems": len(others),
        "uniqueItems": True,
        "description": "channels to try next, in order; with `to`, only those that take that address (sms and "
        "voice share a phone number); with `content`, only those that read it (sms and voice); for a `user_id` "
        "without `to` and a template, any channel, each with the profile's address and the template's body",
    }
    return Annotated[list[item], AfterValidator(_once_each), WithJsonSchema(schema)]


def fallback_problems(body: dict[str, Any], channel: Channel, listed: bool) -> list[tuple[str, str]]:
    """(field, message) for each fallback channel the job could never use: with `to`, one that cannot
    take that address; with `content` (no template), one that cannot send that content. Judged on the
    body as given, so these come with every other problem of the job."""
    fallback = body.get("fallback")
    if not isinstance(fallback, list):
        return []
    base, shift = ("/channels/", 1) if listed else ("/fallback/", 0)
    reachable = reachable_channels(channel)
    problems = []
    for index, other in enumerate(fallback):
        if other not in CHANNELS or other == channel.value:
            continue  # refused by the item's own check
        if body.get("to") is not None and other not in reachable:
            kind = _with_article(ADDRESS_KINDS[channel])
            message = f"{other} cannot reach {kind}; the channels that can: {', '.join(reachable)}"
            problems.append((f"{base}{index + shift}", message))
        elif body.get("template") is None and other not in _SAME_CONTENT.get(channel.value, ()):
            problems.append((f"{base}{index + shift}", f"{other} cannot send {channel} content: give a template"))
    return problems


def _once_each(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise fail("repeats a channel already tried")
    return values


def _channels(channel: Channel) -> Any:
    """`channels`: [channel, *fallback] as one list, starting with the job's `channel`."""
    schema: dict[str, Any] = {
        "type": "array",
        "items": {"enum": list(CHANNELS)},
        "prefixItems": [{"const": channel.value}],
        "minItems": 1,
        "maxItems": len(CHANNELS),
        "uniqueItems": True,
        "description": "the channels to try, in order: channels = [channel, *fallback] (give `channels` or "
        "`fallback`, not both); `channel` may be left out, it is channels[0]",
        "examples": [[channel.value]],
    }
    item = Literal["sms", "voice", "push", "email", "webhook"]
    return Annotated[list[item], Field(min_length=1), AfterValidator(_once_each), WithJsonSchema(schema)]


# Channels that read the same content: a job given `content` (no template) falls back only among them.
_SAME_CONTENT = {"sms": {"sms", "voice"}, "voice": {"sms", "voice"}}


def _tried_only_on(channel: Channel, usable: Collection[str]) -> dict[str, Any]:
    """`fallback` and `channels` of a job on `channel` kept to the `usable` channels."""
    others = [c for c in CHANNELS if c in usable and c != channel.value]
    fallback: dict[str, Any] = {"items": {"enum": others}} if others else {"maxItems": 0}
    listed = {"items": {"enum": [channel.value, *others]}, "maxItems": 1 + len(others)}
    return {"properties": {"fallback": fallback, "channels": listed}}


def _fallback_rules(channel: Channel) -> list[dict[str, Any]]:
    """What `fallback_problems` refuses, said in the schema: with `to`, only the channels that take that
    address; with `content` (no template), only the channels that read that content."""
    return [
        {"if": {"required": ["to"]}, "then": _tried_only_on(channel, reachable_channels(channel))},
        {
            "if": {"not": {"required": ["template"]}},
            "then": _tried_only_on(channel, _SAME_CONTENT.get(channel.value, ())),
        },
    ]


def _job_schema(schema: dict[str, Any], model: type[Any]) -> None:
    schema.update(_CONTENT_OR_TEMPLATE)
    channel: Channel | None = getattr(model, "channel_value", None)
    if channel is not None:
        schema["allOf"] = _fallback_rules(channel)


TEMPLATE_NAME_PATTERN = explain_pattern(
    r"^[a-z0-9][a-z0-9_-]{0,63}$", "must be 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit"
)
TemplateName = Annotated[str, StringConstraints(pattern=TEMPLATE_NAME_PATTERN), Field(examples=["order_shipped"])]
VARIABLE_PATTERN = explain_pattern(
    r"^[a-z][a-z0-9_]{0,63}$", "must be 1-64 of a-z, 0-9 and '_', starting with a letter"
)
VariableName = Annotated[str, StringConstraints(pattern=VARIABLE_PATTERN)]
LOCALE_PATTERN = explain_pattern(
    r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8}){0,3}$", "must be a language tag such as zh-CN or en"
)
Locale = Annotated[str, StringConstraints(pattern=LOCALE_PATTERN), Field(examples=["en"])]
MAX_VARIABLES = 50
MAX_PARAM_CHARS = 1000
# No NUL, as in every string of a body (it is refused before validation: PostgreSQL cannot store it).
ParamValue = Annotated[str, StringConstraints(max_length=MAX_PARAM_CHARS, pattern=NO_NUL)] | ExactInteger | float | bool
TemplateParams = Annotated[
    dict[VariableName, ParamValue],
    Field(max_length=MAX_VARIABLES, description="the values of the template's declared variables"),
]
# A job gives `content`, or `template` (+ version, locale, params): never both, never neither.
_CONTENT_OR_TEMPLATE: dict[str, Any] = {
    "oneOf": [
        {
            "required": ["content"],
            "not": {"anyOf": [{"required": [name]} for name in ("template", "version", "locale", "params")]},
        },
        {"required": ["template"], "not": {"required": ["content"]}},
    ],
    "not": {"required": ["channels", "fallback"]},
    # `to`, or a `user_id` whose profile gives each channel's address.
    "anyOf": [{"required": ["to"]}, {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}}],
}

Metadata = Annotated[
    JsonObject,
    json_size(LIMITS.max_metadata_bytes),
    Field(description=f"a small JSON object kept with the message; at most {LIMITS.max_metadata_bytes} bytes"),
]


class _JobFields(Body):
    """What every job carries, whatever its channel."""

    model_config = ConfigDict(json_schema_extra=_job_schema)

    category: Literal["marketing", "transactional"] = Field(
        "marketing", description="transactional messages skip marketing caps and quiet hours"
    )
    user_id: Label | None = None
    campaign: Label | None = None
    variant: Label | None = Field(
        None,
        description='"auto": the arm of the campaign\'s experiment by a stable hash of the recipient (PUT /v1/campaigns'
        '/{campaign}), shown in the answer; "holdout": held out, recorded as held_out and never sent',
    )
    send_at: Timestamp | None = Field(None, description="not before this time", examples=["2031-01-31T09:00:00+08:00"])
    expires_at: Timestamp | None = Field(
        None,
        description="when the job is no longer worth sending; must be in the future and after send_at",
        examples=["2031-02-01T09:00:00+08:00"],
    )
    channel_order: Literal["listed", "cost"] = Field(
        "listed",
        description="cost: of `channel` and `fallback`, the channels that can reach the recipient are tried "
        "cheapest first by the operator's routing.costs (decided at accept; the message shows the order)",
    )
    metadata: Metadata | None = None
    tz: TimeZone | None = None
    template: TemplateName = absent()
    version: Annotated[
        int,
        Field(ge=1, le=2**31 - 1, description="the template's version; default: its latest"),
        BeforeValidator(whole),
    ] = absent()
    locale: Locale = absent()
    params: TemplateParams = absent()

    channel_value: ClassVar[Channel]

    def source_problems(self) -> list[tuple[str, str]]:
        """(field, message) when the job gives both content and a template, or neither."""
        given = {
            name for name in ("content", "template", "version", "locale", "params") if getattr(self, name) is not None
        }
        if "content" in given and "template" in given:
            return [("/template", "give content or a template, not both")]
        if "template" in given:
            return []
        if "content" not in given:
            return [("/content", "is required (or give a template)")]
        extra = sorted(given - {"content"})
        return [(f"/{extra[0]}", "is given only with a template")] if extra else []

    @property
    def listed(self) -> bool:
        """Whether the request named its channels as `channels` (refusals then point into that list)."""
        return getattr(self, "channels", None) is not None

    def address_problems(self) -> list[tuple[str, str]]:
        """(field, message): a job needs `to` or a `user_id`; `channels` given with `channel` must agree."""
        to: str | None = self.to  # type: ignore[attr-defined]
        if to is None and self.user_id is None:
            return [("/to", "is required (or give a user_id: the address then comes from the recipient's profile)")]
        channels: list[str] | None = self.channels  # type: ignore[attr-defined]
        if channels is not None and channels[0] != self.channel_value:
            return [("/channels/0", f"must be the job's channel, {self.channel_value}")]
        return []

    def template_ref(self) -> TemplateRef | None:
        name: str | None = getattr(self, "template", None)
        if name is None:
            return None
        return TemplateRef(name, getattr(self, "version", None), getattr(self, "locale", None), dict(self.params or {}))

    def to_send_job(self) -> SendJob:
        # The content's fields as given (a plain dict copy is several times cheaper than model_dump).
        given = self.content  # type: ignore[attr-defined]
        content = {k: v for k, v in given.__dict__.items() if v is not None} if given is not None else {}
        return SendJob(
            channel=self.channel_value,
            to=self.to or "",  # type: ignore[attr-defined]  # "": chosen from the profile at accept
            content=content,
            category=_CATEGORIES[self.category],
            user_id=self.user_id,
            campaign=self.campaign,
            variant=self.variant,
            send_at=self.send_at,
            expires_at=self.expires_at,
            fallback=tuple(map(Channel, self.fallback)),  # type: ignore[attr-defined]
            metadata=self.metadata or {},
            tz=self.tz,
            channel_order=self.channel_order,
            template=self.template_ref(),
        )


class SmsContent(Body):
    text: text(LIMITS.max_text_chars)  # type: ignore[valid-type]


class VoiceContent(Body):
    text: text(LIMITS.max_text_chars)  # type: ignore[valid-type]
    language: text(16, required=False) | None = Field(None, examples=["zh-CN"])  # type: ignore[valid-type]
    voice: text(64, required=False) | None = None  # type: ignore[valid-type]


class PushContent(Body):
    title: text(LIMITS.max_push_title_chars)  # type: ignore[valid-type]
    body: text(LIMITS.max_push_body_chars)  # type: ignore[valid-type]
    data: (
        Annotated[
            dict[JsonString, JsonString],
            json_size(4000),
            Field(description="string values handed to the app; at most 4000 bytes"),
        ]
        | None
    ) = None


class EmailContent(Body):
    subject: text(LIMITS.max_subject_chars, one_line=True)  # type: ignore[valid-type]
    text: text(LIMITS.max_email_body_chars)  # type: ignore[valid-type]
    html: text(LIMITS.max_email_body_chars, required=False) | None = None  # type: ignore[valid-type]


class WebhookContent(Body):
    payload: Annotated[
        JsonObject | list[JsonValue],
        json_size(LIMITS.max_payload_bytes),
        Field(description=f"the JSON posted to the receiver; at most {LIMITS.max_payload_bytes} bytes serialised"),
    ]


class SmsJob(_JobFields):
    channel_value = Channel.SMS
    channel: Literal["sms"]
    to: PhoneNumber = absent()
    content: SmsContent = absent()
    fallback: _fallback(Channel.SMS) = Field(default_factory=list)  # type: ignore[valid-type]
    channels: _channels(Channel.SMS) = absent()  # type: ignore[valid-type]


class VoiceJob(_JobFields):
    channel_value = Channel.VOICE
    channel: Literal["voice"]
    to: PhoneNumber = absent()
    content: VoiceContent = absent()
    fallback: _fallback(Channel.VOICE) = Field(default_factory=list)  # type: ignore[valid-type]
    channels: _channels(Channel.VOICE) = absent()  # type: ignore[valid-type]


class PushJob(_JobFields):
    channel_value = Channel.PUSH
    channel: Literal["push"]
    to: DeviceToken = absent()
    content: PushContent = absent()
    fallback: _fallback(Channel.PUSH) = Field(default_factory=list)  # type: ignore[valid-type]
    channels: _channels(Channel.PUSH) = absent()  # type: ignore[valid-type]


class EmailJob(_JobFields):
    channel_value = Channel.EMAIL
    channel: Literal["email"]
    to: Mailbox = absent()
    content: EmailContent = absent()
    fallback: _fallback(Channel.EMAIL) = Field(default_factory=list)  # type: ignore[valid-type]
    channels: _channels(Channel.EMAIL) = absent()  # type: ignore[valid-type]

    def to_send_job(self) -> SendJob:
        job = super().to_send_job()
        if not job.to:  # a recipient's job: the address comes from the profile at accept
            return job
        mailbox = parse_mailbox(job.to)
        assert mailbox is not None  # judged at validation
        content = {**job.content, "to_name": mailbox.display_name} if mailbox.display_name else job.content
        # `to_name` is kept with the content (and purged with it), so `to` stays the bare address.
        return SendJob(**{**_fields(job), "to": mailbox.address, "content": content})


class WebhookJob(_JobFields):
    channel_value = Channel.WEBHOOK
    channel: Literal["webhook"]
    to: Annotated[str, StringConstraints(max_length=2048, pattern=HTTPS_URL), Field(description="an https URL")] = (
        absent()
    )
    content: WebhookContent = absent()
    fallback: _fallback(Channel.WEBHOOK) = Field(default_factory=list)  # type: ignore[valid-type]
    channels: _channels(Channel.WEBHOOK) = absent()  # type: ignore[valid-type]


class PlainHttpWebhookJob(WebhookJob):
    """A webhook job where the operator allows plain http receivers (`api.allow_http_webhooks`)."""

    to: Annotated[
        str, StringConstraints(max_length=2048, pattern=ANY_HTTP_URL), Field(description="an http(s) URL")
    ] = absent()


def _fields(job: SendJob) -> dict[str, Any]:
    return {name: getattr(job, name) for name in SendJob.__dataclass_fields__}


IdempotencyKey = Annotated[
    str,
    StringConstraints(
        pattern=explain_pattern(r"^[\x21-\x7e]{1,255}$", "must be 1-255 printable ASCII characters"),
    ),
    Field(description="this item's idempotency key (the Idempotency-Key header of a single send)"),
]


class _BatchItem(Body):
    idempotency_key: IdempotencyKey | None = None


class SmsBatchItem(SmsJob, _BatchItem):
    pass


class VoiceBatchItem(VoiceJob, _BatchItem):
    pass


class PushBatchItem(PushJob, _BatchItem):
    pass


class EmailBatchItem(EmailJob, _BatchItem):
    pass


class WebhookBatchItem(WebhookJob, _BatchItem):
    pass


class PlainHttpWebhookBatchItem(PlainHttpWebhookJob, _BatchItem):
    pass


_SINGLE: dict[str, type[_JobFields]] = {"sms": SmsJob, "voice": VoiceJob, "push": PushJob, "email": EmailJob}
_BATCH: dict[str, type[_JobFields]] = {
    "sms": SmsBatchItem,
    "voice": VoiceBatchItem,
    "push": PushBatchItem,
    "email": EmailBatchItem,
}


@functools.cache
def job_models(allow_http_webhooks: bool, batch: bool) -> dict[str, type[_JobFields]]:
    if batch:
        return {**_BATCH, "webhook": PlainHttpWebhookBatchItem if allow_http_webhooks else WebhookBatchItem}
    return {**_SINGLE, "webhook": PlainHttpWebhookJob if allow_http_webhooks else WebhookJob}


def judge_job(
    body: Any, limits: JobLimits = LIMITS, prefix: str = "", *, now: float | None = None, batch: bool = False
) -> tuple[_JobFields | None, list[FieldError]]:
    """One send job judged: the job's model, or None with every problem found (not just the first).

    `now` is the time of the request: a job that would expire before it could be sent is refused."""
    if not isinstance(body, dict):
        return None, [FieldError(prefix or "/", "must be a JSON object")]
    if "channels" in body and "fallback" in body:
        return None, [FieldError(f"{prefix}/fallback", "give channels or fallback, not both")]
    listed = isinstance(body.get("channels"), list)
    if listed and not body["channels"] and "channel" not in body:
        return None, [FieldError(f"{prefix}/channels", "must name at least one channel")]
    if listed and body["channels"]:
        # `channels` means channel = channels[0], fallback = channels[1:].
        body = {"channel": body["channels"][0], **body, "fallback": body["channels"][1:]}
    channel = body.get("channel")
    model = job_models(limits.allow_http_webhooks, batch).get(channel) if isinstance(channel, str) else None
    if model is None:
        where = f"{prefix}/channels/0" if listed and body["channels"] else f"{prefix}/channel"
        message = "is required" if body.get("channel") is None else f"must be one of {', '.join(CHANNELS)}"
        return None, [FieldError(where, message)]
    judged, errors = judge(model, body, prefix)
    if listed:  # the fallback is the list's tail, judged there
        errors = [e for e in errors if not e.field.startswith(f"{prefix}/fallback")]
    errors += [FieldError(prefix + f, m) for f, m in fallback_problems(body, model.channel_value, listed)]
    if judged is None or errors:
        return None, errors
    problems = judged.source_problems() + judged.address_problems()
    problems += timing_problems(judged.send_at, judged.expires_at, now)
    errors = [FieldError(prefix + f, m) for f, m in problems]
    return (None, errors) if errors else (judged, [])


def validate_job(
    body: Any, limits: JobLimits = LIMITS, prefix: str = "", *, now: float | None = None
) -> tuple[SendJob | None, list[FieldError]]:
    """One send job judged into the domain's SendJob."""
    judged, errors = judge_job(body, limits, prefix, now=now)
    return (judged.to_send_job() if judged is not None else None), errors


SEND_JOB = Named(
    "SendJob",
    TypeAdapter(Annotated[SmsJob | VoiceJob | PushJob | EmailJob | WebhookJob, Field(discriminator="channel")]),
)
BATCH_ITEM = Named(
    "BatchItem",
    TypeAdapter(
        Annotated[
            SmsBatchItem | VoiceBatchItem | PushBatchItem | EmailBatchItem | WebhookBatchItem,
            Field(discriminator="channel"),
        ]
    ),
)

"""Message templates (docs/templates.md): a draft per name with declared variables, per-channel bodies
with `{{ name }}` placeholders and locale variants; published as immutable numbered versions.

A variable is one model per type (its example and max_length are of that type). What a body may hold
(only placeholders of declared variables, `{% if name %}` and four filters) is the template
language's rule, checked by the domain (gateway/domain/templates.py) and answered as a 422 naming
the body's JSON pointer."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from gateway.contract.base import (
    LABEL_PATTERN,
    NO_NUL,
    Body,
    JsonObject,
    JsonString,
    JsonValue,
    Reply,
    absent,
    explain_pattern,
    fail,
    json_size,
    judge,
)
from gateway.contract.base import text as copy_text
from gateway.contract.jobs import (
    LIMITS,
    MAX_PARAM_CHARS,
    MAX_VARIABLES,
    TEMPLATE_NAME_PATTERN,
    Locale,
    TemplateName,
    TemplateParams,
    VariableName,
    whole,
)
from gateway.contract.operations import Answer, Operation, Query, auth_answers, body_answers, problem
from gateway.domain.jobs import FieldError
from gateway.domain.templates import URL, VARIABLE_TYPES, Variable, judge_value

NAME_PATTERN = TEMPLATE_NAME_PATTERN
PROVIDER_PATTERN = explain_pattern(r"^[a-z][a-z0-9_-]{0,31}$", "must be a provider name: 1-32 of a-z, 0-9, '_', '-'")
ProviderKey = Annotated[str, StringConstraints(pattern=PROVIDER_PATTERN)]
IdKey = Annotated[
    str, StringConstraints(pattern=explain_pattern(r"^[a-z][a-z0-9_]{0,31}$", "must be 1-32 of a-z, 0-9, '_'"))
]
IdValue = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=LABEL_PATTERN)]
Description = Annotated[str, StringConstraints(max_length=500, pattern=NO_NUL)]
MAX_LOCALES = 20
URL_SCHEMA_PATTERN = explain_pattern(URL.pattern.replace(r"\s", r"\t-\r "), "must be an http or https URL")


def _date(value: str) -> str:
    if judge_value(Variable("date"), value)[1] is not None:
        raise fail("must be a date in the form YYYY-MM-DD")
    return value


DateText = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
    AfterValidator(_date),
    Field(json_schema_extra={"format": "date"}),
]
MaxLength = Annotated[int, Field(ge=1, le=MAX_PARAM_CHARS), BeforeValidator(whole)]
_VARIABLE = ConfigDict(
    json_schema_extra={"description": "a declared variable; `example` is used by the lint and must fit max_length"}
)


class _Variable(Body):
    model_config = _VARIABLE
    required: bool = False


class _Text(_Variable):
    max_length: MaxLength | None = None
    example: str | None = None

    @model_validator(mode="after")
    def _example_fits(self) -> _Text:
        if self.example is not None and self.max_length is not None and len(self.example) > self.max_length:
            raise fail(f"the example must be at most max_length ({self.max_length}) characters")
        return self


class StringVariable(_Text):
    type: Literal["string"]
    example: Annotated[str, StringConstraints(max_length=MAX_PARAM_CHARS, pattern=NO_NUL)] | None = None


class UrlVariable(_Text):
    type: Literal["url"]
    example: Annotated[str, StringConstraints(max_length=MAX_PARAM_CHARS, pattern=URL_SCHEMA_PATTERN)] | None = None


class IntegerVariable(_Variable):
    type: Literal["integer"]
    example: Annotated[int, Field(ge=-(2**53), le=2**53), BeforeValidator(whole)] | None = None


class NumberVariable(_Variable):
    type: Literal["number"]
    example: Annotated[float, Field(ge=-(2**53), le=2**53)] | None = None


class BooleanVariable(_Variable):
    type: Literal["boolean"]
    example: bool | None = None


class DateVariable(_Variable):
    type: Literal["date"]
    example: DateText | None = None


AnyVariable = Annotated[
    StringVariable | UrlVariable | IntegerVariable | NumberVariable | BooleanVariable | DateVariable,
    Field(discriminator="type"),
]

# Body sources: the content limits of a job, since a body renders to a job's content.
Source = copy_text(LIMITS.max_text_chars)


class SmsBody(Body):
    text: Source  # type: ignore[valid-type]


class PushBody(Body):
    title: copy_text(LIMITS.max_push_title_chars)  # type: ignore[valid-type]
    body: copy_text(LIMITS.max_push_body_chars)  # type: ignore[valid-type]
    data: Annotated[dict[JsonString, JsonString], json_size(4000)] | None = absent()


class EmailBody(Body):
    subject: copy_text(LIMITS.max_subject_chars, one_line=True)  # type: ignore[valid-type]
    text: copy_text(LIMITS.max_email_body_chars)  # type: ignore[valid-type]
    html: copy_text(LIMITS.max_email_body_chars, required=False) = absent()  # type: ignore[valid-type]


class VoiceBody(Body):
    text: Source  # type: ignore[valid-type]
    language: copy_text(16, required=False, one_line=True) = absent()  # type: ignore[valid-type]
    voice: copy_text(64, required=False, one_line=True) = absent()  # type: ignore[valid-type]


class WebhookBody(Body):
    json_body: Annotated[JsonObject | list[JsonValue], json_size(LIMITS.max_payload_bytes)] = Field(
        alias="json", description="posted as the job's payload; every string in it is a template"
    )


class SmsOverride(Body):
    text: Source = absent()  # type: ignore[valid-type]


class PushOverride(Body):
    title: copy_text(LIMITS.max_push_title_chars) = absent()  # type: ignore[valid-type]
    body: copy_text(LIMITS.max_push_body_chars) = absent()  # type: ignore[valid-type]
    data: Annotated[dict[JsonString, JsonString], json_size(4000)] = absent()


class EmailOverride(Body):
    subject: copy_text(LIMITS.max_subject_chars, one_line=True) = absent()  # type: ignore[valid-type]
    text: copy_text(LIMITS.max_email_body_chars) = absent()  # type: ignore[valid-type]
    html: copy_text(LIMITS.max_email_body_chars, required=False) = absent()  # type: ignore[valid-type]


class VoiceOverride(Body):
    text: Source = absent()  # type: ignore[valid-type]
    language: copy_text(16, required=False, one_line=True) = absent()  # type: ignore[valid-type]
    voice: copy_text(64, required=False, one_line=True) = absent()  # type: ignore[valid-type]


class WebhookOverride(Body):
    json_body: Annotated[JsonObject | list[JsonValue], json_size(LIMITS.max_payload_bytes)] | None = Field(
        default_factory=lambda: None, alias="json"
    )


class Channels(Body):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})
    sms: SmsBody = absent()
    push: PushBody = absent()
    email: EmailBody = absent()
    voice: VoiceBody = absent()
    webhook: WebhookBody = absent()

    @model_validator(mode="after")
    def _one_at_least(self) -> Channels:
        if all(body is None for body in self.__dict__.values()):
            raise fail("must hold the body of at least one channel")
        return self


class LocaleChannels(Body):
    """Fields that override the base bodies of the same channels, field by field."""

    sms: SmsOverride = absent()
    push: PushOverride = absent()
    email: EmailOverride = absent()
    voice: VoiceOverride = absent()
    webhook: WebhookOverride = absent()


def _bodies(channels: Body) -> dict[str, dict[str, Any]]:
    """The given bodies as plain JSON (the field `json` by its name)."""
    return {
        name: body.model_dump(by_alias=True, exclude_none=True)
        for name, body in channels.__dict__.items()
        if body is not None
    }


Variables = Annotated[dict[VariableName, AnyVariable], Field(max_length=MAX_VARIABLES)]
Locales = Annotated[dict[Locale, LocaleChannels], Field(max_length=MAX_LOCALES)]
Providers = Annotated[
    dict[ProviderKey, Annotated[dict[IdKey, IdValue], Field(min_length=1, max_length=8)]],
    Field(
        max_length=16,
        description='per provider, the ids of its approved template: {"aliyun": {"template_code": "SMS_123", '
        '"sign_name": "小店"}, "twilio": {"content_sid": "HX..."}}',
    ),
]
Category = Literal["marketing", "transactional"]


class _Fields(Body):
    def draft_json(self, base: dict[str, Any] | None = None) -> dict[str, Any]:
        """The draft as stored: `base` (the current draft) with the fields given here replacing its own."""
        draft = dict(base or {})
        for name, value in self.__dict__.items():
            if value is None or name == "name":
                continue
            if name == "variables":
                draft[name] = {k: v.model_dump(exclude_none=True) for k, v in value.items()}
            elif name == "channels":
                draft[name] = _bodies(value)
            elif name == "locales":
                draft[name] = {loc: _bodies(ch) for loc, ch in value.items()}
            else:
                draft[name] = value
        return draft


class NewTemplate(_Fields):
    name: TemplateName
    description: Description = ""
    category: Category = Field("marketing", description="the category its jobs are linted as")
    variables: Variables = Field(default_factory=dict)
    channels: Channels
    locales: Locales = Field(default_factory=dict)
    providers: Providers = Field(default_factory=dict)


class TemplateChanges(_Fields):
    """Fields to replace in the draft (each one whole); the others stay."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})
    description: Description = absent()
    category: Category = absent()
    variables: Variables = absent()
    channels: Channels = absent()
    locales: Locales = absent()
    providers: Providers = absent()

    @model_validator(mode="after")
    def _changes_something(self) -> TemplateChanges:
        if all(value is None for value in self.__dict__.values()):
            raise fail("must name at least one field to change")
        return self


# A variable's errors name its field, not the union member pydantic tried (`/variables/n/integer/example`).
_MEMBER = re.compile(rf"^(/variables/[^/]+)/(?:{'|'.join(VARIABLE_TYPES)})(?=/|$)")


def judge_template(model: type[_Fields], body: Any) -> tuple[_Fields | None, list[FieldError]]:
    if not isinstance(body, dict):
        return None, [FieldError("/", "must be a JSON object")]
    judged, errors = judge(model, body)
    named = []
    for error in errors:
        field = _MEMBER.sub(r"\1", error.field)
        if "does not match any of the expected tags" in error.message:
            named.append(FieldError(field + "/type", f"must be one of {', '.join(VARIABLE_TYPES)}"))
        elif "Unable to extract tag" in error.message:
            named.append(FieldError(field + "/type", "is required"))
        elif error.message.startswith("the example must be"):
            named.append(FieldError(field + "/example", error.message.replace("the example must be", "must be")))
        else:
            named.append(FieldError(field, error.message))
    return judged, named


class PreviewRequest(Body):
    params: TemplateParams = Field(default_factory=dict)
    locale: Locale = absent()
    version: Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(whole)] | None = Field(
        default_factory=lambda: None, description="a published version; default: the draft"
    )


class TemplateQuery(Query):
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    cursor: (
        Annotated[
            str, StringConstraints(pattern=explain_pattern(r"^[0-9]{1,18}$", "is not a cursor this API gave out"))
        ]
        | None
    ) = Field(None, description="next_cursor of the previous page")
    archived: bool = Field(False, description="include archived templates")


# -- answers ------------------------------------------------------------------------------------------

Iso = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Finding(Reply):
    severity: Literal["block", "warn"]
    rule: str
    field: str = Field(description="JSON pointer of the template body: /channels/sms/text")
    message: str
    sample: Literal["examples", "max_length"] = Field(description="rendered with the examples or at max lengths")
    route: str | None = Field(description="the provider whose route rules found it; null: the default rules")


class TemplateDraft(Reply):
    name: str
    description: str
    category: str
    variables: dict[str, dict[str, Any]]
    channels: dict[str, dict[str, Any]]
    locales: dict[str, dict[str, dict[str, Any]]]
    providers: dict[str, dict[str, str]]
    archived: bool
    latest_version: int | None = Field(description="null: never published")
    created_at: Iso
    updated_at: Iso
    findings: list[Finding] = Field(description="the lint of the draft (nothing is refused before publish)")


class TemplateList(Reply):
    data: list[TemplateDraft]
    next_cursor: str | None


class Published(Reply):
    version: int
    findings: list[Finding] = Field(description="warnings; a block finding refuses the publish (422)")


class Version(Reply):
    name: str
    version: int
    created_at: Iso
    created_by: str = Field(description="the API key that published it")
    findings: list[Finding]
    content: dict[str, Any] = Field(description="description, category, variables, channels, locales, providers")


class VersionList(Reply):
    data: list[Version]


class ChannelPreview(Reply):
    text: str = Field(description="the main text: sms/voice text, push body, e-mail text; webhook: the JSON")
    content: dict[str, Any] = Field(description="every field as a job on this channel carries it")
    ok: bool
    encoding: Literal["GSM-7", "UCS-2", "UTF-8"]
    segments: int
    violations: list[dict[str, Any]]


class ParamProblem(Reply):
    field: str = Field(description="/params/<name>")
    message: str


class Preview(Reply):
    version: int | None = Field(description="null: the draft")
    locale: str | None = Field(description="the variant used; null: the base bodies")
    params: list[ParamProblem] = Field(
        description="what a job with these params would be refused for (missing, undeclared, of another type)"
    )
    filled: list[str] = Field(description="required variables missing or wrong, rendered with their examples")
    channels: dict[str, ChannelPreview]


EXAMPLE = {
    "name": "order_shipped",
    "description": "parcel left the warehouse",
    "variables": {
        "name": {"type": "string", "required": True, "max_length": 20, "example": "张三"},
        "url": {"type": "url", "required": True, "example": "https://shop.example.com/o/1"},
    },
    "channels": {
        "sms": {"text": "【小店】{{ name }}，您的订单已发货 {{ url }} 拒收请回复R"},
        "push": {"title": "订单已发货", "body": "{{ name }}，点开查看物流"},
        "voice": {"text": "您好，{{ name }}，您的订单已经发货。", "language": "zh-CN"},
    },
    "locales": {"en": {"sms": {"text": "{{ name }}, your order has shipped {{ url }}"}}},
    "providers": {"aliyun": {"template_code": "SMS_123", "sign_name": "小店"}},
}
NAME = {"type": "string", "pattern": NAME_PATTERN, "description": "the template's name", "examples": ["order_shipped"]}
VERSION = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1, "examples": [1]}
NOT_FOUND = problem("no template of that name (or not a template name)")
INVALID = problem(
    "an invalid field; a body beyond placeholders (attribute access, calls, loops, undeclared variables), named by "
    "its JSON pointer"
)
ARCHIVED = problem("the template is archived")
LOCATION = {"Location": {"schema": {"type": "string"}}}


def _action(path: str, operation_id: str, summary: str, answers: dict[int, Answer], **more: Any) -> Operation:
    return Operation(
        "post",
        f"/v1/templates/{{name}}/{path}",
        operation_id,
        summary,
        path_params={"name": NAME},
        answers={**answers, **auth_answers(), 404: problem("no template of that name (or no such version)")},
        **more,
    )


OPERATIONS = (
    Operation(
        "post",
        "/v1/templates",
        "createTemplate",
        "Create a template draft",
        body=NewTemplate,
        body_examples={"order shipped": EXAMPLE},
        answers={
            201: Answer("the draft, with its lint", TemplateDraft, headers=LOCATION),
            **body_answers(),
            **auth_answers(),
            409: problem("this tenant has a template of that name (archived ones too)"),
            422: INVALID,
        },
    ),
    Operation(
        "get",
        "/v1/templates",
        "listTemplates",
        "This tenant's templates, oldest first",
        query=TemplateQuery,
        answers={200: Answer("a page of templates", TemplateList), 400: problem("invalid query"), **auth_answers()},
    ),
    Operation(
        "get",
        "/v1/templates/{name}",
        "getTemplate",
        "A template's draft, its latest version number and the draft's lint",
        path_params={"name": NAME},
        answers={200: Answer("the template", TemplateDraft), **auth_answers(), 404: NOT_FOUND},
    ),
    Operation(
        "patch",
        "/v1/templates/{name}",
        "updateTemplate",
        "Replace fields of the draft (published versions never change)",
        path_params={"name": NAME},
        body=TemplateChanges,
        body_examples={"wording": {"description": "parcel shipped", "channels": EXAMPLE["channels"]}},
        answers={
            200: Answer("the draft, with its lint", TemplateDraft),
            **body_answers(),
            **auth_answers(),
            404: NOT_FOUND,
            409: ARCHIVED,
            422: INVALID,
        },
    ),
    _action(
        "publish",
        "publishTemplate",
        "Publish the draft as the next immutable version",
        {
            201: Answer("the new version and its warnings", Published, headers=LOCATION),
            409: ARCHIVED,
            422: problem("the lint found a block finding: each named by the template body's JSON pointer"),
        },
    ),
    _action(
        "archive",
        "archiveTemplate",
        "Archive a template: jobs naming it are refused; its versions stay readable",
        {200: Answer("the archived template", TemplateDraft)},
    ),
    Operation(
        "get",
        "/v1/templates/{name}/versions",
        "listTemplateVersions",
        "A template's published versions, newest first",
        path_params={"name": NAME},
        answers={200: Answer("the versions", VersionList), **auth_answers(), 404: NOT_FOUND},
    ),
    Operation(
        "get",
        "/v1/templates/{name}/versions/{version}",
        "getTemplateVersion",
        "One published version",
        path_params={"name": NAME, "version": VERSION},
        answers={200: Answer("the version", Version), **auth_answers(), 404: problem("no such template or version")},
    ),
    _action(
        "preview",
        "previewTemplate",
        "Render every channel with the given params and check each as a job's content",
        {
            200: Answer("per channel: the rendered content, encoding, segments and violations", Preview),
            **body_answers(),
            422: problem("an invalid field"),
        },
        body=PreviewRequest,
        body_required=False,
        body_examples={"params": {"params": {"name": "张三", "url": "https://shop.example.com/o/1"}, "locale": "en"}},
    ),
)

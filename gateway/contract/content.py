"""Content preflight (`POST /v1/content/check`) and each tenant's blocked-word lists.

A preflight checks one `text`, or a job's `content` field by field; which fields a content has is
its channel's, so a content check is one model per channel and the handler picks it as the
document's union does."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

from gateway.contract.base import NO_NUL, SAYS_SOMETHING, Body, Reply, absent, fail, judge
from gateway.contract.jobs import CHANNELS
from gateway.contract.numbers import ProviderName
from gateway.contract.operations import Answer, Named, Operation, auth_answers, body_answers, problem
from gateway.domain.content import TEXT_FIELDS, fold, validate_word_list
from gateway.domain.content.words import MAX_WORD_CHARS
from gateway.domain.jobs import FieldError, normalise_phone

# The longest text checked at all: content.hard_max_chars as shipped (an operator's lower setting is
# applied by the handler).
MAX_CHARS = 1600
MAX_LIST_WORDS = 50_000
LIST_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Iso = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Text = Annotated[str, StringConstraints(max_length=MAX_CHARS, pattern=SAYS_SOMETHING)]
OptionalText = Annotated[str, StringConstraints(max_length=MAX_CHARS, pattern=NO_NUL)]


def _recipient(value: str) -> str:
    if value.startswith("+"):
        number = normalise_phone(value)
        if number is None:
            raise fail("must be a valid phone number in E.164 form, or an address")
        return number
    return value


Recipient = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048, pattern=r"^[^\x00]*$"),
    AfterValidator(_recipient),
    # What the check takes, said as it is: a phone number (it starts with +), or any other address
    # taken as it is. A format of its own for both could not tell a client which strings are refused.
    WithJsonSchema(
        {
            "description": "whom it is for: a phone number in E.164 form (starting with +) picks the carrier's "
            "word lists; any other address is taken as it is",
            "anyOf": [
                {"type": "string", "format": "phone-e164", "pattern": r"^\+", "maxLength": 2048},
                {"type": "string", "pattern": r"^[^+\x00][^\x00]*$", "maxLength": 2048},
            ],
            "examples": ["+8613812345678"],
        }
    ),
]


class ContentCheck(Body):
    channel: str
    category: Literal["marketing", "transactional"] = "marketing"
    to: Recipient = absent()
    provider: ProviderName = absent()

    def texts(self) -> dict[str, str]:
        """Each text to check, by its field's JSON pointer."""
        raise NotImplementedError


class TextCheck(ContentCheck):
    """One text, checked as the channel carries it."""

    channel: Channel
    text: Text

    def texts(self) -> dict[str, str]:
        return {"/text": self.text}


def _says_something(*fields: str) -> dict[str, Any]:
    return {"anyOf": [{"required": [f], "properties": {f: {"pattern": SAYS_SOMETHING}}} for f in fields]}


class _Content(Body):
    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @model_validator(mode="after")
    def _not_blank(self) -> _Content:
        if not any(v.strip() for v in self.given().values()):
            raise fail("must hold a non-empty text field")
        return self


class SmsCheckContent(_Content):
    text: Text


class PushCheckContent(_Content):
    model_config = ConfigDict(json_schema_extra=_says_something("title", "body"))
    title: OptionalText = absent()
    body: OptionalText = absent()


class EmailCheckContent(_Content):
    model_config = ConfigDict(json_schema_extra=_says_something("subject", "text"))
    subject: OptionalText = absent()
    text: OptionalText = absent()


class _FieldsCheck(ContentCheck):
    """A job's content, field by field."""

    content: _Content

    def texts(self) -> dict[str, str]:
        return {f"/content/{name}": value for name, value in self.content.given().items()}


class SmsContentCheck(_FieldsCheck):
    channel: Literal["sms", "voice"]
    content: SmsCheckContent


class PushContentCheck(_FieldsCheck):
    channel: Literal["push"]
    content: PushCheckContent


class EmailContentCheck(_FieldsCheck):
    channel: Literal["email"]
    content: EmailCheckContent


_CONTENT_CHECKS: dict[str, type[_FieldsCheck]] = {
    "sms": SmsContentCheck,
    "voice": SmsContentCheck,
    "push": PushContentCheck,
    "email": EmailContentCheck,
}
CONTENT_CHECK = Named(
    "ContentCheckRequest", TypeAdapter(TextCheck | SmsContentCheck | PushContentCheck | EmailContentCheck)
)


def judge_content_check(body: Any) -> tuple[ContentCheck | None, list[FieldError]]:
    """`text` or `content` (not both) on a channel, every problem named."""
    if not isinstance(body, dict):
        return None, [FieldError("/", "must be a JSON object")]
    if body.get("content") is None:
        return judge(TextCheck, body)
    if body.get("text") is not None:
        return None, [FieldError("/content", "give text or content, not both")]
    channel = body.get("channel")
    model = _CONTENT_CHECKS.get(channel) if isinstance(channel, str) else None
    if model is None:
        if isinstance(channel, str) and channel in TEXT_FIELDS:
            return None, [FieldError("/content", f"{channel} messages carry no text to check")]
        return None, [FieldError("/channel", f"must be one of {', '.join(CHANNELS)}")]
    return judge(model, body)


def _has_letters(word: str) -> str:
    if not fold(word):
        raise fail(f"{word!r} has no letters or digits, so it can never match")
    return word


Word = Annotated[
    str,
    StringConstraints(max_length=MAX_WORD_CHARS, pattern=SAYS_SOMETHING),
    AfterValidator(_has_letters),
    Field(
        description="a word or phrase, matched however it is disguised (case, width, inserted spaces); "
        "it must hold a letter or digit",
        json_schema_extra={"format": "blocked-word"},
    ),
]


class BlocklistRequest(Body):
    words: Annotated[
        list[Word],
        Field(
            max_length=MAX_LIST_WORDS,
            description="no two that match the same texts (e.g. differing only in case)",
            json_schema_extra={"uniqueItems": True},
            examples=[["竞品A", "rival b"]],
        ),
    ]
    severity: Literal["block", "warn"] = "block"
    error_messages: ClassVar[dict[tuple[str, str], str]] = {
        ("words/*", "string_pattern_mismatch"): "is empty",
    }


def judge_blocklist(body: Any) -> tuple[BlocklistRequest | None, list[FieldError]]:
    """A list to store; words that would match the same texts are named by their index."""
    if not isinstance(body, dict):
        return None, [FieldError("/", "must be a JSON object")]
    judged, errors = judge(BlocklistRequest, body)
    if judged is None:
        return None, errors
    problems = validate_word_list(judged.words, judged.severity)
    errors = [FieldError("/severity" if i is None else f"/words/{i}", message) for i, message in problems]
    return (None, errors) if errors else (judged, [])


class Violation(Reply):
    rule: str
    severity: Literal["block", "warn"]
    field: str = Field(description="JSON pointer of the text the span points into: /text, /content/subject")
    start: int
    end: int
    match: str
    message: str


class ContentReport(Reply):
    ok: bool = Field(description="no violation of severity block")
    encoding: Literal["GSM-7", "UCS-2", "UTF-8"]
    segments: Annotated[int, Field(ge=0)]
    violations: list[Violation]
    fixed_text: str = Field(description="the fixed text (of the main field: email text, push body)")
    fixed: dict[str, str] = Field(description="each checked field, fixed: {text}, {subject, text} or {title, body}")


class CheckReport(ContentReport):
    route: str | None = Field(
        description="the provider whose route rules applied (the one given, else the first route the channel may go "
        "by that has rules of its own, as at accept); null: the default rules"
    )
    china_marketing: bool = Field(description="the route's China marketing rules (【signature】, unsubscribe) applied")


class Blocklist(Reply):
    name: str
    severity: Literal["block", "warn"]
    words: list[str]
    updated_at: Iso


class BlocklistList(Reply):
    data: list[Blocklist]


LIST_NAME = {
    "type": "string",
    "pattern": LIST_NAME_PATTERN,
    "description": "1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit",
    "examples": ["brand"],
}
NO_LIST = problem("no such list (or not a list name)")

OPERATIONS = (
    Operation(
        "post",
        "/v1/content/check",
        "checkContent",
        "Preflight a text: blocked words, link spacing, encoding and segments, route rules",
        body=CONTENT_CHECK,
        body_examples={
            "text": {"channel": "sms", "text": "春季上新，点击t.cn/x", "to": "+8613812345678"},
            "content": {"channel": "email", "content": {"subject": "Your receipt", "text": "Thank you"}},
        },
        answers={
            200: Answer("the verdict, each violation with its span, and the route whose rules applied", CheckReport),
            **body_answers(),
            **auth_answers(),
            422: problem("an invalid field (e.g. an empty text, an unknown provider)"),
        },
    ),
    Operation(
        "get",
        "/v1/blocklists",
        "listBlocklists",
        "This tenant's blocked-word lists",
        answers={200: Answer("the lists", BlocklistList), **auth_answers()},
    ),
    Operation(
        "get",
        "/v1/blocklists/{name}",
        "getBlocklist",
        "One list",
        path_params={"name": LIST_NAME},
        answers={200: Answer("the list", Blocklist), **auth_answers(), 404: NO_LIST},
    ),
    Operation(
        "put",
        "/v1/blocklists/{name}",
        "putBlocklist",
        "Create or replace a list; applied to checks at once, audited (admin scope)",
        path_params={"name": LIST_NAME},
        body=BlocklistRequest,
        body_examples={"brand": {"words": ["竞品A", "rival b"], "severity": "warn"}},
        answers={
            200: Answer("replaced", Blocklist),
            201: Answer("created", Blocklist),
            **body_answers(),
            **auth_answers(),
            404: NO_LIST,
            422: problem("empty, letterless or duplicate words, an invalid severity"),
        },
    ),
    Operation(
        "delete",
        "/v1/blocklists/{name}",
        "deleteBlocklist",
        "Delete a list (admin scope)",
        path_params={"name": LIST_NAME},
        answers={204: Answer("deleted"), **auth_answers(), 404: NO_LIST},
    ),
)

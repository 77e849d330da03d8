"""The building blocks of the API contract: the base of every request model, the field types shared
across rooms, and the translation of a validation failure into field-named errors.

A request model is the one statement of what the API takes: the handler validates with it and
/openapi.json is generated from it, so the document and the server cannot disagree. Validation runs
in pydantic's strict mode on the already-parsed body (no "5" for 5, no 1 for true); checks that JSON
Schema has no keyword for (a number that exists, a time zone that exists, a size in bytes) are
validators on the type, documented by a named `format` and a description.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from typing_extensions import TypeAliasType

from gateway.domain.jobs import FieldError, parse_timestamp


class Body(BaseModel):
    """A JSON request body: unknown fields refused, no type coercion, immutable once judged."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Messages for this model's errors that say more than the generic ones, by (field path, error type);
    # integers in a path are written `*`.
    error_messages: ClassVar[Mapping[tuple[str, str], str]] = {}


class Reply(BaseModel):
    """A response body's shape, for the document; handlers build the JSON themselves."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def absent() -> Any:
    """The default of an optional field that may not be null: left out of the document, since null is
    no value a client may send (pydantic does not show a default made by a factory)."""
    return Field(default_factory=lambda: None)


def fail(message: str) -> PydanticCustomError:
    """A validator's refusal, carried to the client as the field's message word for word."""
    return PydanticCustomError("field", message)


# -- field types shared across rooms ------------------------------------------------------------------

# Printable, no control characters; at least one character that is not white space.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
LABEL_PATTERN = r"^[^\x00-\x1f]+$"
Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=LABEL_PATTERN),
    Field(description="1-128 characters, no control characters", examples=["spring-sale"]),
]
# Text that must say something: not empty, not only white space, no NUL (PostgreSQL cannot store it).
# White space spelled out: `\s` means different characters to JSON Schema's regular expressions
# (ECMA-262), Python's and the validator's, so a document using it would promise what the server
# refuses. These are every character any of them, or str.isspace, counts as white space.
BLANK = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
SAYS_SOMETHING = rf"^[^\x00]*[^{BLANK}\x00][^\x00]*$"
ONE_LINE_SAYS_SOMETHING = rf"^[^\x00\r\n]*[^{BLANK}\x00][^\x00\r\n]*$"
NO_NUL = r"^[^\x00]*$"


def text(max_chars: int, *, required: bool = True, one_line: bool = False) -> Any:
    """A string field of message copy."""
    pattern = SAYS_SOMETHING if required else NO_NUL
    if one_line:
        pattern = ONE_LINE_SAYS_SOMETHING if required else r"^[^\x00\r\n]*$"
    return Annotated[str, StringConstraints(max_length=max_chars, pattern=pattern)]


def _timestamp(value: Any) -> float:
    parsed = parse_timestamp(value) if isinstance(value, str) else None
    if parsed is None:
        raise fail("must be an RFC 3339 date-time with a time zone offset, e.g. 2026-01-31T09:00:00+08:00")
    return parsed


# Seconds since the epoch, written as an RFC 3339 date-time with an offset (a time without a zone
# is ambiguous and refused).
Timestamp = Annotated[
    float,
    BeforeValidator(_timestamp),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def json_size(max_bytes: int) -> Any:
    def check(value: Any) -> Any:
        size = len(orjson.dumps(value))
        if size > max_bytes:
            raise fail(f"must serialise to at most {max_bytes} bytes (got {size})")
        return value

    return AfterValidator(check)


# Any JSON value, an integer only within 64 bits: the body's parse would round one beyond (refused
# before validation with a 422 naming it).
ExactInteger = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]
# No NUL anywhere: PostgreSQL cannot store it (the body is refused before validation if it has one).
JsonString = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
JsonFraction = Annotated[float, Field(ge=-(2**63), le=2**64 - 1)]
JsonValue = TypeAliasType(
    "JsonValue",
    "bool | ExactInteger | JsonFraction | JsonString | list[JsonValue] | dict[JsonString, JsonValue] | None",
)
JsonObject = dict[JsonString, JsonValue]
# JsonValue as the document states it: one schema whose keywords each apply to their own type (no
# anyOf of alternatives, which generators mutate into another alternative and call that invalid).
JSON_VALUE_SCHEMA = {
    "description": "any JSON value; no NUL in a string, numbers within 64 bits (send larger ones as strings)",
    "type": ["null", "boolean", "number", "string", "array", "object"],
    "minimum": -(2**63),
    "maximum": 2**64 - 1,
    "pattern": "^[^\\x00]*$",
    "items": {"$ref": "#/components/schemas/JsonValue"},
    "propertyNames": {"pattern": "^[^\\x00]*$"},
    "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
}


# -- from pydantic's errors to ours ------------------------------------------------------------------

PATTERN_MEANINGS: dict[str, str] = {
    LABEL_PATTERN: "must not contain control characters",
    SAYS_SOMETHING: "must not be empty or contain NUL characters",
    NO_NUL: "must not contain NUL characters",
    ONE_LINE_SAYS_SOMETHING: "must be one line, not empty",
    r"^[^\x00\r\n]*$": "must be one line",
    NO_CONTROL: "must not contain control characters",
}


def explain_pattern(pattern: str, meaning: str) -> str:
    """Registers what a string failing `pattern` is told; returns the pattern."""
    PATTERN_MEANINGS[pattern] = meaning
    return pattern


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
    "list_type": "a list",
    "none_required": "null",
}


def _plain(expected: str) -> str:
    return expected.replace("'", "")


def generic_message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "field":
        return error["msg"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx['min_length']} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "string_pattern_mismatch":
        return PATTERN_MEANINGS.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern')}")
    if kind in ("literal_error", "enum"):
        expected = _plain(str(ctx.get("expected", "")))
        return f"must be {expected}" if "," not in expected else f"must be one of {expected.replace(' or ', ', ')}"
    if kind == "too_long":
        return f"must hold at most {ctx['max_length']} items"
    if kind == "too_short":
        return f"must hold at least {ctx['min_length']} item{'s' if ctx['min_length'] != 1 else ''}"
    bounds = {"greater_than_equal": "at least", "less_than_equal": "at most", "greater_than": "more than"}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit}"
    if kind == "less_than":
        return f"must be less than {next(iter(ctx.values()))}"
    return str(error["msg"])


def pointer(loc: Iterable[int | str]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def _path_key(loc: Iterable[int | str]) -> str:
    return "/".join("*" if isinstance(part, int) else str(part) for part in loc)


def field_errors(
    exc: ValidationError, model: type[Body] | None = None, prefix: str = "", *, query: bool = False
) -> list[FieldError]:
    """The errors of a failed validation, each named by its field's pointer under `prefix` (a query
    parameter by its bare name), in the order of the model's fields."""
    messages = model.error_messages if model is not None else {}
    found: list[FieldError] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        message = messages.get((_path_key(loc), error["type"])) or generic_message(error)
        if error["type"] == "literal_error" and "{input}" in message:
            message = message.format(input=error.get("input"))
        if query:
            name = str(loc[0]) if loc else ""
            found.append(
                FieldError(name, "is not a known query parameter" if error["type"] == "extra_forbidden" else message)
            )
        else:
            found.append(FieldError(prefix + pointer(loc), message))
    return found


M = TypeVar("M", bound=Body)


def judge(model: type[M], value: Any, prefix: str = "") -> tuple[M | None, list[FieldError]]:
    """The value as a `model`, or None with every problem found (not just the first)."""
    try:
        return model.model_validate(value), []
    except ValidationError as exc:
        return None, field_errors(exc, model, prefix)

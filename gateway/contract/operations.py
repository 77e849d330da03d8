"""An API operation declared once: its path, body and query models, answers and examples. The
OpenAPI document is generated from these declarations (gateway/contract/document.py) and the
handlers validate with the same models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from gateway.contract.base import Reply, field_errors
from gateway.domain.jobs import FieldError

JSON = "application/json"
PROBLEM = "application/problem+json"


class Query(BaseModel):
    """Query parameters: unknown names refused; numbers and flags read from their text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Set when the parameters are one object at least one of whose fields must be given (OpenAPI
    # cannot require "one of these parameters" otherwise): its name in the document.
    as_one_object: ClassVar[str | None] = None

    @classmethod
    def judge(cls, query: Mapping[str, str]) -> tuple[Any, list[FieldError]]:
        try:
            return cls.model_validate(dict(query)), []
        except ValidationError as exc:
            return None, field_errors(exc, query=True)


@dataclass(frozen=True)
class Named:
    """A schema that is not one model (a union of them) under its own name in the document."""

    name: str
    adapter: TypeAdapter[Any]


Schema = type[BaseModel] | TypeAdapter[Any] | Named | dict[str, Any]


@dataclass(frozen=True)
class Answer:
    description: str
    schema: Schema | None = None
    content_type: str = JSON
    headers: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # More media types for the same status (a provider callback answered in the provider's own form).
    also: Mapping[str, Schema] = field(default_factory=dict)


def problem(description: str, headers: Mapping[str, dict[str, Any]] | None = None) -> Answer:
    from gateway.contract.problems import Problem

    return Answer(description, Problem, PROBLEM, headers or {})


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    answers: Mapping[int, Answer]
    body: Schema | None = None
    body_content_type: str = JSON
    # More media types the body may come in (a provider callback in each provider's own form).
    body_also: Mapping[str, Schema] = field(default_factory=dict)
    query: type[Query] | None = None
    path_params: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    headers: tuple[dict[str, Any], ...] = ()
    auth: bool = True
    description: str = ""
    tags: tuple[str, ...] = ()
    body_examples: Mapping[str, Any] = field(default_factory=dict)
    # False: the body may be left out altogether (an action whose fields all have defaults).
    body_required: bool = True


class Empty(Reply):
    """No fields."""


UNAUTHORISED = problem("no or an unknown API key")
FORBIDDEN = problem("the key lacks the scope this operation needs")
UNAVAILABLE = problem(
    "the database is unavailable; retry after the Retry-After seconds", {"Retry-After": {"schema": {"type": "integer"}}}
)
MALFORMED = problem("malformed JSON: not JSON, empty, a key repeated, a NUL character")
NOT_JSON = problem("not application/json")
TOO_LARGE = problem("body too large")
TOO_SLOW = problem("the body took longer to arrive than the gateway waits (api.body_read_timeout_seconds)")
RATE_LIMITED = problem(
    "over the tenant's request rate (api.tenant_requests_per_second); retry after the Retry-After seconds",
    {"Retry-After": {"schema": {"type": "integer"}}},
)


def auth_answers() -> dict[int, Answer]:
    return {401: UNAUTHORISED, 403: FORBIDDEN, 429: RATE_LIMITED, 503: UNAVAILABLE}


def body_answers() -> dict[int, Answer]:
    return {400: MALFORMED, 408: TOO_SLOW, 413: TOO_LARGE, 415: NOT_JSON}

"""On-call: the failure report, and putting failed messages back in the queue (one, or by filter)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import MISSING, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from gateway.contract.base import NO_NUL, Body, Reply, Timestamp, explain_pattern, fail
from gateway.contract.messages import MESSAGE_ID, Channel, Iso, StatusName
from gateway.contract.operations import Answer, Operation, Query, auth_answers, body_answers, problem
from gateway.domain.failures import FAILURE_STATUSES, REPORT_DIMENSIONS
from gateway.domain.models import Status

DEFAULT_GROUP_BY = ("reason", "provider", "error_code")
MAX_REQUEUE = 10_000
DEFAULT_REQUEUE_LIMIT = 1000
INVALID_QUERY = problem("a query parameter is unknown or not valid (each named in `errors`)")


def comma_separated(choices: Sequence[str], default: Sequence[str], description: str) -> Any:
    """A query parameter naming one or more of `choices`, comma-separated (`reason,provider`)."""
    word = "(?:" + "|".join(choices) + ")"
    pattern = explain_pattern(f"^{word}(?:,{word})*$", f"must be a comma-separated list of {', '.join(choices)}")
    return Annotated[
        str,
        StringConstraints(pattern=pattern),
        Field(",".join(default), description=f"{description}, comma-separated: any of {', '.join(choices)}"),
    ]


def listed(value: str) -> tuple[str, ...]:
    """The names of a comma-separated parameter, each once."""
    return tuple(dict.fromkeys(value.split(",")))


class FailureQuery(Query):
    since: Timestamp | None = Field(None, description="from this time (default: 24 hours ago)")
    until: Timestamp | None = Field(None, description="before this time (default: now)")
    group_by: comma_separated(REPORT_DIMENSIONS, DEFAULT_GROUP_BY, "what to group by")  # type: ignore[valid-type]
    status: comma_separated(FAILURE_STATUSES, FAILURE_STATUSES, "which statuses count")  # type: ignore[valid-type]
    format: Literal["json", "csv"] | None = Field(
        None, description="csv: the groups as CSV (as with Accept: text/csv); default JSON"
    )


class FailureGroup(Reply):
    """One group; it names a value of each `group_by` dimension (null: the message has none)."""

    reason: str | None = None
    provider: str | None = None
    error_code: str | None = None
    sender: str | None = None
    campaign: str | None = None
    channel: str | None = None
    status: StatusName | None = None
    count: Annotated[int, Field(ge=1)]
    first_seen: Iso
    last_seen: Iso
    sample_ids: list[str] = Field(description="the newest messages of the group, at most 3")
    retry_helps: bool | None = Field(None, description="present when grouped by reason")
    action: str | None = Field(None, description="present when grouped by reason: what on-call should do")


class FailureReport(Reply):
    since: Iso
    until: Iso
    group_by: list[str]
    total: Annotated[int, Field(ge=0)]
    groups: list[FailureGroup]


# A NUL is refused with the whole body (PostgreSQL cannot store one).
NonEmpty = Annotated[str, StringConstraints(min_length=1, pattern=NO_NUL)]


def _whole(value: Any) -> Any:
    """JSON Schema's integer includes 22.0 (a whole number written with a fraction): so does the server."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class RequeueFilter(Body):
    """Which messages: every one given must match (at least one). Only failed, unknown, undelivered
    and expired messages whose expires_at is still ahead are requeued; the rest are counted in `skipped`."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    status: StatusName | MISSING = MISSING
    reason: NonEmpty | MISSING = Field(MISSING, examples=["provider.transient.exhausted"])
    provider: NonEmpty | MISSING = MISSING
    error_code: NonEmpty | MISSING = MISSING
    campaign: NonEmpty | MISSING = MISSING
    channel: Channel | MISSING = MISSING
    sender: NonEmpty | MISSING = MISSING
    since: Timestamp | MISSING = Field(MISSING, description="last changed at or after this time")
    until: Timestamp | MISSING = Field(MISSING, description="last changed before this time")

    @model_validator(mode="after")
    def _names_something(self) -> RequeueFilter:
        if not self.model_fields_set:
            raise fail("must name at least one of " + ", ".join(type(self).model_fields))
        return self

    def as_filters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


REQUEUE_FILTERS = frozenset(RequeueFilter.model_fields)


class RequeueRequest(Body):
    filter: RequeueFilter
    dry_run: bool = Field(True, description="true (the default): only show what would be requeued")
    limit: Annotated[int, Field(ge=1, le=MAX_REQUEUE), BeforeValidator(_whole)] = Field(
        DEFAULT_REQUEUE_LIMIT, description="at most this many messages are looked at"
    )


class RequeueResult(Reply):
    dry_run: bool
    matched: Annotated[int, Field(ge=0)]
    requeueable: Annotated[int, Field(ge=0)]
    requeued: Annotated[int, Field(ge=0)]
    skipped: dict[str, int] = Field(description="why the others were not: by status, or expired_window")
    sample_ids: list[str] = Field(description="the first 20 requeueable messages")


class RequeuedMessage(Reply):
    id: str
    status: Literal[Status.QUEUED]
    reason: Literal["requeued"]


OPERATIONS = (
    Operation(
        "get",
        "/v1/reports/failures",
        "failureReport",
        "Failed sends grouped, with counts, first/last seen, samples and whether a retry helps",
        query=FailureQuery,
        description="also as text/csv (Accept: text/csv or ?format=csv): one line per group",
        answers={
            200: Answer("the report", FailureReport, also={"text/csv": {"type": "string"}}),
            400: INVALID_QUERY,
            **auth_answers(),
        },
    ),
    Operation(
        "post",
        "/v1/messages/{id}/retry",
        "retryMessage",
        "Requeue one failed, unknown, undelivered or expired message; audited",
        path_params={"id": {**MESSAGE_ID, "pattern": NO_NUL}},
        answers={
            202: Answer("requeued", RequeuedMessage, headers={"Location": {"schema": {"type": "string"}}}),
            **auth_answers(),
            404: problem("no such message"),
            409: problem("delivered, suppressed, rejected or in flight; its content purged; or expires_at passed"),
        },
    ),
    Operation(
        "post",
        "/v1/messages/requeue",
        "requeueMessages",
        "Requeue failed messages by filter; dry_run (the default) shows what would be requeued",
        body=RequeueRequest,
        body_examples={
            "dry_run": {"filter": {"reason": "provider.transient.exhausted", "campaign": "spring-sale"}},
            "for_real": {
                "filter": {"provider": "sandbox", "since": "2026-01-31T00:00:00+08:00"},
                "dry_run": False,
                "limit": 500,
            },
        },
        answers={
            200: Answer("what matched and what was (or would be) requeued", RequeueResult),
            **body_answers(),
            **auth_answers(),
            422: problem("an invalid filter"),
        },
    ),
)

"""The audit log for ops: every status change and administrative act, exported as NDJSON or CSV."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints, TypeAdapter

from gateway.contract.base import NO_NUL, Reply, Timestamp
from gateway.contract.messages import Iso
from gateway.contract.operations import Answer, Named, Operation, Query, auth_answers
from gateway.contract.reports import INVALID_QUERY

NDJSON = "application/x-ndjson"
CSV = "text/csv"
CSV_COLUMNS = ("id", "at", "type", "message_id", "status", "reason", "detail")


class EventQuery(Query):
    since: Timestamp | None = Field(None, description="from this time (default: 24 hours ago)")
    until: Timestamp | None = Field(None, description="before this time (default: a second from now)")
    type: Annotated[str, StringConstraints(pattern=NO_NUL)] | None = Field(
        None, description="only these event types, comma-separated (e.g. status,suppression.added)", examples=["status"]
    )
    message_id: Annotated[str, StringConstraints(pattern=NO_NUL)] | None = Field(
        None, description="only this message's events", examples=["msg_01JD5ZQ8W1X2Y3Z4A5B6C7D8E9"]
    )

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(t for t in (self.type or "").split(",") if t)


class AuditEvent(Reply):
    """One line of the NDJSON export (and one row of the CSV export, `detail` as JSON text)."""

    id: Annotated[int, Field(ge=1, description="increasing: the order events were written in")]
    at: Iso
    type: str = Field(examples=["status", "suppression.added"])
    message_id: str | None
    status: str | None = Field(description="the status it moved to (status and receipt events)")
    reason: str | None
    detail: dict[str, Any]


AUDIT_EVENT = Named("AuditEvent", TypeAdapter(AuditEvent))
EXPORT_HEADERS = {"Content-Disposition": {"schema": {"type": "string"}, "description": "attachment; events.ndjson"}}

OPERATIONS = (
    Operation(
        "get",
        "/v1/events",
        "exportEvents",
        "The audit log, streamed in write order: NDJSON, or CSV with Accept: text/csv",
        query=EventQuery,
        answers={
            200: Answer(
                "the events of the window, oldest first",
                {"type": "string", "description": "one AuditEvent JSON object per line (none: an empty body)"},
                NDJSON,
                headers=EXPORT_HEADERS,
                also={
                    CSV: {
                        "type": "string",
                        "description": f"a header row ({','.join(CSV_COLUMNS)}), then one row per AuditEvent",
                    }
                },
            ),
            400: INVALID_QUERY,
            **auth_answers(),
        },
    ),
)
NAMED = (AUDIT_EVENT,)

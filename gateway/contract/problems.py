"""The shape of every error answer: RFC 9457 problem details with the fields at fault."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FieldProblem(BaseModel):
    field: str = Field(description="JSON pointer into the body (`/messages/3/to`), or a query parameter or header name")
    message: str


class Problem(BaseModel):
    """application/problem+json; extension members (e.g. `message_id`, `violations`) may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["/problems/validation"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None

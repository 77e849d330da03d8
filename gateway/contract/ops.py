"""For operators and their tools: liveness, readiness, Prometheus metrics and this document."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.contract.base import Reply
from gateway.contract.operations import Answer, Operation, problem


class Alive(Reply):
    status: Literal["ok"]


class Ready(Reply):
    status: Literal["ready"]
    checks: dict[str, Literal["ok"]] = Field(description="each dependency: database, and redis when configured")


OPERATIONS = (
    Operation(
        "get", "/healthz", "healthz", "Liveness: the process answers", auth=False, answers={200: Answer("alive", Alive)}
    ),
    Operation(
        "get",
        "/readyz",
        "readyz",
        "Readiness: the database (and Redis, when configured) answer within 2 seconds",
        auth=False,
        answers={
            200: Answer("ready", Ready),
            503: problem("a dependency is failing: `checks` says which (e.g. `failing: ConnectionRefusedError`)"),
        },
    ),
    Operation(
        "get",
        "/metrics",
        "metrics",
        "Prometheus metrics",
        auth=False,
        answers={200: Answer("the Prometheus text exposition format", {"type": "string"}, "text/plain")},
    ),
    Operation(
        "get",
        "/openapi.json",
        "openapi",
        "This document",
        auth=False,
        answers={200: Answer("OpenAPI 3.1", {"type": "object", "required": ["openapi", "info", "paths"]})},
    ),
)

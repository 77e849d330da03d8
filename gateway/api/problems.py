"""RFC 9457 problem details: every error the API gives is application/problem+json."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
import structlog
from aiohttp import web

from gateway.domain.jobs import FieldError
from gateway.store.outage import DatabaseUnavailable

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"
# A database restart or failover takes seconds; clients that come back sooner only add load.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5
log = structlog.get_logger("gateway.api")


class Problem(Exception):
    """Raised by handlers; the middleware turns it into a problem+json response."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        close_connection: bool = False,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        # After a half-read body the connection's byte stream is out of step: only closing it is safe.
        self.close_connection = close_connection

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [{"field": e.field or "/", "message": e.message} for e in self.errors]
        body.update(self.extra)
        return body

    def response(self, instance: str | None = None) -> web.Response:
        response = web.Response(
            status=self.status,
            body=orjson.dumps(self.body(instance)),
            content_type=PROBLEM_CONTENT_TYPE,
            headers=self.headers,
        )
        if self.close_connection:
            response.force_close()
        return response


def validation_problem(errors: Sequence[FieldError], detail: str | None = None) -> Problem:
    fields = ", ".join(e.field or "/" for e in errors[:5])
    return Problem(
        422,
        "validation",
        "The request is not valid",
        detail or f"{len(errors)} field(s) are not valid: {fields}",
        errors=errors,
    )


def unavailable_problem() -> Problem:
    """The database cannot take the request just now. Logged by the store once per interval, not here
    once per request."""
    return Problem(
        503,
        "unavailable",
        "Service Unavailable",
        "the gateway's database is unavailable just now; try again after Retry-After (with the same Idempotency-Key)",
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
    )


_STATUS_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
}


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if "\x00" in request.path or (
        request.query_string and any("\x00" in k or "\x00" in v for k, v in request.query.items())
    ):
        return Problem(400, "bad-request", "Bad Request", "the URL contains a NUL character").response(request.path)
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response(request.path)
    except DatabaseUnavailable:
        return unavailable_problem().response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        slug = _STATUS_SLUGS.get(exc.status, "http-error")
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 413:
            detail = "the request body is larger than this endpoint accepts"
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return Problem(exc.status, slug, exc.reason, detail, headers=headers).response(request.path)
    except Exception:
        log.exception("unhandled error", path=request.path, method=request.method)
        return Problem(
            500, "internal", "Internal Server Error", "the gateway failed to handle this request; it has been logged"
        ).response(request.path)

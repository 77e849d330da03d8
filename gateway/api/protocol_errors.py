"""Requests the HTTP parser refuses before any handler or middleware runs, answered as problem+json too.

aiohttp answers a malformed or over-long request line or header itself, in text/plain that echoes the
first bytes of the input. A campaign system's client parses one error format, and echoing attacker
bytes back helps nobody, so the server (gateway/api/server.py) uses a request handler whose error
page is a problem.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.api.problems import Problem

# Different limits tell the two over-long cases apart: LineTooLong carries the limit it broke.
# The request line carries lookups by address (a webhook URL may be 2,048 characters, percent-encoded
# up to 12 bytes each, and a query names two of them): 64 KiB holds every query the document allows.
REQUEST_LINE_LIMIT = 65_536
HEADER_FIELD_LIMIT = 8190

log = structlog.get_logger("gateway.api")


def problem_for_protocol_error(status: int, exc: BaseException | None) -> Problem:
    if isinstance(exc, LineTooLong):
        if exc.args[1:2] == (REQUEST_LINE_LIMIT,):
            return Problem(
                414, "uri-too-long", "URI Too Long", f"the request line must be at most {REQUEST_LINE_LIMIT} bytes"
            )
        return Problem(
            431,
            "header-fields-too-large",
            "Request Header Fields Too Large",
            f"each header must be at most {HEADER_FIELD_LIMIT} bytes",
        )
    if isinstance(exc, BadHttpMessage) or status == 400:
        return Problem(400, "bad-request", "Bad Request", "the request is not valid HTTP/1.1")
    if status == 504:
        return Problem(504, "timeout", "Gateway Timeout", "the request took too long to handle")
    return Problem(
        500, "internal", "Internal Server Error", "the gateway failed to handle this request; it has been logged"
    )


class ProblemRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; the connection is closed instead")
        problem = problem_for_protocol_error(status, exc)
        if problem.status >= 500:
            log.error("request failed outside the handlers", status=status, error=type(exc).__name__, exc_info=exc)
        else:
            log.info("request refused by the HTTP parser", status=problem.status, error=type(exc).__name__)
        problem.close_connection = True
        return problem.response()

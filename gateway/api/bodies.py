"""Reading request bodies within limits: size, media type, JSON."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from gateway.api.problems import Problem
from gateway.domain.jobs import FieldError


def _is_json_media_type(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


# A \u0000 escape that is not itself escaped (an odd run of backslashes before "u0000").
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _too_large(limit: int) -> Problem:
    return Problem(
        413, "payload-too-large", "Payload Too Large", f"the body must be at most {limit} bytes for this endpoint"
    )


async def read_json(request: web.Request, limit: int) -> Any:
    if not _is_json_media_type(request.content_type):
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported Media Type",
            f"send the body as application/json (got {request.content_type or 'none'})",
            headers={"Accept-Post": "application/json"},
        )
    charset = request.charset
    if charset and charset.lower() not in ("utf-8", "utf8"):
        raise Problem(415, "unsupported-media-type", "Unsupported Media Type", "the body must be UTF-8")
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    # Without a Content-Length (chunked), the application's client_max_size bounds the read.
    raw = await request.read()
    if len(raw) > limit:
        raise _too_large(limit)
    if not raw:
        raise Problem(
            400,
            "malformed-json",
            "Malformed JSON",
            "the request body is empty",
            errors=[FieldError("/", "a JSON body is required")],
        )
    if b"\\u0000" in raw and _NUL_ESCAPE.search(raw):
        # NUL has no business in a message, a key or a word list, and PostgreSQL cannot store it in
        # text: refuse it at the door rather than half-way down the pipeline.
        raise Problem(
            400,
            "malformed-json",
            "Malformed JSON",
            "the body contains a NUL character (\\u0000)",
            errors=[FieldError("/", "must not contain NUL characters")],
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(
            400,
            "malformed-json",
            "Malformed JSON",
            f"the body is not valid JSON: {exc}",
            errors=[FieldError("/", "not valid JSON")],
        ) from None

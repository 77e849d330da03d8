"""Reading request bodies within limits: size, media type, JSON."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import orjson
from aiohttp import web

from gateway.api.problems import Problem, validation_problem
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


# How long a client may take to send its body: a slow upload holds a connection and a buffer.
BODY_READ_TIMEOUT = web.AppKey("body_read_timeout", float)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refused when over `limit` bytes or slower to arrive than the configured deadline."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    # A body that came with its headers (nearly every job) has nothing to wait for: no deadline armed.
    if request.content.is_eof():
        raw = await request.read()
    else:
        raw = await _read_within_deadline(request)
    if len(raw) > limit:
        raise _too_large(limit)
    return raw


async def _read_within_deadline(request: web.Request) -> bytes:
    try:
        async with asyncio.timeout(request.app.get(BODY_READ_TIMEOUT, 30.0)):
            # Without a Content-Length (chunked), the application's client_max_size bounds the read.
            return await request.read()
    except TimeoutError:
        raise Problem(
            408,
            "request-timeout",
            "Request Timeout",
            "the body took too long to arrive",
            close_connection=True,
        ) from None


def _check_json_media_type(request: web.Request) -> None:
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


# What campaign systems send nearly always; anything else goes through aiohttp's full header parser.
_PLAIN_JSON = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})


async def read_json(request: web.Request, limit: int) -> Any:
    if request.headers.get("Content-Type", "").lower() not in _PLAIN_JSON:
        _check_json_media_type(request)
    raw = await read_body(request, limit)
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
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(
            400,
            "malformed-json",
            "Malformed JSON",
            f"the body is not valid JSON: {exc}",
            errors=[FieldError("/", "not valid JSON")],
        ) from None
    check_parsed(raw, parsed)
    return parsed


def check_parsed(raw: bytes, parsed: Any) -> None:
    """Refuses what a parse would hide: a key given twice in one object, an integer it rounded."""
    duplicate = duplicate_key(raw, parsed)
    if duplicate is not None:
        # Last-one-wins would store a value other than the one a proxy or a signature check saw.
        raise Problem(
            400,
            "malformed-json",
            "Malformed JSON",
            f"the body repeats the key {duplicate}: each key may appear once per object",
            errors=[FieldError(duplicate, "duplicate key")],
        )
    if _NINETEEN_DIGITS in raw.translate(_DIGITS_AS_ZEROS):
        rounded = _rounded_integers(raw)
        if rounded:
            raise validation_problem([FieldError(pointer, _ROUNDED_MESSAGE) for pointer in rounded])


# orjson reads integers from -2**63 to 2**64-1 as they are and any other as a float, losing digits
# (a 30-digit order id would be stored rounded). Only an integer of 19 digits or more can be outside.
_EXACT_INTEGERS = range(-(2**63), 2**64)
# Every digit as '0' and every other byte as a space: one substring search finds a run of 19 digits
# (a tenth of what a regular expression costs).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_NINETEEN_DIGITS = b"0" * 19
_ROUNDED_MESSAGE = (
    "is an integer beyond 64 bits (-9223372036854775808 to 18446744073709551615), which would lose digits: "
    "send it as a string"
)


def _rounded_integers(raw: bytes) -> list[str]:
    """Pointers to the body's integers outside the 64-bit range, in the body's order."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", _exact_parse(raw))]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((pointer + _pointer_token(k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{pointer}/{i}", v) for i, v in reversed(list(enumerate(value))))
        elif type(value) is int and value not in _EXACT_INTEGERS:
            found.append(pointer or "/")
    return found


# A key whose closing quote is followed by white space before its colon: the body's count misses it.
_SPACED_COLON = re.compile(rb'"[ \t\r\n]+:')
# A colon spelled as an escape: a string starting with it has a '":' in the re-encoding, not in the body.
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")


def duplicate_key(raw: bytes, parsed: Any) -> str | None:
    """The key (as a pointer) that some object of the body repeats, or None when every key is once per object."""
    if not _may_have_duplicate_keys(raw, parsed):
        return None
    return _first_duplicate_key(raw)


def _may_have_duplicate_keys(raw: bytes, parsed: Any) -> bool:
    """A sound screen: False only when the body cannot hold a repeated key (then no second parse).

    Count '":' in the body: each key written, each string written starting with a colon, each
    escaped quote followed by a colon. Count it in the compact re-encoding of the parsed value, less
    '\\":': each key kept, each string kept starting with a colon, less the keys kept ending in a
    backslash. With every colon written as itself (an escaped one and a spaced key colon send the
    body to the exact check), each string kept starting with a colon was written so, so the first
    count not above the second means no key was dropped. The exact check parses again in pure
    Python (about three times orjson's cost on a batch), so it runs only for bodies this cannot clear.
    """
    if _SPACED_COLON.search(raw) or _ESCAPED_COLON.search(raw):
        return True
    encoded = orjson.dumps(parsed)
    return raw.count(b'":') > encoded.count(b'":') - encoded.count(b'\\":')


class _DuplicateKey(Exception):
    def __init__(self, pointer: str) -> None:
        self.pointer = pointer


def _first_duplicate_key(raw: bytes) -> str | None:
    def check(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise _DuplicateKey(_pointer_token(key))
            seen[key] = value
        return seen

    try:
        _exact_parse(raw, object_pairs_hook=check)
    except _DuplicateKey as found:
        return found.pointer
    return None


def _pointer_token(key: str) -> str:
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _exact_parse(raw: bytes, **hooks: Any) -> Any:
    """The body parsed by the standard library, which keeps every key and every digit."""
    try:
        return json.loads(raw, **hooks)
    except RecursionError:
        # orjson takes 1024 levels; the standard library's parser stops a little short of that.
        raise Problem(
            400,
            "malformed-json",
            "Malformed JSON",
            "the body nests too deeply to be checked",
            errors=[FieldError("/", "nests too deeply")],
        ) from None

"""Hostile bodies, headers and queries get a clean 4xx (RFC 9457 problem+json) and leave the store unchanged.

Every case names the exact status and problem type it expects. Cases that expose a server bug today
are marked ``xfail(strict=True)`` with the bug in the reason, so main stays green while the bug stays
visible, and the mark must be removed (the test turns XPASS -> failure) once the bug is fixed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from yarl import URL

from providers.sandbox import SIGNATURE_HEADER, sign
from tests.harness import API_KEY, SMS, GatewayStarter, Running

AUTH = {"Authorization": f"Bearer {API_KEY}"}
JSON = {**AUTH, "Content-Type": "application/json"}
TABLES = (
    "messages",
    "events",
    "attempts",
    "suppressions",
    "blocklists",
    "conversions",
    "receipts",
    "links",
    "templates",
    "template_versions",
)
MB = 1024 * 1024
NUL = "a\u0000b"

# (method, path, the body limit the endpoint enforces)
ENDPOINTS = {
    "messages": ("POST", "/v1/messages", 262_144),
    "batch": ("POST", "/v1/messages/batch", 16 * MB),
    "content": ("POST", "/v1/content/check", 65_536),
    "suppressions": ("POST", "/v1/suppressions", 16_384),
    "blocklist": ("PUT", "/v1/blocklists/hostile", 4 * MB),
    "conversions": ("POST", "/v1/conversions", 16_384),
    "templates": ("POST", "/v1/templates", MB),
    "receipts": ("POST", "/v1/receipts/sandbox", 4 * MB),
}
JSON_ENDPOINTS = [name for name in ENDPOINTS if name != "receipts"]


def backend(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["database_url"])


def xfail_on(request: pytest.FixtureRequest, backends: tuple[str, ...], reason: str) -> None:
    if backend(request) in backends:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


async def send(
    gw: Running,
    endpoint: str,
    data: bytes | AsyncIterator[bytes] | None,
    headers: dict[str, str] | None = None,
    *,
    path: str | None = None,
    signed: bool = True,
    skip_content_type: bool = False,
) -> Any:
    """Send raw bytes; receipts are signed with the sandbox's real secret so the parser itself is exercised."""
    method, default_path, _ = ENDPOINTS[endpoint]
    all_headers = dict(JSON if headers is None else headers)
    if endpoint == "receipts" and signed and isinstance(data, bytes):
        secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
        all_headers[SIGNATURE_HEADER] = sign(secret, int(time.time()), data)
    response = await gw.session.request(
        method,
        gw.url + (path or default_path),
        data=data,
        headers=all_headers,
        skip_auto_headers=["Content-Type"] if skip_content_type else (),
    )
    await response.read()
    return response


async def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    body_text = (await response.read())[:300]
    assert response.status == status, f"expected {status} {slug}, got {response.status}: {body_text!r}"
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    assert body["type"] == f"/problems/{slug}"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


async def assert_store_empty(gw: Running) -> None:
    counts = {table: await gw.count(table) for table in TABLES}
    assert counts == dict.fromkeys(TABLES, 0), f"hostile input left rows behind: {counts}"


# ---------------------------------------------------------------------------------------------------------------
# Whole-body attacks, against every endpoint
# ---------------------------------------------------------------------------------------------------------------

DEEP_ARRAY = b"[" * 10_000 + b"]" * 10_000  # 20,000 bytes
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000  # 60,001 bytes
BODIES: dict[str, bytes] = {
    "deep-array-10000": DEEP_ARRAY,
    "deep-object-10000": DEEP_OBJECT,
    "invalid-utf8": b'{"channel": "\xff\xfe", "to": "\xc3\x28"}',
    "overlong-utf8-nul": b'{"channel": "\xc0\x80"}',
    "lone-surrogate-escape": b'{"text": "\\ud800"}',
    "bom": b"\xef\xbb\xbf" + orjson.dumps(SMS),
    "empty": b"",
    "truncated": b'{"channel": "sms",',
    "nan": b'{"value": NaN}',
    "infinity-number": b'{"value": 1e400}',
    "trailing-garbage": orjson.dumps(SMS) + b"\x00garbage",
}
TOP_LEVEL = {"null": b"null", "array": b"[]", "number": b"1", "string": b'"x"', "true": b"true"}


def whole_body_expectation(endpoint: str, case: str, size: int) -> tuple[int, str]:
    limit = ENDPOINTS[endpoint][2]
    if size > limit:
        return 413, "payload-too-large"
    if endpoint == "receipts":
        return 400, "malformed-receipt"
    return 400, "malformed-json"


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("case", list(BODIES))
async def test_unparseable_bodies_are_refused(start_gateway: GatewayStarter, endpoint: str, case: str) -> None:
    data = BODIES[case]
    status, slug = whole_body_expectation(endpoint, case, len(data))
    async with start_gateway() as gw:
        await problem(await send(gw, endpoint, data), status, slug)
        await assert_store_empty(gw)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("case", list(TOP_LEVEL))
async def test_top_level_values_that_are_not_objects_are_refused(
    start_gateway: GatewayStarter, endpoint: str, case: str
) -> None:
    async with start_gateway() as gw:
        response = await send(gw, endpoint, TOP_LEVEL[case])
        if endpoint == "receipts":
            await problem(response, 400, "malformed-receipt")
        else:
            body = await problem(response, 422, "validation")
            assert fields(body) == (["/messages"] if endpoint == "batch" else ["/"])
        await assert_store_empty(gw)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_a_20_mb_body_is_413(start_gateway: GatewayStarter, endpoint: str) -> None:
    data = b'{"words": ["' + b"x" * (20 * MB) + b'"]}'
    async with start_gateway() as gw:
        await problem(await send(gw, endpoint, data, signed=False), 413, "payload-too-large")
        await assert_store_empty(gw)


async def _chunks(total: int, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    yield b'{"channel":"sms","to":"+8613812345678","content":{"text":"'
    for _ in range(total // chunk):
        yield b"x" * chunk
    yield b'"}}'


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_a_chunked_20_mb_body_without_content_length_is_413(start_gateway: GatewayStarter, endpoint: str) -> None:
    async with start_gateway() as gw:
        response = await send(gw, endpoint, _chunks(20 * MB))
        assert "Content-Length" not in response.request_info.headers
        await problem(response, 413, "payload-too-large")
        await assert_store_empty(gw)


@pytest.mark.parametrize("endpoint", [e for e in JSON_ENDPOINTS if ENDPOINTS[e][2] < 1 * MB])
async def test_a_chunked_body_just_over_the_endpoint_limit_is_413(start_gateway: GatewayStarter, endpoint: str) -> None:
    async with start_gateway() as gw:
        await problem(await send(gw, endpoint, _chunks(ENDPOINTS[endpoint][2] + 1024, 1024)), 413, "payload-too-large")
        await assert_store_empty(gw)


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
    ],
)
async def test_a_wrong_or_absent_content_type_is_415(
    start_gateway: GatewayStarter, endpoint: str, content_type: str | None
) -> None:
    body = orjson.dumps({"messages": [SMS]} if endpoint == "batch" else SMS)
    headers = dict(AUTH) if content_type is None else {**AUTH, "Content-Type": content_type}
    async with start_gateway() as gw:
        response = await send(gw, endpoint, body, headers, skip_content_type=content_type is None)
        await problem(response, 415, "unsupported-media-type")
        await assert_store_empty(gw)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/json; charset=utf8",
        "application/vnd.campaign+json",
    ],
)
async def test_json_media_types_in_any_spelling_are_accepted(start_gateway: GatewayStarter, content_type: str) -> None:
    async with start_gateway() as gw:
        response = await send(gw, "messages", orjson.dumps(SMS), {**AUTH, "Content-Type": content_type})
        assert response.status == 202, await response.text()
        stored = await gw.get(f"/v1/messages/{(await response.json())['id']}")
        assert (await stored.json())["to"] == SMS["to"]


async def test_unsigned_hostile_receipts_are_401_before_parsing(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        for data in (DEEP_ARRAY, BODIES["invalid-utf8"], b"null", orjson.dumps({"receipts": [{"sid": NUL}]})):
            await problem(await send(gw, "receipts", data, signed=False), 401, "invalid-signature")
        await assert_store_empty(gw)


# ---------------------------------------------------------------------------------------------------------------
# Field-level attacks: NUL bytes, duplicate keys, wrong JSON types, huge strings
# ---------------------------------------------------------------------------------------------------------------

LONG = "x" * 100_000

WEBHOOK = {"channel": "webhook", "to": "https://example.com/hook", "content": {"payload": {"k": "v"}}}

# (endpoint, raw body, status, problem type, fields named, backends where it is a known bug, bug)
FIELD_CASES: list[Any] = [
    # --- POST /v1/messages ---
    ("messages", {"a\u0000": 1, **SMS}, 422, "validation", ["/a\u0000"], (), ""),
    ("messages", {**SMS, "content": {"text": NUL}}, 422, "validation", ["/content/text"], (), ""),
    (
        "messages",
        {**SMS, "content": {"text\u0000": "x"}},
        422,
        "validation",
        ["/content/text", "/content/text\u0000"],
        (),
        "",
    ),
    ("messages", {**SMS, "user_id": NUL}, 422, "validation", ["/user_id"], (), ""),
    ("messages", {**SMS, "campaign": NUL}, 422, "validation", ["/campaign"], (), ""),
    ("messages", {**SMS, "to": "+86138\u000012345678"}, 422, "validation", ["/to"], (), ""),
    (
        "messages",
        {"channel": "email", "to": "a\u0000@example.com", "content": {"subject": "s", "text": "t"}},
        422,
        "validation",
        ["/to"],
        (),
        "",
    ),
    ("messages", {**WEBHOOK, "to": "https://example.com/\u0000"}, 422, "validation", ["/to"], (), ""),
    ("messages", {**SMS, "tz": NUL}, 422, "validation", ["/tz"], (), ""),
    ("messages", {**SMS, "to": 8613812345678}, 422, "validation", ["/to"], (), ""),
    ("messages", {**SMS, "send_at": 1767225600}, 422, "validation", ["/send_at"], (), ""),
    ("messages", {**SMS, "send_at": "1767225600"}, 422, "validation", ["/send_at"], (), ""),
    ("messages", {**SMS, "content": {"text": 12345}}, 422, "validation", ["/content/text"], (), ""),
    ("messages", {**SMS, "metadata": "{}"}, 422, "validation", ["/metadata"], (), ""),
    ("messages", {**SMS, "fallback": "voice"}, 422, "validation", ["/fallback"], (), ""),
    ("messages", {**SMS, "channel": ["sms"]}, 422, "validation", ["/channel"], (), ""),
    ("messages", {**SMS, "channel": {"sms": 1}}, 422, "validation", ["/channel"], (), ""),
    ("messages", {**SMS, "category": ["marketing"]}, 422, "validation", ["/category"], (), ""),
    ("messages", {**SMS, "fallback": [["voice"]]}, 422, "validation", ["/fallback/0"], (), ""),
    ("messages", {**SMS, "content": {"text": LONG}}, 422, "validation", ["/content/text"], (), ""),
    ("messages", {**SMS, "campaign": LONG}, 422, "validation", ["/campaign"], (), ""),
    ("messages", {**SMS, "to": "+" + "1" * 100_000}, 422, "validation", ["/to"], (), ""),
    ("messages", {**SMS, "metadata": {LONG: 1}}, 422, "validation", ["/metadata"], (), ""),
    ("messages", {**WEBHOOK, "to": "https://example.com/" + LONG}, 422, "validation", ["/to"], (), ""),
    # --- POST /v1/messages/batch (the request as a whole) ---
    ("batch", {"messages": "1000"}, 422, "validation", ["/messages"], (), ""),
    ("batch", {"messages": {"0": SMS}}, 422, "validation", ["/messages"], (), ""),
    ("batch", {"messages": [], "x\u0000": NUL}, 422, "validation", ["/x\u0000"], (), ""),
    ("batch", {"messages": [{**SMS, "channel": ["sms"], "idempotency_key": "k"}]}, 200, "", [], (), ""),
    # --- POST /v1/content/check ---
    ("content", {"channel": "sms", "text": NUL}, 422, "validation", ["/text"], (), ""),
    ("content", {"channel": "sms", "text": "x", "k\u0000": 1}, 422, "validation", ["/k\u0000"], (), ""),
    ("content", {"channel": "sms", "text": 5}, 422, "validation", ["/text"], (), ""),
    ("content", {"channel": "sms", "text": "x" * 1601}, 422, "validation", ["/text"], (), ""),
    ("content", {"channel": "sms", "text": "x", "to": "+" + "1" * 10_000}, 422, "validation", ["/to"], (), ""),
    ("content", {"channel": "sms", "text": "x", "provider": NUL}, 422, "validation", ["/provider"], (), ""),
    ("content", {"channel": ["sms"], "text": "x"}, 422, "validation", ["/channel"], (), ""),
    ("content", {"channel": {"sms": 1}, "text": "x"}, 422, "validation", ["/channel"], (), ""),
    ("content", {"channel": {"sms": 1}, "content": {"text": "x"}}, 422, "validation", ["/channel"], (), ""),
    (
        "content",
        {"channel": "sms", "text": "x", "category": ["marketing"]},
        422,
        "validation",
        ["/category"],
        (),
        "",
    ),
    # --- POST /v1/suppressions ---
    ("suppressions", {"address": NUL}, 422, "validation", ["/address"], (), ""),
    ("suppressions", {"user_id": NUL}, 422, "validation", ["/user_id"], (), ""),
    (
        "suppressions",
        {"address": "+8613812345678", "reason": NUL},
        422,
        "validation",
        ["/reason"],
        (),
        "",
    ),
    ("suppressions", {"address": "+8613812345678", "k\u0000": 1}, 422, "validation", ["/k\u0000"], (), ""),
    ("suppressions", {"address": 8613812345678}, 422, "validation", ["/address"], (), ""),
    ("suppressions", {"address": "x" * 2049}, 422, "validation", ["/address"], (), ""),
    ("suppressions", {"address": "+8613812345678", "reason": "r" * 129}, 422, "validation", ["/reason"], (), ""),
    ("suppressions", {"address": "+8613812345678", "reason": 5}, 422, "validation", ["/reason"], (), ""),
    # --- PUT /v1/blocklists/{name} ---
    ("blocklist", {"words": [NUL]}, 422, "validation", ["/words/0"], (), ""),
    ("blocklist", {"words": ["ok"], "k\u0000": 1}, 422, "validation", ["/k\u0000"], (), ""),
    ("blocklist", {"words": ["ok"], "severity": NUL}, 422, "validation", ["/severity"], (), ""),
    ("blocklist", {"words": "casino"}, 422, "validation", ["/words"], (), ""),
    ("blocklist", {"words": ["casino", 1]}, 422, "validation", ["/words/1"], (), ""),
    ("blocklist", {"words": ["casino"], "severity": ["block"]}, 422, "validation", ["/severity"], (), ""),
    ("blocklist", {"words": ["casino"], "severity": {"block": 1}}, 422, "validation", ["/severity"], (), ""),
    ("blocklist", {"words": [LONG]}, 422, "validation", ["/words/0"], (), ""),
    ("blocklist", {"words": ["x"] * 50_001}, 422, "validation", ["/words"], (), ""),
    # --- POST /v1/conversions ---
    ("conversions", {"message_id": "m", "event": NUL, "k\u0000": 1}, 422, "validation", ["/k\u0000"], (), ""),
    ("conversions", {"message_id": "m", "event": "x", "value": "5"}, 422, "validation", ["/value"], (), ""),
    ("conversions", {"message_id": "m", "event": "x", "value": True}, 422, "validation", ["/value"], (), ""),
    ("conversions", {"message_id": "m", "event": 5}, 422, "validation", ["/event"], (), ""),
    (
        "conversions",
        {"message_id": "m", "event": "x", "occurred_at": 1767225600},
        422,
        "validation",
        ["/occurred_at"],
        (),
        "",
    ),
    ("conversions", {"message_id": "m", "event": "e" * 65}, 422, "validation", ["/event"], (), ""),
    ("conversions", {"message_id": "m", "event": "x", "event_id": "e" * 129}, 422, "validation", ["/event_id"], (), ""),
    ("conversions", {"message_id": "m", "click_token": "t", "event": "x"}, 422, "validation", ["/click_token"], (), ""),
    ("conversions", {"message_id": 5, "event": "x"}, 422, "validation", ["/message_id"], (), ""),
    ("conversions", {"message_id": ["m"], "event": "x"}, 422, "validation", ["/message_id"], (), ""),
    ("conversions", {"message_id": "msg_nope", "event": "x"}, 422, "validation", ["/message_id"], (), ""),
    ("conversions", {"click_token": {"t": 1}, "event": "x"}, 422, "validation", ["/click_token"], (), ""),
    ("conversions", {"click_token": "../../etc", "event": "x"}, 422, "validation", ["/click_token"], (), ""),
    ("conversions", {"message_id": "msg_00000000000000000000000000", "event": "x"}, 404, "not-found", [], (), ""),
    ("conversions", {"click_token": "0000000000", "event": "x"}, 404, "not-found", [], (), ""),
    ("conversions", {"message_id": NUL, "event": "purchase"}, 404, "not-found", [], (), ""),
    # --- POST /v1/receipts/sandbox (signed: a provider, or a leaked secret, sending garbage) ---
    ("receipts", {"receipts": None}, 400, "malformed-receipt", [], (), ""),
    ("receipts", {"receipts": {"sid": "s"}}, 400, "malformed-receipt", [], (), ""),
    ("receipts", {"receipts": ["s"]}, 400, "malformed-receipt", [], (), ""),
    ("receipts", {"receipts": [{"sid": "s", "status": "bogus"}]}, 400, "malformed-receipt", [], (), ""),
    ("receipts", {"receipts": [{"sid": "s", "status": ["delivered"]}]}, 400, "malformed-receipt", [], (), ""),
    (
        "receipts",
        {"receipts": [{"sid": NUL, "status": "delivered"}]},
        400,
        "malformed-receipt",
        [],
        (),
        "",
    ),
    (
        "receipts",
        {"receipts": [{"sid": "s" * 1000, "status": "delivered"}]},
        400,
        "malformed-receipt",
        [],
        (),
        "",
    ),
    (
        "receipts",
        {"receipts": [{"sid": {"a": 1}, "status": "delivered"}]},
        400,
        "malformed-receipt",
        [],
        (),
        "",
    ),
    (
        "receipts",
        {"receipts": [{"sid": "s", "status": "delivered", "occurred_at": "yesterday"}]},
        400,
        "malformed-receipt",
        [],
        (),
        "",
    ),
    (
        "receipts",
        {"receipts": [{"sid": "s", "status": "delivered", "occurred_at": [1]}]},
        400,
        "malformed-receipt",
        [],
        (),
        "",
    ),
    (
        "receipts",
        {"receipts": [{"sid": "s", "status": "delivered", "error_code": {"a": 1}}]},
        400,
        "malformed-receipt",
        [],
        (),
        "",
    ),
    (
        "receipts",
        {"receipts": [{"sid": "s", "status": "delivered", "error_code": "e" * 1000}]},
        400,
        "malformed-receipt",
        [],
        (),
        "",
    ),
    (
        "receipts",
        {"receipts": [{"sid": "s", "status": "delivered", "reference": {"a": 1}}]},
        400,
        "malformed-receipt",
        [],
        (),
        "",
    ),
    (
        "receipts",
        {"receipts": [{"sid": "s", "status": "delivered", "reference": NUL}]},
        400,
        "malformed-receipt",
        [],
        (),
        "",
    ),
]


def _nul_refused_at_the_door(case: tuple[Any, ...]) -> tuple[Any, ...]:
    """A JSON body holding a NUL (as \\u0000, the only way JSON can carry one) is refused whole, before parsing:
    400 malformed-json naming "/" (gateway/api/bodies.py read_json). Receipts are parsed by the provider instead."""
    endpoint, body = case[0], case[1]
    if endpoint != "receipts" and b"\\u0000" in orjson.dumps(body):
        return (endpoint, body, 400, "malformed-json", ["/"], (), "")
    return case


FIELD_CASES = [_nul_refused_at_the_door(c) for c in FIELD_CASES]


def _case_id(case: Any) -> str:
    endpoint, body = case[0], case[1]
    text = orjson.dumps(body).decode()
    text = text.replace("\\u0000", "NUL").replace("x" * 100_000, "x*100000")
    return f"{endpoint}:{text[:70]}"


@pytest.mark.parametrize(
    ("endpoint", "body", "status", "slug", "named", "buggy_on", "bug"),
    FIELD_CASES,
    ids=[_case_id(c) for c in FIELD_CASES],
)
async def test_hostile_fields_are_refused_naming_the_field(
    request: pytest.FixtureRequest,
    start_gateway: GatewayStarter,
    endpoint: str,
    body: Any,
    status: int,
    slug: str,
    named: list[str],
    buggy_on: tuple[str, ...],
    bug: str,
) -> None:
    xfail_on(request, buggy_on, bug)
    async with start_gateway() as gw:
        response = await send(gw, endpoint, orjson.dumps(body))
        if endpoint == "batch" and status == 200:
            # A batch judges each item on its own: the item is refused, the batch answers 200.
            assert response.status == 200, (await response.read())[:300]
            results = (await response.json())["results"]
            assert [r["status"] for r in results] == [422]
            assert results[0]["problem"]["errors"][0]["field"] == "/messages/0/channel"
        else:
            answer = await problem(response, status, slug)
            if named:
                assert fields(answer)[: len(named)] == named or set(named) <= set(fields(answer)), fields(answer)
        await assert_store_empty(gw)


async def test_hostile_batch_items_are_refused_one_by_one(start_gateway: GatewayStarter) -> None:
    items = [
        {**SMS, "idempotency_key": 5},
        {**SMS, "idempotency_key": "k" * 1000},
        {**SMS, "idempotency_key": "has space"},
        {**SMS, "channel": ["sms"], "idempotency_key": "a"},
        {**SMS, "content": {"text": "x" * 100_000}, "idempotency_key": "b"},
        None,
        "x",
        [],
        5,
    ]
    async with start_gateway() as gw:
        response = await send(gw, "batch", orjson.dumps({"messages": items}))
        assert response.status == 200
        results = (await response.json())["results"]
        assert [r["status"] for r in results] == [422] * len(items)
        named = [r["problem"]["errors"][0]["field"] for r in results]
        assert named == [
            "/messages/0/idempotency_key",
            "/messages/1/idempotency_key",
            "/messages/2/idempotency_key",
            "/messages/3/channel",
            "/messages/4/content/text",
            *(f"/messages/{i}" for i in range(5, 9)),
        ]
        await assert_store_empty(gw)


async def test_a_nul_in_one_batch_item_refuses_the_whole_batch(start_gateway: GatewayStarter) -> None:
    body = {"messages": [{**SMS, "idempotency_key": "ok"}, {**SMS, "idempotency_key": NUL}]}
    async with start_gateway() as gw:
        answer = await problem(await send(gw, "batch", orjson.dumps(body)), 400, "malformed-json")
        assert fields(answer) == ["/"]
        await assert_store_empty(gw)


DUPLICATE_KEY_BODIES = [
    pytest.param(
        "messages",
        b'{"channel":"sms","channel":"fax","to":"+8613812345678","content":{"text":"x"}}',
        "/channel",
        id="messages-last-invalid",
    ),
    pytest.param(
        "messages",
        b'{"channel":"fax","channel":"sms","to":"+8613812345678","content":{"text":"x"}}',
        "/channel",
        id="messages-last-valid",
    ),
    pytest.param(
        "messages",
        b'{"channel":"sms","to":"+8613812345678","content":{"text":"x","text":"y"}}',
        "/text",
        id="messages-nested",
    ),
    pytest.param(
        "messages",
        b'{"channel" : "sms", "to":"+8613812345678","content":{"text":"x"},"channel":"sms"}',
        "/channel",
        id="messages-spaced-colon-same-value",
    ),
    pytest.param(
        "batch",
        b'{"messages":[{"channel":"sms","to":"+8613812345678","to":"+8613812345679","content":{"text":"x"}}]}',
        "/to",
        id="batch-item",
    ),
    pytest.param(
        "messages",
        b'{"to":"+8613812345601","channel":"sms","content":{"text":"hi \\"\\u003a"},"to":"+8613812345604"}',
        "/to",
        id="messages-escaped-quote-colon",
    ),
    pytest.param(
        "batch",
        b'{"messages":[{"to":"+8613812345601","channel":"sms","content":{"text":"hi \\"\\u003a"},'
        b'"to":"+8613812345604"}]}',
        "/to",
        id="batch-escaped-quote-colon",
    ),
    pytest.param(
        "messages",
        b'{"channel":"sms","to":"+8613812345678","content":{"text":"x"},"metadata":{"\\u003a":1,":":2}}',
        "/:",
        id="messages-key-starting-with-a-colon",
    ),
    pytest.param(
        "suppressions", b'{"address":"+8613812345678","address":5,"user_id":7}', "/address", id="suppr-last-invalid"
    ),
    pytest.param("suppressions", b'{"address":5,"address":"+8613812345678"}', "/address", id="suppr-last-valid"),
    pytest.param("blocklist", b'{"words":["casino"],"words":"casino"}', "/words", id="blocklist-last-invalid"),
    pytest.param("blocklist", b'{"words":"casino","words":["casino"]}', "/words", id="blocklist-last-valid"),
]


@pytest.mark.parametrize(("endpoint", "raw", "named"), DUPLICATE_KEY_BODIES)
async def test_duplicate_keys_are_400_naming_the_key(
    start_gateway: GatewayStarter, endpoint: str, raw: bytes, named: str
) -> None:
    """Last-one-wins would store a value other than the one a proxy or signature check looked at."""
    async with start_gateway() as gw:
        body = await problem(await send(gw, endpoint, raw), 400, "malformed-json")
        assert fields(body) == [named]
        assert "repeats the key" in body["detail"]
        await assert_store_empty(gw)


async def test_a_body_too_deep_for_the_exact_key_check_is_400_not_500(start_gateway: GatewayStarter) -> None:
    """orjson takes 1,024 levels, the standard library's parser (the exact check) fewer."""
    deep = b'{"a" :' * 1000 + b"1" + b"}" * 1000  # the spaced colon sends it to the exact check
    async with start_gateway() as gw:
        body = await problem(await send(gw, "messages", deep), 400, "malformed-json")
        assert fields(body) == ["/"]
        assert "nests too deeply" in body["detail"]
        await assert_store_empty(gw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b'{"channel":"sms","to":"+8613812345678","content":{"text":"say \\"hi\\": ok"}}', id="quote-colon"
        ),
        pytest.param(b'{"channel" :"sms","to":"+8613812345678","content":{"text":"x"}}', id="spaced-colon"),
        pytest.param(b'{"channel":"sms","to":"+8613812345678","content":{"text":"\\u0022:"}}', id="escaped-quote"),
    ],
)
async def test_keys_that_only_look_repeated_are_accepted(start_gateway: GatewayStarter, raw: bytes) -> None:
    async with start_gateway() as gw:
        response = await send(gw, "messages", raw)
        assert response.status == 202, (await response.read())[:300]


# ---------------------------------------------------------------------------------------------------------------
# Headers, query strings and paths
# ---------------------------------------------------------------------------------------------------------------

INVALID_JOB = orjson.dumps({**SMS, "channel": "fax"})


async def test_very_many_query_parameters_do_not_change_the_answer(start_gateway: GatewayStarter) -> None:
    query = "&".join(f"p{i}=1" for i in range(600))  # ~5.5 kB, inside the request-line limit
    async with start_gateway() as gw:
        body = await problem(await send(gw, "messages", INVALID_JOB, path=f"/v1/messages?{query}"), 422, "validation")
        assert fields(body) == ["/channel"]
        listing = await gw.session.get(f"{gw.url}/v1/messages?{query}", headers=AUTH)
        body = await problem(listing, 400, "invalid-query")
        assert len(body["errors"]) == 600
        await assert_store_empty(gw)


@pytest.mark.parametrize(
    ("where", "size", "status", "slug"),
    [
        ("query", 70_000, 414, "uri-too-long"),
        ("header", 9_000, 431, "header-fields-too-large"),
        ("header", 100_000, 431, "header-fields-too-large"),
        ("idempotency-key", 9_000, 431, "header-fields-too-large"),
    ],
)
async def test_an_over_long_request_line_or_header_is_a_problem_that_echoes_nothing(
    start_gateway: GatewayStarter, where: str, size: int, status: int, slug: str
) -> None:
    """The HTTP parser refuses these before any handler; the answer is still problem+json."""
    async with start_gateway() as gw:
        path, headers = "/v1/messages", dict(JSON)
        if where == "query":
            path += "?" + "&".join(f"evil{i}=1" for i in range(size // 7))
        elif where == "header":
            headers["X-Padding"] = "evil" * (size // 4)
        else:
            headers["Idempotency-Key"] = "evil" * (size // 4)
        response = await send(gw, "messages", orjson.dumps(SMS), headers, path=path)
        body = await problem(response, status, slug)
        assert "evil" not in orjson.dumps(body).decode()
        await assert_store_empty(gw)


async def test_a_request_that_is_not_http_is_a_problem(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        url = URL(gw.url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(b"GET /v1/messages HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split(b" ")[1] == b"400", head
        assert b"content-type: application/problem+json" in head.lower()
        assert orjson.loads(body)["type"] == "/problems/bad-request"
        await assert_store_empty(gw)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/messages?campaign=%00"),
        ("GET", "/v1/messages?to=%00"),
        ("GET", "/v1/messages?user_id=a%00b"),
        ("GET", "/v1/messages/msg_%00"),
        ("GET", "/v1/suppressions?address=%00"),
        ("DELETE", "/v1/suppressions?address=%00"),
        ("GET", "/v1/reports/campaigns/%00"),
        ("GET", "/v1/reports/failures?since=%00"),
        ("GET", "/v1/events?since=%00"),
        ("GET", "/v1/blocklists/%00"),
        ("GET", "/c/%00"),
        ("POST", "/v1/messages?x=%00"),
        ("POST", "/v1/receipts/sandbox?x=%00"),
    ],
)
async def test_nul_bytes_in_queries_and_paths_are_400(start_gateway: GatewayStarter, method: str, path: str) -> None:
    """Refused before any handler: PostgreSQL cannot even compare a text with a NUL in it."""
    async with start_gateway() as gw:
        response = await gw.session.request(method, gw.url + path, headers=JSON, data=orjson.dumps(SMS))
        await problem(response, 400, "bad-request")
        await assert_store_empty(gw)


async def test_the_printable_text_backslash_u0000_is_not_mistaken_for_a_nul(start_gateway: GatewayStarter) -> None:
    text = "path C:\\u0000 is fine"  # a backslash, then u0000: no NUL character
    async with start_gateway() as gw:
        response = await send(gw, "messages", orjson.dumps({**SMS, "content": {"text": text}}))
        assert response.status == 202, (await response.read())[:300]
        stored = await gw.get(f"/v1/messages/{(await response.json())['id']}")
        assert (await stored.json())["content"]["text"] == text


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/receipts/sandbox", "/v1/inbound/sandbox"])
async def test_a_body_that_arrives_too_slowly_is_408_and_nothing_is_written(
    start_gateway: GatewayStarter, path: str
) -> None:
    """A client that announces a body and then stalls holds a connection: it gets a deadline."""
    async with start_gateway({"GATEWAY_API__BODY_READ_TIMEOUT_SECONDS": "0.5"}) as gw:
        url = URL(gw.url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        body = orjson.dumps(SMS)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {url.host}\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body[:10])  # and then nothing more
        await writer.drain()
        head_bytes = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert head_bytes.split(b" ")[1] == b"408", head_bytes
        length = int(next(h for h in head_bytes.lower().split(b"\r\n") if h.startswith(b"content-length:"))[15:])
        payload = await reader.readexactly(length)
        writer.close()
        assert orjson.loads(payload)["type"] == "/problems/request-timeout"
        await assert_store_empty(gw)

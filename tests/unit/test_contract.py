"""The contract's own rules: how validation failures read, and what the generated document promises."""

from __future__ import annotations

from typing import Any

from gateway.contract.document import openapi_document
from gateway.contract.jobs import validate_job
from gateway.contract.messages import MessageQuery


def test_each_failure_is_named_by_its_pointer_and_said_in_plain_words() -> None:
    body = {
        "channel": "email",
        "to": "nobody",
        "content": {"subject": "two\nlines", "text": "  "},
        "category": "urgent",
        "campaign": "x" * 129,
        "metadata": [],
        "fallback": ["sms"],
    }
    _, errors = validate_job(body)
    assert [(e.field, e.message) for e in errors] == [
        ("/category", "must be marketing or transactional"),
        ("/campaign", "must be at most 128 characters"),
        ("/metadata", "must be a JSON object"),
        ("/to", "must be an e-mail address, e.g. ann@example.com or 张三 <zhang@example.cn>"),
        ("/content/subject", "must be one line, not empty"),
        ("/content/text", "must not be empty or contain NUL characters"),
        ("/fallback/0", "sms cannot reach an e-mail address; the channels that can: email"),
    ]


def test_no_type_is_coerced() -> None:
    _, errors = validate_job({"channel": "sms", "to": 8613812345678, "content": {"text": "hi"}, "user_id": 5})
    assert [(e.field, e.message) for e in errors] == [("/user_id", "must be a string"), ("/to", "must be a string")]


def test_query_parameters_are_named_bare_and_read_from_text() -> None:
    query, errors = MessageQuery.judge({"limit": "20", "status": "failed,expired"})
    assert errors == [] and query is not None and query.limit == 20 and query.statuses == ("failed", "expired")
    _, errors = MessageQuery.judge({"limit": "0", "colour": "red", "status": "lost"})
    assert [(e.field, e.message) for e in errors] == [
        (
            "status",
            "must be one or more of queued, deferred, sending, sent, delivered, undelivered, failed, "
            "rejected, suppressed, expired, unknown, held_out, comma-separated",
        ),
        ("limit", "must be at least 1"),
        ("colour", "is not a known query parameter"),
    ]


def _request_schemas(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                found.append((f"{method.upper()} {path}", media))
    return found


def test_every_declared_request_body_carries_an_example() -> None:
    from gateway.contract.rooms import ALL_OPERATIONS

    declared = {f"{op.method.upper()} {op.path}" for op in ALL_OPERATIONS}
    with_example = {label for label, media in _request_schemas(openapi_document()) if media.get("examples")}
    with_body = {label for label, _ in _request_schemas(openapi_document())}
    assert with_body <= declared
    assert with_body - with_example == set()


def test_request_objects_refuse_fields_they_do_not_name() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for name in ("SmsJob", "PushContent", "EmailBatchItem", "BatchRequest"):
        assert schemas[name]["additionalProperties"] is False, name

"""The OpenAPI 3.1 document of the API. Schemas are JSON Schema 2020-12, so tests validate real
requests and responses against them directly."""

from __future__ import annotations

from functools import cache
from typing import Any

from gateway.domain.models import Category, Channel, Status

CHANNELS = [c.value for c in Channel]
STATUSES = [s.value for s in Status]
NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _query(name: str, **schema: Any) -> dict[str, Any]:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# Any JSON value; an integer only within 64 bits (the parse would round one beyond).
EXACT_INTEGER = {"if": {"type": "integer"}, "then": {"minimum": -(2**63), "maximum": 2**64 - 1}}

SEND_JOB: dict[str, Any] = {
    "type": "object",
    "required": ["channel", "to", "content"],
    "additionalProperties": False,
    "properties": {
        "channel": {"enum": CHANNELS},
        "to": {
            "type": "string",
            "minLength": 1,
            "description": (
                "E.164 for sms/voice, an address for email (a display name and an internationalised address "
                "allowed: 张三 <zhang@例子.中国>), a device token for push, an https URL for webhook"
            ),
        },
        "content": {
            "type": "object",
            "description": "sms/voice: {text}; push: {title, body, data?}; "
            "email: {subject, text, html?}; webhook: {payload}",
        },
        "category": {"enum": [c.value for c in Category], "default": "marketing"},
        "user_id": {"type": "string", "maxLength": 128},
        "campaign": {"type": "string", "maxLength": 128},
        "variant": {"type": "string", "maxLength": 128},
        "send_at": {"type": "string", "format": "date-time"},
        "expires_at": {
            "type": "string",
            "format": "date-time",
            "description": "when the job is no longer worth sending; must be in the future and after send_at",
        },
        "fallback": {
            "type": "array",
            "items": {"enum": CHANNELS},
            "maxItems": 4,
            "description": "channels to try next; only those that take the job's address (sms and voice share a "
            "phone number): another is refused naming /fallback/<i> and the channels that can",
        },
        "channel_order": {
            "enum": ["listed", "cost"],
            "default": "listed",
            "description": "cost: of `channel` and `fallback`, the channels that take this address are tried "
            "cheapest first by the operator's routing.costs (decided at accept; the message shows the order)",
        },
        "metadata": {
            "type": "object",
            "description": "a small JSON object; integers beyond 64 bits are refused (send them as strings)",
            "additionalProperties": EXACT_INTEGER,
        },
        "tz": {"type": "string", "description": "the recipient's IANA time zone; default: from the number"},
    },
}

MESSAGE_CORE = {
    "id": {"type": "string", "pattern": "^msg_[0-9A-Z]{26}$"},
    "status": {"enum": STATUSES},
    "channel": {"enum": CHANNELS},
    "to": {"type": "string"},
    "category": {"enum": [c.value for c in Category]},
    "user_id": NULLABLE_STR,
    "campaign": NULLABLE_STR,
    "variant": NULLABLE_STR,
    "send_at": NULLABLE_TIME,
    "expires_at": NULLABLE_TIME,
    "idempotency_key": NULLABLE_STR,
    "created_at": {"type": "string", "format": "date-time"},
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
    "SendJob": SEND_JOB,
    "AcceptedMessage": {
        "type": "object",
        "additionalProperties": False,
        "required": list(MESSAGE_CORE),
        "properties": MESSAGE_CORE,
    },
    "Message": {
        "type": "object",
        "required": [*MESSAGE_CORE, "reason", "content", "provider", "attempt_count", "updated_at"],
        "properties": {
            **MESSAGE_CORE,
            "reason": NULLABLE_STR,
            "content": {
                "type": ["object", "null"],
                "description": "null once the retention policy purged it (retention.content_days)",
            },
            "fallback": {"type": "array", "items": {"enum": CHANNELS}},
            "metadata": {"type": "object"},
            "tz": NULLABLE_STR,
            "provider": NULLABLE_STR,
            "provider_message_id": NULLABLE_STR,
            "sender": NULLABLE_STR,
            "attempt_count": {"type": "integer", "minimum": 0},
            "next_attempt_at": NULLABLE_TIME,
            "error_code": NULLABLE_STR,
            "error_message": NULLABLE_STR,
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "MessageDetail": {
        "allOf": [
            _ref("Message"),
            {
                "type": "object",
                "required": ["attempts", "receipts", "clicks", "events"],
                "properties": {
                    "attempts": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["number", "provider", "outcome"],
                            "properties": {
                                "number": {"type": "integer"},
                                "provider": {"type": "string"},
                                "outcome": {"type": "string"},
                            },
                        },
                    },
                    "receipts": {"type": "array", "items": {"type": "object", "required": ["provider", "status"]}},
                    "clicks": {"type": "array"},
                    "events": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["at", "type", "status", "reason"],
                            "properties": {
                                "at": {"type": "string", "format": "date-time"},
                                "type": {"type": "string"},
                                "status": NULLABLE_STR,
                                "reason": NULLABLE_STR,
                                "detail": {"type": "object"},
                            },
                        },
                    },
                },
            },
        ],
    },
    "MessageList": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {"data": {"type": "array", "items": _ref("Message")}, "next_cursor": NULLABLE_STR},
    },
    "BatchRequest": {
        "type": "object",
        "required": ["messages"],
        "additionalProperties": False,
        "properties": {
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": {
                    "allOf": [
                        {
                            "type": "object",
                            "properties": {"idempotency_key": {"type": "string", "minLength": 1, "maxLength": 255}},
                        }
                    ],
                },
            }
        },
    },
    "BatchResponse": {
        "type": "object",
        "required": ["accepted", "results"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "status"],
                    "properties": {
                        "index": {"type": "integer"},
                        "status": {"enum": [202, 409, 422]},
                        "id": {"type": "string"},
                        "replayed": {"type": "boolean"},
                        "problem": _ref("Problem"),
                    },
                },
            },
        },
    },
    "Suppression": {
        "type": "object",
        "required": ["reason", "source", "created_at"],
        "properties": {
            "address": {"type": "string"},
            "user_id": {"type": "string"},
            "reason": {"type": "string"},
            "source": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "SuppressionRequest": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "anyOf": [{"required": ["address"]}, {"required": ["user_id"]}],
        "description": "address, user_id or both (each is suppressed); each judged as a send job's to and user_id",
        "properties": {
            "address": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2048,
                "description": "a phone number in E.164 form, an e-mail address or an https URL; "
                "a device token with channel push",
            },
            "channel": {"enum": CHANNELS, "description": "judge the address by this channel's rules for `to`"},
            "user_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "pattern": "^[^\\x00-\\x1f]*[^\\s\\x00-\\x1f][^\\x00-\\x1f]*$",
            },
            "reason": {"type": "string", "minLength": 1, "maxLength": 128, "default": "opt_out"},
        },
    },
    "Number": {
        "type": "object",
        "required": ["id", "pool", "sender", "kind", "channel", "state", "reason", "state_since", "health"],
        "properties": {
            "id": {"type": "string", "pattern": "^num_[0-9a-f]{16}$"},
            "pool": {"type": "string"},
            "sender": {"type": "string", "description": "E.164 number, short code or alphanumeric id"},
            "kind": {"enum": ["number", "short_code", "alphanumeric"]},
            "provider": {**NULLABLE_STR, "description": "null: any provider of the channel"},
            "channel": {"enum": ["sms", "voice"]},
            "countries": {"type": "array", "items": {"type": "string"}, "description": "empty: any"},
            "categories": {"type": "array", "items": {"enum": [c.value for c in Category]}},
            "region": NULLABLE_STR,
            "daily_cap": {"type": ["integer", "null"]},
            "daily_cap_now": {
                "type": ["integer", "null"],
                "description": "the cap in force now: the lowest of daily_cap, warm-up and probation caps",
            },
            "rate": {"type": ["number", "null"], "description": "messages per second"},
            "warmup": {"type": "boolean"},
            "state": {"enum": ["active", "suspect", "quarantined", "probation", "retired"]},
            "reason": {**NULLABLE_STR, "description": "why it is in this state (the last change's reason)"},
            "state_since": {"type": "string", "format": "date-time"},
            "cooldown_until": NULLABLE_TIME,
            "checked_at": {**NULLABLE_TIME, "description": "the last reputation check"},
            "health": {
                "type": "object",
                "description": "evidence in the sliding window since the last state change that reset it",
                "properties": {
                    "sent": {"type": "integer"},
                    "delivered": {"type": "integer"},
                    "failed": {"type": "integer"},
                    "filtered": {"type": "integer"},
                    "opt_out": {"type": "integer"},
                    "failure_rate": {"type": "number"},
                    "window_seconds": {"type": "number"},
                },
            },
            "source": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "events": {
                "type": "array",
                "description": "state changes, newest first (GET /v1/numbers/{id} only)",
                "items": {
                    "type": "object",
                    "required": ["at", "to", "reason", "evidence", "actor"],
                    "properties": {
                        "at": {"type": "string", "format": "date-time"},
                        "from": NULLABLE_STR,
                        "to": {"type": "string"},
                        "reason": {"type": "string"},
                        "evidence": {"type": "object"},
                        "actor": {"type": "string"},
                    },
                },
            },
        },
    },
    "NumberList": {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"type": "array", "items": _ref("Number")}},
    },
    "NumberAttributes": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "kind": {"enum": ["number", "short_code", "alphanumeric"], "default": "number"},
            "provider": NULLABLE_STR,
            "channel": {"enum": ["sms", "voice"], "default": "sms"},
            "countries": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z]{2}$"}},
            "categories": {"type": "array", "items": {"enum": [c.value for c in Category]}},
            "region": {"type": ["string", "null"], "maxLength": 64},
            "daily_cap": {"type": ["integer", "null"], "minimum": 1, "maximum": 2**31 - 1},
            "rate": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "warmup": {"type": "boolean"},
        },
    },
    "NumberRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["pool", "sender"],
        "properties": {
            "pool": {"type": "string", "pattern": "^[A-Za-z0-9_.\\-]{1,64}$"},
            "sender": {"type": "string", "minLength": 1, "maxLength": 64},
            "kind": {"enum": ["number", "short_code", "alphanumeric"], "default": "number"},
            "provider": NULLABLE_STR,
            "channel": {"enum": ["sms", "voice"], "default": "sms"},
            "countries": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z]{2}$"}},
            "categories": {"type": "array", "items": {"enum": [c.value for c in Category]}},
            "region": {"type": ["string", "null"], "maxLength": 64},
            "daily_cap": {"type": ["integer", "null"], "minimum": 1, "maximum": 2**31 - 1},
            "rate": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "warmup": {"type": "boolean"},
        },
    },
    "NumberAction": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 200}},
    },
    "SuppressionList": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {"data": {"type": "array", "items": _ref("Suppression")}, "next_cursor": NULLABLE_STR},
    },
    "InboundSummary": {
        "type": "object",
        "required": ["opted_out", "opted_in", "other", "unmatched"],
        "properties": {k: {"type": "integer"} for k in ("opted_out", "opted_in", "other", "unmatched")},
    },
    "ContentCheckRequest": {
        "type": "object",
        "required": ["channel"],
        "description": "give `text` (one text) or `content` (a job's content, checked field by field), not both",
        "additionalProperties": False,
        "properties": {
            "channel": {"enum": CHANNELS},
            "to": {"type": "string", "description": "E.164 picks the carrier's word lists"},
            "text": {"type": "string", "minLength": 1},
            "content": {
                "type": "object",
                "description": "sms/voice {text}, push {title, body}, email {subject, text}",
                "additionalProperties": {"type": "string"},
            },
            "category": {"enum": [c.value for c in Category], "default": "marketing"},
            "provider": {"type": "string", "description": "apply that route's rules (e.g. China marketing)"},
        },
    },
    "ContentReport": {
        "type": "object",
        "required": ["ok", "encoding", "segments", "violations", "fixed_text", "fixed"],
        "properties": {
            "ok": {"type": "boolean"},
            "encoding": {"enum": ["GSM-7", "UCS-2", "UTF-8"]},
            "segments": {"type": "integer", "minimum": 0},
            "violations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["rule", "severity", "field", "start", "end", "match", "message"],
                    "properties": {
                        "rule": {"type": "string"},
                        "severity": {"enum": ["block", "warn"]},
                        "field": {
                            "type": "string",
                            "description": "JSON pointer of the text the span points into: /text, /content/subject",
                        },
                        "start": {"type": "integer"},
                        "end": {"type": "integer"},
                        "match": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
            "fixed_text": {
                "type": "string",
                "description": "the fixed text (of the main field: email text, push body)",
            },
            "fixed": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "each checked field, fixed: {text} or {subject, text} / {title, body}",
            },
        },
    },
    "Blocklist": {
        "type": "object",
        "required": ["name", "severity", "words", "updated_at"],
        "properties": {
            "name": {"type": "string"},
            "severity": {"enum": ["block", "warn"]},
            "words": {"type": "array", "items": {"type": "string"}},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "BlocklistRequest": {
        "type": "object",
        "required": ["words"],
        "additionalProperties": False,
        "properties": {
            "words": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "severity": {"enum": ["block", "warn"], "default": "block"},
        },
    },
    "FailureReport": {
        "type": "object",
        "required": ["since", "until", "group_by", "total", "groups"],
        "properties": {
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "group_by": {"type": "array", "items": {"type": "string"}},
            "total": {"type": "integer"},
            "groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["count", "first_seen", "last_seen", "sample_ids"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 1},
                        "first_seen": {"type": "string", "format": "date-time"},
                        "last_seen": {"type": "string", "format": "date-time"},
                        "sample_ids": {"type": "array", "items": {"type": "string"}},
                        "retry_helps": {"type": "boolean"},
                        "action": {"type": "string"},
                    },
                },
            },
        },
    },
    "RequeueRequest": {
        "type": "object",
        "required": ["filter"],
        "additionalProperties": False,
        "properties": {
            "filter": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {
                    **{
                        n: {"type": "string"}
                        for n in ("status", "reason", "provider", "error_code", "campaign", "channel", "sender")
                    },
                    "since": {"type": "string", "format": "date-time"},
                    "until": {"type": "string", "format": "date-time"},
                },
            },
            "dry_run": {"type": "boolean", "default": True},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
        },
    },
    "RequeueResult": {
        "type": "object",
        "required": ["dry_run", "matched", "requeueable", "requeued", "skipped", "sample_ids"],
        "properties": {
            "dry_run": {"type": "boolean"},
            "matched": {"type": "integer"},
            "requeueable": {"type": "integer"},
            "requeued": {"type": "integer"},
            "skipped": {"type": "object", "additionalProperties": {"type": "integer"}},
            "sample_ids": {"type": "array", "items": {"type": "string"}},
        },
    },
    "ReceiptSummary": {
        "type": "object",
        "required": ["applied", "duplicate", "held"],
        "properties": {"applied": {"type": "integer"}, "duplicate": {"type": "integer"}, "held": {"type": "integer"}},
    },
    "AliyunPushAnswer": {
        "type": "object",
        "description": "the answer Alibaba Cloud SMS documents for SmsReport and SmsUp pushes",
        "required": ["code", "msg"],
        "properties": {"code": {"const": 0}, "msg": {"type": "string"}},
    },
}


def _callback_answers(summary: str, description: str, twiml: bool) -> dict[str, Any]:
    """A provider callback is answered in the form that provider documents: aliyun gets
    {"code": 0, ...}, twilio TwiML for an incoming message and 204 for a status callback, others
    our own summary."""
    content: dict[str, Any] = {"application/json": {"schema": {"anyOf": [_ref(summary), _ref("AliyunPushAnswer")]}}}
    if twiml:
        content["text/xml"] = {
            "schema": {"type": "string"},
            "example": '<?xml version="1.0" encoding="UTF-8"?><Response/>',
        }
    return {"description": description, "content": content}


BEARER: list[dict[str, list[str]]] = [{"apiKey": []}]
NUMBER_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
AUTH_ERRORS = {
    "429": _problem_response("over the tenant's request rate; see Retry-After"),
    "401": _problem_response("missing, unknown, revoked or expired API key"),
    "403": _problem_response("the key lacks the needed scope"),
    "503": _problem_response("the database is unavailable just now; see Retry-After"),
}


BLOCKLIST_OPERATIONS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "get",
        "One list",
        {
            "responses": {
                "200": _json(_ref("Blocklist"), "the list"),
                **AUTH_ERRORS,
                "404": _problem_response("no such list"),
            }
        },
    ),
    (
        "put",
        "Create or replace a list; applied to checks at once, audited",
        {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("BlocklistRequest")}},
            },
            "responses": {
                "200": _json(_ref("Blocklist"), "replaced"),
                "201": _json(_ref("Blocklist"), "created"),
                "400": _problem_response("malformed JSON"),
                **AUTH_ERRORS,
                "404": _problem_response("invalid list name"),
                "415": _problem_response("not application/json"),
                "422": _problem_response("empty or duplicate words, invalid severity"),
            },
        },
    ),
    (
        "delete",
        "Delete a list",
        {
            "responses": {
                "204": {"description": "deleted"},
                **AUTH_ERRORS,
                "404": _problem_response("no such list"),
            }
        },
    ),
]


@cache
def openapi_document() -> dict[str, Any]:
    idempotency_header = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
    }
    replay_headers = {
        "Location": {"schema": {"type": "string"}},
        "Idempotent-Replayed": {
            "schema": {"enum": ["true"]},
            "description": "present when this is the answer to an earlier request",
        },
    }
    list_params = [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in [
            ("campaign", {"type": "string"}),
            ("status", {"type": "string", "description": "comma-separated statuses"}),
            ("to", {"type": "string"}),
            ("user_id", {"type": "string"}),
            ("since", {"type": "string", "format": "date-time"}),
            ("until", {"type": "string", "format": "date-time"}),
            ("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
            ("cursor", {"type": "string"}),
        ]
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "delivery-gateway",
            "version": "1",
            "description": "Send jobs in, delivered messages out: SMS, voice, push, email and webhooks, "
            "without over-contacting anyone, losing or duplicating a message.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/messages": {
                "post": {
                    "operationId": "createMessage",
                    "summary": "Accept one send job",
                    "security": BEARER,
                    "parameters": [idempotency_header],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SendJob")}}},
                    "responses": {
                        "202": {
                            "description": "accepted and durable",
                            "headers": replay_headers,
                            "content": {"application/json": {"schema": _ref("AcceptedMessage")}},
                        },
                        "400": _problem_response("malformed JSON or Idempotency-Key"),
                        **AUTH_ERRORS,
                        "409": _problem_response("a request with this Idempotency-Key is still being processed"),
                        "413": _problem_response("body too large"),
                        "415": _problem_response("not application/json"),
                        "422": _problem_response("invalid job, or Idempotency-Key reused with a different body"),
                    },
                },
                "get": {
                    "operationId": "listMessages",
                    "summary": "The delivery log, newest first",
                    "security": BEARER,
                    "parameters": list_params,
                    "responses": {
                        "200": _json(_ref("MessageList"), "a page of messages"),
                        "400": _problem_response("invalid query parameter"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/v1/messages/batch": {
                "post": {
                    "operationId": "createMessageBatch",
                    "summary": "Accept up to 1000 send jobs, each judged on its own",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("BatchRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("BatchResponse"), "one result per item"),
                        "400": _problem_response("malformed JSON"),
                        **AUTH_ERRORS,
                        "413": _problem_response("too many items or body too large"),
                        "415": _problem_response("not application/json"),
                        "422": _problem_response("not a batch, or an integer beyond 64 bits in an item"),
                    },
                },
            },
            "/v1/messages/{id}": {
                "get": {
                    "operationId": "getMessage",
                    "summary": "A message with its attempts, receipts, clicks and events",
                    "security": BEARER,
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _json(_ref("MessageDetail"), "the message"),
                        **AUTH_ERRORS,
                        "404": _problem_response("no such message for this tenant"),
                    },
                },
            },
            "/v1/messages/{id}/retry": {
                "post": {
                    "operationId": "retryMessage",
                    "summary": "Requeue one failed, unknown, undelivered or expired message; audited",
                    "security": BEARER,
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "202": _json({"type": "object", "required": ["id", "status"]}, "requeued"),
                        **AUTH_ERRORS,
                        "404": _problem_response("no such message for this tenant"),
                        "409": _problem_response("delivered, suppressed, rejected or still in flight; or expired"),
                    },
                },
            },
            "/v1/messages/requeue": {
                "post": {
                    "operationId": "requeueMessages",
                    "summary": "Requeue failed messages by filter; dry_run (the default) shows what would be requeued",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("RequeueRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("RequeueResult"), "what matched and what was (or would be) requeued"),
                        "400": _problem_response("malformed JSON"),
                        **AUTH_ERRORS,
                        "415": _problem_response("not application/json"),
                        "422": _problem_response("invalid filter"),
                    },
                },
            },
            "/v1/reports/failures": {
                "get": {
                    "operationId": "failureReport",
                    "summary": "Failed sends grouped, with counts, first/last seen, samples and whether a retry helps",
                    "security": BEARER,
                    "parameters": [
                        _query("since", type="string", format="date-time"),
                        _query("until", type="string", format="date-time"),
                        {
                            "name": "group_by",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "comma-separated: reason, provider, error_code, sender, campaign, channel, "
                            "status (default reason,provider,error_code)",
                        },
                        {"name": "status", "in": "query", "required": False, "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(_ref("FailureReport"), "the report"),
                        "400": _problem_response("invalid query parameter"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/v1/receipts/{provider}": {
                "post": {
                    "operationId": "postReceipts",
                    "summary": "Delivery receipts in the provider's own wire format",
                    "parameters": [{"name": "provider", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "requestBody": {"required": True, "content": {"*/*": {"schema": {}}}},
                    "responses": {
                        "200": _callback_answers("ReceiptSummary", "receipts recorded", twiml=False),
                        "204": {"description": "receipts recorded (twilio status callbacks)"},
                        "400": _problem_response("not a receipt of this provider"),
                        "401": _problem_response("signature missing, wrong or stale"),
                        "404": _problem_response("unknown provider"),
                    },
                },
            },
            "/v1/inbound/{provider}": {
                "post": {
                    "operationId": "postInbound",
                    "summary": "Replies from recipients; opt-out keywords (STOP, 退订, ...) suppress the sender",
                    "parameters": [{"name": "provider", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "requestBody": {"required": True, "content": {"*/*": {"schema": {}}}},
                    "responses": {
                        "200": _callback_answers(
                            "InboundSummary", "replies handled (twilio: empty TwiML, no reply sent)", twiml=True
                        ),
                        "400": _problem_response("not a callback of this provider"),
                        "401": _problem_response("signature missing, wrong or stale"),
                        "404": _problem_response("unknown provider"),
                    },
                },
            },
            "/v1/suppressions": {
                "get": {
                    "operationId": "listSuppressions",
                    "summary": "The suppression list (opt-outs)",
                    "security": BEARER,
                    "parameters": [
                        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                        for n in ("address", "user_id", "limit", "cursor")
                    ],
                    "responses": {
                        "200": _json(_ref("SuppressionList"), "a page of suppressions"),
                        "400": _problem_response("invalid query parameter"),
                        **AUTH_ERRORS,
                    },
                },
                "post": {
                    "operationId": "addSuppression",
                    "summary": "Suppress a recipient: an address, a user_id, or both at once",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("SuppressionRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("Suppression"), "already suppressed"),
                        "201": _json(_ref("Suppression"), "suppressed"),
                        "400": _problem_response("malformed JSON"),
                        **AUTH_ERRORS,
                        "415": _problem_response("not application/json"),
                        "422": _problem_response("an address or user_id a send job could not have; unknown field"),
                    },
                },
                "delete": {
                    "operationId": "deleteSuppression",
                    "summary": "Lift a suppression (?address=, ?user_id=, or both)",
                    "security": BEARER,
                    "parameters": [
                        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                        for n in ("address", "user_id")
                    ],
                    "responses": {
                        "204": {"description": "lifted"},
                        "400": _problem_response("no recipient named"),
                        **AUTH_ERRORS,
                        "404": _problem_response("not on the list"),
                    },
                },
            },
            "/v1/numbers": {
                "get": {
                    "operationId": "listNumbers",
                    "summary": "Sender numbers with their state, health counts and last reason",
                    "security": BEARER,
                    "parameters": [
                        _query("pool"),
                        _query("state", enum=["active", "suspect", "quarantined", "probation", "retired"]),
                    ],
                    "responses": {
                        "200": _json(_ref("NumberList"), "the numbers"),
                        "400": _problem_response("invalid query parameter"),
                        **AUTH_ERRORS,
                    },
                },
                "post": {
                    "operationId": "createNumber",
                    "summary": "Add a sender to a pool (admin scope)",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NumberRequest")}},
                    },
                    "responses": {
                        "201": _json(_ref("Number"), "added"),
                        "400": _problem_response("malformed JSON"),
                        **AUTH_ERRORS,
                        "409": _problem_response("the pool already has this sender"),
                        "415": _problem_response("not application/json"),
                        "422": _problem_response("invalid field"),
                    },
                },
            },
            "/v1/numbers/{id}": {
                "get": {
                    "operationId": "getNumber",
                    "parameters": [NUMBER_ID],
                    "summary": "One number with its state changes and their evidence",
                    "security": BEARER,
                    "responses": {
                        "200": _json(_ref("Number"), "the number"),
                        **AUTH_ERRORS,
                        "404": _problem_response("no such number"),
                    },
                },
                "patch": {
                    "operationId": "updateNumber",
                    "parameters": [NUMBER_ID],
                    "summary": "Change a number's attributes (not its pool, sender or state; admin scope)",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NumberAttributes")}},
                    },
                    "responses": {
                        "200": _json(_ref("Number"), "changed"),
                        "400": _problem_response("malformed JSON"),
                        **AUTH_ERRORS,
                        "404": _problem_response("no such number"),
                        "415": _problem_response("not application/json"),
                        "422": _problem_response("invalid field"),
                    },
                },
                "delete": {
                    "operationId": "deleteNumber",
                    "parameters": [NUMBER_ID],
                    "summary": "Remove a number (admin scope); its sticky recipients get another",
                    "security": BEARER,
                    "responses": {
                        "204": {"description": "removed"},
                        **AUTH_ERRORS,
                        "404": _problem_response("no such number"),
                    },
                },
            },
            **{
                f"/v1/numbers/{{id}}/{action}": {
                    "post": {
                        "operationId": f"{action}Number",
                        "summary": summary,
                        "security": BEARER,
                        "parameters": [NUMBER_ID],
                        "requestBody": {
                            "required": action == "flag",
                            "content": {"application/json": {"schema": _ref("NumberAction")}},
                        },
                        "responses": {
                            "200": _json(_ref("Number"), "the number after the action"),
                            "400": _problem_response("malformed JSON"),
                            **AUTH_ERRORS,
                            "404": _problem_response("no such number"),
                            **(
                                {"409": _problem_response("a retired number cannot be flagged")}
                                if action == "flag"
                                else {}
                            ),
                            "415": _problem_response("not application/json"),
                            "422": _problem_response("invalid or missing reason"),
                        },
                    }
                }
                for action, summary in (
                    ("flag", "An operator flags the number: quarantined at once, with the reason (admin scope)"),
                    ("restore", "Back to active from any state, evidence reset (admin scope)"),
                    ("retire", "Out of rotation for good, until restored (admin scope)"),
                )
            },
            "/v1/content/check": {
                "post": {
                    "operationId": "checkContent",
                    "summary": "Preflight a text: blocked words, link spacing, encoding and segments, route rules",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("ContentCheckRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("ContentReport"), "the verdict, each violation with its span"),
                        "400": _problem_response("malformed JSON"),
                        **AUTH_ERRORS,
                        "415": _problem_response("not application/json"),
                        "422": _problem_response("invalid field (e.g. empty text)"),
                    },
                },
            },
            "/v1/blocklists": {
                "get": {
                    "operationId": "listBlocklists",
                    "summary": "This tenant's blocked-word lists",
                    "security": BEARER,
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["data"],
                                "properties": {"data": {"type": "array", "items": _ref("Blocklist")}},
                            },
                            "the lists",
                        ),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/v1/blocklists/{name}": {
                **{
                    method: {
                        "operationId": f"{method}Blocklist",
                        "summary": summary,
                        "security": BEARER,
                        "parameters": [
                            {
                                "name": "name",
                                "in": "path",
                                "required": True,
                                "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
                            }
                        ],
                        **extra,
                    }
                    for method, summary, extra in BLOCKLIST_OPERATIONS
                }
            },
            "/c/{token}": {
                "get": {
                    "operationId": "click",
                    "summary": "A tracked short link: records the click, 302 to the destination fixed at send time",
                    "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "302": {
                            "description": "to the registered destination",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        "404": _problem_response("unknown or tampered token; nothing recorded"),
                    },
                },
            },
            "/v1/conversions": {
                "post": {
                    "operationId": "recordConversion",
                    "summary": "A conversion attributed to a click or message; idempotent on event_id",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["event"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "click_token": {"type": "string"},
                                        "message_id": {"type": "string"},
                                        "event": {"type": "string", "minLength": 1, "maxLength": 64},
                                        "value": {"type": "number"},
                                        "occurred_at": {"type": "string", "format": "date-time"},
                                        "event_id": {"type": "string", "minLength": 1, "maxLength": 128},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"type": "object", "required": ["event_id", "message_id"]}, "already recorded"),
                        "201": _json({"type": "object", "required": ["event_id", "message_id"]}, "recorded"),
                        "400": _problem_response("malformed JSON"),
                        **AUTH_ERRORS,
                        "404": _problem_response("no such click_token or message_id for this tenant"),
                        "415": _problem_response("not application/json"),
                        "422": _problem_response("invalid field"),
                    },
                },
            },
            "/v1/reports/campaigns/{campaign}": {
                "get": {
                    "operationId": "campaignReport",
                    "summary": "Sent, delivered, failed, clicks (human and unique), conversions, value and rates",
                    "security": BEARER,
                    "parameters": [
                        {"name": "campaign", "in": "path", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "group_by",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "comma-separated: variant, channel, provider, sender (default variant)",
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["campaign", "totals", "groups", "campaign_links"],
                                "properties": {
                                    "campaign_links": {
                                        "type": "array",
                                        "description": "clicks and conversions through per_campaign links, by "
                                        "variant (one link per variant and destination, so people are counted "
                                        "as unique_visitors by hashed IP); included in totals",
                                        "items": {"type": "object"},
                                    }
                                },
                            },
                            "the report",
                        ),
                        "400": _problem_response("invalid query parameter"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/v1/events": {
                "get": {
                    "operationId": "exportEvents",
                    "summary": "The audit log, streamed: NDJSON, or CSV with Accept: text/csv",
                    "security": BEARER,
                    "parameters": [
                        _query("since", type="string", format="date-time"),
                        _query("until", type="string", format="date-time"),
                        {"name": "type", "in": "query", "required": False, "schema": {"type": "string"}},
                        {"name": "message_id", "in": "query", "required": False, "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "one event per line",
                            "content": {
                                "application/x-ndjson": {"schema": {"type": "string"}},
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        "400": _problem_response("invalid query parameter"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness",
                    "responses": {"200": _json({"type": "object"}, "alive")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: database (and Redis) reachable",
                    "responses": {
                        "200": _json({"type": "object"}, "ready"),
                        "503": _problem_response("a dependency is failing"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                }
            },
        },
    }

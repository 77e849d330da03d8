"""What generated requests need to know that JSON Schema cannot say (loaded by schemathesis through
SCHEMATHESIS_HOOKS): values of the document's named formats, and the rule that a job's expiry lies
after its send time and after now (stated in the document's prose)."""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from hypothesis import strategies as st

from tests.fuzz.fixture_template import FUZZ_PERSON, FUZZ_TEMPLATE, put_person

# Valid numbers of several numbering plans, in the forms campaign systems send them.
PHONE_NUMBERS = [
    "+14155552671",
    "+1 415-555-2671",
    "+447911123456",
    "+4915112345678",
    "+33612345678",
    "+819012345678",
    "+61412345678",
    "+5511987654321",
    "+8613812345678",
    "+85291234567",
]
RECIPIENTS = [*PHONE_NUMBERS[:3], "ann@example.com", "https://example.com/hook"]
MAILBOX_SHAPE = r"[a-z0-9._+-]+@[^@<>\s]+|[^<>]+ <[a-z0-9._+-]+@[^@<>\s]+>"
BLOCKED_WORD = r"[a-z0-9\u4e00-\u9fa5]{1,20}"
TIME_ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata", "Australia/Sydney"]
_LOCAL = st.from_regex(r"[a-z][a-z0-9._+-]{0,20}[a-z0-9]", fullmatch=True)
_DOMAIN = st.sampled_from(["example.com", "example.org", "mail.example.net", "例子.中国"])
MAILBOXES = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", _LOCAL, _DOMAIN),
    st.builds(
        lambda name, local, domain: f"{name} <{local}@{domain}>", st.sampled_from(["Ann Lee", "张三"]), _LOCAL, _DOMAIN
    ),
)


@schemathesis.serializer("text/csv", "application/x-ndjson")
def _text_body(_ctx: Any, value: Any) -> bytes | None:
    """Bulk imports are text: a generated string as UTF-8; anything else (a negative case's array or
    number, which no text body can be) as no body at all, which the gateway refuses."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return None


schemathesis.openapi.format("phone-e164", st.sampled_from(PHONE_NUMBERS))
schemathesis.openapi.format("iana-time-zone", st.sampled_from(TIME_ZONES))
schemathesis.openapi.format("mailbox", MAILBOXES)
schemathesis.openapi.format("provider-name", st.just("sandbox"))
schemathesis.openapi.format("recipient-address", st.sampled_from(RECIPIENTS))
schemathesis.openapi.format("blocked-word", st.from_regex(rf"\A{BLOCKED_WORD}\Z"))
# Public address literals: a subscription is judged by what its host resolves to, and the fuzzed
# gateway has no DNS to ask (nor may it point at private ranges).
WEBHOOK_URLS = ["https://93.184.215.14/hooks", "https://8.8.8.8:8443/a/b?x=1", "https://[2606:4700::1111]/events"]
schemathesis.openapi.format("webhook-url", st.sampled_from(WEBHOOK_URLS))


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# A value each named format's strategy could draw: what the coverage phase, blind to formats, put
# in such a field is replaced by one of these (see before_call).
FORMAT_CHECKS: dict[str, tuple[Any, Any]] = {
    "phone-e164": (lambda v: v in PHONE_NUMBERS, PHONE_NUMBERS[0]),
    "mailbox": (
        lambda v: isinstance(v, str) and re.fullmatch(r"[^@<>\s]+@[^@<>\s]+|[^<>]+ <[^@<>\s]+@[^@<>\s]+>", v),
        "ann@example.com",
    ),
    "iana-time-zone": (lambda v: v in TIME_ZONES, TIME_ZONES[0]),
    "provider-name": (lambda v: v == "sandbox", "sandbox"),
    "recipient-address": (lambda v: v in RECIPIENTS, RECIPIENTS[0]),
    "blocked-word": (lambda v: isinstance(v, str) and re.fullmatch(BLOCKED_WORD, v), "promo"),
    "webhook-url": (lambda v: v in WEBHOOK_URLS, WEBHOOK_URLS[0]),
}


def _resolve(document: dict[str, Any], schema: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        target: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _branch(document: dict[str, Any], schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """The alternative of a oneOf/anyOf the value is meant for: by discriminator, else by its keys."""
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if not alternatives:
        return schema
    discriminator = schema.get("discriminator", {})
    tag = value.get(discriminator.get("propertyName", ""))
    if isinstance(tag, str) and tag in discriminator.get("mapping", {}):
        return _resolve(document, {"$ref": discriminator["mapping"][tag]})
    resolved = [_resolve(document, a) for a in alternatives]
    fitting = [a for a in resolved if isinstance(a, dict) and _fits(document, a, value)]
    return fitting[0] if len(fitting) == 1 else schema


def _fits(document: dict[str, Any], schema: dict[str, Any], value: dict[str, Any]) -> bool:
    """The value's keys are the alternative's and its constant fields (a kind, a channel) match."""
    properties = schema.get("properties", {})
    if not set(value) <= set(properties):
        return False
    for name, prop in properties.items():
        prop = _resolve(document, prop)
        given = value.get(name, prop.get("default"))
        if "const" in prop and given != prop["const"]:
            return False
        if "enum" in prop and given not in prop["enum"]:
            return False
    return True


def _put_formats_right(document: dict[str, Any], schema: Any, value: Any) -> None:
    schema = _resolve(document, schema)
    if not isinstance(schema, dict) or not isinstance(value, dict):
        return
    schema = _branch(document, schema, value)
    for name, prop in schema.get("properties", {}).items():
        if name not in value:
            continue
        prop = _resolve(document, prop)
        options = [_resolve(document, p) for p in prop.get("anyOf", [prop])] if isinstance(prop, dict) else []
        formats = [o.get("format") for o in options if isinstance(o, dict) and o.get("format") in FORMAT_CHECKS]
        if formats and value[name] is not None:
            valid, sample = FORMAT_CHECKS[formats[0]]
            if not valid(value[name]):
                value[name] = sample
        elif isinstance(value[name], dict):
            _put_formats_right(document, prop, value[name])


def _body_schema(case: Any) -> Any:
    document = case.operation.schema.raw_schema
    operation = document["paths"][case.operation.path][case.operation.method.lower()]
    content = operation.get("requestBody", {}).get("content", {})
    return document, content.get(case.media_type or "application/json", {}).get("schema")


def _names_the_fixture_template(job: Any) -> None:
    if isinstance(job, dict) and isinstance(job.get("template"), str):
        job["template"] = FUZZ_TEMPLATE
        job.pop("version", None)
        if "params" in job:
            job["params"] = {}


def _names_the_fixture_person(job: Any) -> None:
    if isinstance(job, dict) and isinstance(job.get("user_id"), str) and "to" not in job:
        job["user_id"] = FUZZ_PERSON


def _examples_fit(body: dict[str, Any]) -> None:
    """A variable's example fits its max_length (stated in the document's prose)."""
    variables = body.get("variables")
    for variable in variables.values() if isinstance(variables, dict) else ():
        example, limit = (variable.get("example"), variable.get("max_length")) if isinstance(variable, dict) else (0, 0)
        if isinstance(example, str) and isinstance(limit, int | float) and len(example) > limit:
            variable["max_length"] = max(1, len(example))


_PLACEHOLDER = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [text for item in items for text in _strings(item)]


def _placeholders_declared(body: dict[str, Any], patch: bool) -> None:
    """A body's placeholders name declared variables (the template language's rule). A change of the
    variables, bodies or locales comes with all three: the stored ones are not known here."""
    if patch and {"variables", "channels", "locales"} & set(body):
        body.setdefault("variables", {})
        body.setdefault("channels", {"sms": {"text": "fuzz notice"}})
        body.setdefault("locales", {})
    variables = body.setdefault("variables", {}) if not patch else body.get("variables")
    if not isinstance(variables, dict):
        return
    texts = _strings([body.get("channels"), body.get("locales")])
    for name in {name for text in texts for name in _PLACEHOLDER.findall(text)} - set(variables):
        variables[name] = {"type": "string"}


SPARE_PERSON = "fuzz-other"


def _template_cases(case: Any) -> None:
    """The fixture template and person stay as they were made, in valid and invalid cases alike. A
    call on the person goes to a spare one instead, which exists when the call is made: the stateful
    phase follows a link to the person (e.g. from an import to DELETE /v1/recipients/{user_id}) and
    expects to find it."""
    path = case.operation.path
    if path.startswith("/v1/templates/{name}") and (case.path_parameters or {}).get("name") == FUZZ_TEMPLATE:
        case.path_parameters["name"] = "fuzz-other"
    if path.startswith("/v1/recipients/{user_id}") and (case.path_parameters or {}).get("user_id") == FUZZ_PERSON:
        case.path_parameters["user_id"] = SPARE_PERSON
        if (url := os.environ.get("GATEWAY_FUZZ_URL")) is not None:
            assert put_person(url, SPARE_PERSON) in (200, 201)


def _template_bodies(case: Any) -> None:
    path = case.operation.path
    if isinstance(case.body, dict) and path in ("/v1/templates", "/v1/templates/{name}"):
        _placeholders_declared(case.body, patch=path != "/v1/templates")
        _examples_fit(case.body)
    if isinstance(case.body, dict) and path == "/v1/messages":
        _names_the_fixture_template(case.body)
        _names_the_fixture_person(case.body)
    if isinstance(case.body, dict) and path == "/v1/messages/batch" and isinstance(case.body.get("messages"), list):
        for item in case.body["messages"]:
            _names_the_fixture_template(item)
            _names_the_fixture_person(item)


def _weights_sum_to_100(body: dict[str, Any]) -> None:
    """An experiment's arms and holdout sum to 100, a rule JSON Schema cannot state: generated
    weights are scaled to it (the declared shares kept)."""
    variants, holdout = body.get("variants"), body.get("holdout", 0)
    if not isinstance(variants, dict) or not variants or not isinstance(holdout, int | float):
        return
    if not all(isinstance(w, int | float) and not isinstance(w, bool) and w > 0 for w in variants.values()):
        return
    total = sum(variants.values())
    names = list(variants)
    for name in names[:-1]:
        variants[name] = variants[name] * (100 - holdout) / total
    variants[names[-1]] = 100 - holdout - sum(variants[name] for name in names[:-1])


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    """One key per request, as the header's contract asks: a key reused with another body is refused
    (in every phase; the coverage phase applies no map_* hook)."""
    _template_cases(case)
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return  # an invalid request is refused whatever its key; editing it would make it a valid one
    _template_bodies(case)
    if isinstance(case.body, dict):
        document, schema = _body_schema(case)
        _put_formats_right(document, schema, case.body)
        if case.operation.path == "/v1/blocklists/{name}" and isinstance(case.body.get("words"), list):
            # A tenant's own list applies to its later sends at once: words no generated text holds keep
            # the stateful phase's sends about the contract, not about the words it listed before.
            case.body["words"] = [f"zqxj{w}" if isinstance(w, str) else w for w in case.body["words"]]
        if case.operation.path == "/v1/campaigns/{campaign}":
            _weights_sum_to_100(case.body)
    headers = case.headers  # a mutable mapping, edited in place so schemathesis sees the change
    key = headers.get("Idempotency-Key") if headers is not None else None
    if isinstance(key, str) and key and all("\x21" <= c <= "\x7e" for c in key):
        headers["Idempotency-Key"] = f"{key[:200]}-{uuid.uuid4().hex}"


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    """A generated expiry moves past now and past the job's send time, where the rule puts it."""
    if isinstance(body, dict) and (expires := _parse(body.get("expires_at"))) is not None:
        floor = max(datetime.now(UTC), _parse(body.get("send_at")) or datetime.now(UTC))
        if expires <= floor + timedelta(minutes=5):
            body = {**body, "expires_at": (floor + timedelta(days=1)).isoformat()}
    return body

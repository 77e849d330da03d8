"""Send-job validation (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway.contract.jobs import validate_job
from gateway.domain.jobs import JobLimits, normalise_phone, parse_timestamp, valid_idempotency_key
from gateway.domain.models import Category, Channel

LIMITS = JobLimits()


def test_a_valid_sms_job_is_normalised() -> None:
    job, errors = validate_job(
        {
            "channel": "sms",
            "to": "+86 138-1234-5678",
            "content": {"text": "hi"},
            "send_at": "2026-01-31T09:00:00+08:00",
            "fallback": ["voice"],
            "category": "transactional",
        },
        LIMITS,
    )
    assert errors == []
    assert job is not None
    assert job.to == "+8613812345678"
    assert job.channel is Channel.SMS and job.category is Category.TRANSACTIONAL
    assert job.send_at == datetime(2026, 1, 31, 1, 0, tzinfo=UTC).timestamp()
    assert job.fallback == (Channel.VOICE,)


def test_every_problem_is_reported_with_the_prefix_of_its_batch_item() -> None:
    job, errors = validate_job({"channel": "sms", "to": "123", "content": {"text": ""}, "x": 1}, LIMITS, "/messages/3")
    assert job is None
    assert [e.field for e in errors] == ["/messages/3/to", "/messages/3/content/text", "/messages/3/x"]


def test_email_domains_are_lowercased_and_local_parts_kept() -> None:
    job, _ = validate_job(
        {"channel": "email", "to": "Ann.Lee@Example.COM", "content": {"subject": "s", "text": "t"}}, LIMITS
    )
    assert job is not None and job.to == "Ann.Lee@example.com"


def test_http_webhooks_only_when_allowed() -> None:
    body = {"channel": "webhook", "to": "http://127.0.0.1:9/hook", "content": {"payload": {"a": 1}}}
    assert validate_job(body, LIMITS)[0] is None
    assert validate_job(body, JobLimits(allow_http_webhooks=True))[0] is not None


def test_phone_numbers_must_be_international_and_valid() -> None:
    assert normalise_phone("+14155552671") == "+14155552671"
    assert normalise_phone("14155552671") is None
    assert normalise_phone("+1415555267") is None
    assert normalise_phone("+99912345678") is None


def test_timestamps_need_an_offset() -> None:
    assert parse_timestamp("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert parse_timestamp("2026-01-01T00:00:00") is None
    assert parse_timestamp(1234) is None


@given(st.text(min_size=1, max_size=300))
def test_idempotency_keys_are_1_to_255_printable_ascii(key: str) -> None:
    expected = 1 <= len(key) <= 255 and all(0x21 <= ord(c) <= 0x7E for c in key)
    assert valid_idempotency_key(key) == expected


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    )
)
def test_no_json_value_crashes_validation(body: object) -> None:
    job, errors = validate_job(body, LIMITS)
    assert (job is None) == bool(errors)


def test_channel_order_is_listed_by_default_or_cost() -> None:
    base = {"channel": "voice", "to": "+8613812345678", "content": {"text": "hi"}, "fallback": ["sms"]}
    job, _ = validate_job(base, LIMITS)
    assert job is not None and job.channel_order == "listed"
    job, _ = validate_job({**base, "channel_order": "cost"}, LIMITS)
    assert job is not None and job.channel_order == "cost"
    job, errors = validate_job({**base, "channel_order": "cheapest"}, LIMITS)
    assert job is None and [(e.field, e.message) for e in errors] == [("/channel_order", "must be listed or cost")]


def test_a_job_that_would_expire_before_it_is_accepted_is_refused() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    body = {"channel": "sms", "to": "+8613812345678", "content": {"text": "hi"}}
    job, errors = validate_job({**body, "expires_at": "2026-01-01T08:00:00+08:00"}, LIMITS, now=now)
    assert job is None
    assert [(e.field, e.message) for e in errors] == [("/expires_at", "is already past: the job would expire unsent")]
    job, _ = validate_job({**body, "expires_at": "2026-01-01T08:00:01+08:00"}, LIMITS, now=now)
    assert job is not None
    late = {**body, "send_at": "2026-01-01T02:00:00Z", "expires_at": "2026-01-01T01:00:00Z"}
    _, errors = validate_job(late, LIMITS, now=now)
    assert [(e.field, e.message) for e in errors] == [("/expires_at", "must be later than send_at")]


def test_a_fallback_channel_that_cannot_take_the_address_is_refused_naming_those_that_can() -> None:
    push = {"channel": "push", "to": "device-token-0001", "content": {"title": "t", "body": "b"}, "fallback": ["sms"]}
    _, errors = validate_job(push, LIMITS)
    assert [(e.field, e.message) for e in errors] == [
        ("/fallback/0", "sms cannot reach a device token; the channels that can: push")
    ]
    sms = {"channel": "sms", "to": "+8613812345678", "content": {"text": "hi"}, "fallback": ["voice", "email"]}
    _, errors = validate_job({**sms, "channel_order": "cost"}, LIMITS, "/messages/2")
    assert [(e.field, e.message) for e in errors] == [
        ("/messages/2/fallback/1", "email cannot reach a phone number; the channels that can: sms, voice")
    ]

"""The pure rules of status callbacks: event types, where a subscription may point, retries up to
the horizon, pausing."""

from __future__ import annotations

import random

import orjson
import pytest

from gateway.domain.webhooks import (
    DeliveryPolicy,
    address_refusal,
    addresses_refusal,
    batch_body,
    batch_id,
    batches,
    event_body,
    event_type,
    next_attempt,
    pause_reason,
    url_refusal,
    wanted,
)


def test_audit_entries_map_to_event_types() -> None:
    assert event_type("status", "delivered") == "message.delivered"
    assert event_type("status", "sending") is None  # the gateway's own step
    assert event_type("suppression.added", None) == "opt_out"
    assert event_type("api_key.used", None) is None
    assert wanted(["*"], "click") and wanted(["click"], "click") and not wanted(["message.sent"], "click")


def test_the_body_is_the_same_bytes_on_every_retry() -> None:
    event = {"id": 7, "message_id": "msg_1", "at": 1_700_000_000.5, "status": "failed", "reason": "x", "detail": None}
    body = event_body(event, "message.failed")
    assert body == event_body(dict(event), "message.failed")
    assert orjson.loads(body) == {
        "type": "message.failed",
        "timestamp": "2023-11-14T22:13:20.500Z",
        "data": {"event_id": "evt_7", "message_id": "msg_1", "status": "failed", "reason": "x"},
    }


@pytest.mark.parametrize(
    ("url", "allow_http", "refusal"),
    [
        ("https://example.com/h", False, None),
        ("http://example.com/h", True, None),
        ("http://example.com/h", False, "must be https (plain http needs [webhooks] allow_http = true)"),
        ("ftp://example.com/h", True, "must be an https URL with a host"),
        ("https:///nohost", True, "must be an https URL with a host"),
        ("https://a:b@example.com/", True, "must not carry credentials (user:password@)"),
        ("https://a@example.com/", True, "must not carry credentials (user:password@)"),
        ("https://example.com/#", True, "must not have a fragment (#...)"),
        ("https://example.com:99999/", True, "is not a URL"),
        ("https://example.com:0/", True, "must not name port 0"),
    ],
)
def test_url_forms(url: str, allow_http: bool, refusal: str | None) -> None:
    assert url_refusal(url, allow_http=allow_http) == refusal


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
        ("127.0.0.2", "resolves to the loopback address 127.0.0.2"),
        ("::ffff:127.0.0.1", "resolves to the loopback address 127.0.0.1"),
        ("fe80::1%eth0", "resolves to the link-local address fe80::1"),
        ("172.16.0.1", "resolves to the private address 172.16.0.1"),
        ("100.64.0.1", "resolves to the private address 100.64.0.1"),  # carrier-grade NAT
        ("0.0.0.0", "resolves to the private address 0.0.0.0"),
        ("fd00::1", "resolves to the private address fd00::1"),
        ("not-an-ip", "not-an-ip is not an IP address"),
    ],
)
def test_addresses(address: str, refusal: str | None) -> None:
    assert address_refusal(address, allow_private=False) == refusal
    assert address_refusal("10.0.0.1", allow_private=True) is None


def test_every_address_of_a_name_must_pass() -> None:
    assert addresses_refusal([], allow_private=False) == "does not resolve to any address"
    assert addresses_refusal(["93.184.215.14", "10.0.0.1"], allow_private=False) is not None


def test_retries_are_full_jitter_with_retry_after_a_floor_until_the_horizon() -> None:
    policy = DeliveryPolicy(horizon_seconds=100.0, base_seconds=1.0, max_seconds=8.0)
    rng = random.Random(1)
    waits = [next_attempt(policy, attempts=n, first_at=0.0, now=10.0, retry_after=None, rng=rng) for n in (1, 5, 9)]
    assert all(w is not None and 10.0 <= w <= 18.0 for w in waits)
    assert next_attempt(policy, attempts=1, first_at=0.0, now=10.0, retry_after=30.0, rng=rng) == 40.0
    # Past the horizon's reach: one last try at the horizon itself, then the dead-letter list.
    assert next_attempt(policy, attempts=1, first_at=0.0, now=95.0, retry_after=30.0, rng=rng) == 100.0
    assert next_attempt(policy, attempts=2, first_at=0.0, now=100.0, retry_after=None, rng=rng) is None


def test_an_endpoint_is_paused_after_a_long_enough_streak() -> None:
    policy = DeliveryPolicy(pause_after_failures=3, pause_after_seconds=60.0)
    assert pause_reason(policy, consecutive_failures=3, failing_since=0.0, now=59.0) is None
    assert pause_reason(policy, consecutive_failures=2, failing_since=0.0, now=600.0) is None
    assert pause_reason(policy, consecutive_failures=3, failing_since=0.0, now=60.0) == (
        "3 failed deliveries in a row since 1970-01-01T00:00:00.000Z"
    )


def test_events_are_batched_only_when_on_and_behind() -> None:
    assert batches(5, 10.0, most=1, after_lag=2.0) == [1, 1, 1, 1, 1]  # off
    assert batches(5, 1.0, most=4, after_lag=2.0) == [1, 1, 1, 1, 1]  # not behind
    assert batches(5, 2.0, most=4, after_lag=2.0) == [4, 1]
    assert batches(1, 9.0, most=4, after_lag=2.0) == [1]


def test_a_batch_holds_each_event_with_its_own_webhook_id() -> None:
    first = {"id": 3, "message_id": "m1", "at": 10.0, "status": "sent", "reason": "a", "detail": None}
    second = {"id": 9, "message_id": "m2", "at": 12.0, "status": "queued", "reason": "b", "detail": None}
    body = orjson.loads(batch_body([(first, "message.sent"), (second, "message.queued")]))
    assert (body["type"], body["timestamp"]) == ("batch", "1970-01-01T00:00:12.000Z")
    assert [(e["webhook_id"], e["type"]) for e in body["data"]["events"]] == [
        ("evt_3", "message.sent"),
        ("evt_9", "message.queued"),
    ]
    assert batch_id([3, 9]) == "batch_3_9_2"

"""Status callbacks to the campaign system: which audit-log entries are which event types, what a
subscription may point at, and when a delivery is retried, dead-lettered or its endpoint paused.

Pure: the caller supplies the rows, the time, the addresses a name resolved to and the randomness.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import orjson

from gateway.domain.models import Status
from gateway.domain.retry import GiveUp, RetryPolicy, next_retry

ALL_EVENTS = "*"
# Statuses a message may be reported in; `sending` is the gateway's own step, not news for a campaign.
MESSAGE_STATUSES = tuple(s for s in Status if s is not Status.SENDING)
MESSAGE_EVENT_TYPES = tuple(f"message.{s}" for s in MESSAGE_STATUSES)
OTHER_EVENT_TYPES = ("click", "conversion", "opt_out", "inbound", "number.state_changed")
EVENT_TYPES = (*MESSAGE_EVENT_TYPES, *OTHER_EVENT_TYPES)
TEST_EVENT_TYPE = "webhook.test"
BATCH_TYPE = "batch"

# The audit log's entry kinds (events.type) that are news for a subscriber, besides status changes.
STATUS_KIND = "status"
_KIND_TO_TYPE = {
    "click": "click",
    "conversion": "conversion",
    "suppression.added": "opt_out",
    "number.state_changed": "number.state_changed",
}
NUMBER_STATE_CHANGED = "number.state_changed"
# Every reply is kept as an `inbound.reply` entry, its reason the reply's intent (gateway/domain/optout.py).
REPLY_KIND = "inbound.reply"
REPLY_INTENTS_WITH_SUPPRESSION = ("opt_out", "opt_in")
# Audit entries of these kinds concern every tenant (sender numbers are shared): tenant_id is this.
EVERY_TENANT = ""


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # the retry horizon passed: on the dead-letter list until replayed


class EndpointState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


def event_type(kind: str, status: str | None, reason: str | None = None) -> str | None:
    """The subscriber's event type of an audit-log entry; None when it is not one they can subscribe to."""
    if kind == STATUS_KIND:
        return f"message.{status}" if status in MESSAGE_STATUSES else None
    if kind == REPLY_KIND:
        # An opt-out or opt-in reply reaches subscribers as the suppression it made (`opt_out`).
        return "inbound" if reason not in REPLY_INTENTS_WITH_SUPPRESSION else None
    return _KIND_TO_TYPE.get(kind)


def wanted(subscribed: Iterable[str], type_: str) -> bool:
    chosen = set(subscribed)
    return ALL_EVENTS in chosen or type_ in chosen


def webhook_id(event_id: int) -> str:
    """The `webhook-id` of an event: the same on every retry and replay, so a receiver drops repeats."""
    return f"evt_{event_id}"


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_payload(event: Mapping[str, Any], type_: str) -> dict[str, Any]:
    """The Standard Webhooks payload {type, timestamp, data}: the same on every retry."""
    detail = orjson.loads(event["detail"]) if event.get("detail") else None
    data: dict[str, Any] = {"event_id": webhook_id(int(event["id"]))}
    if event.get("message_id"):
        data["message_id"] = event["message_id"]
    if type_.startswith("message."):
        data["status"] = event["status"]
    data["reason"] = event.get("reason")
    for field in ("channel", "campaign", "variant", "user_id"):
        if event.get(field) is not None:
            data[field] = event[field]
    if detail is not None:
        data["detail"] = detail
    return {"type": type_, "timestamp": rfc3339(float(event["at"])), "data": data}


def event_body(event: Mapping[str, Any], type_: str) -> bytes:
    return orjson.dumps(event_payload(event, type_))


def batch_id(event_ids: Sequence[int]) -> str:
    """A batch's webhook-id: the same for the same events (a retry of it); receivers drop repeats
    by each event's own webhook-id inside."""
    return f"batch_{event_ids[0]}_{event_ids[-1]}_{len(event_ids)}"


def batch_body(events: Sequence[tuple[Mapping[str, Any], str]]) -> bytes:
    """Several events in one request: {type: "batch", timestamp (the newest event's), data: {events:
    [{webhook_id, type, timestamp, data}, ...]}}, in the order they were claimed."""
    items = [{"webhook_id": webhook_id(int(e["id"])), **event_payload(e, t)} for e, t in events]
    newest = max(float(e["at"]) for e, _ in events)
    return orjson.dumps({"type": BATCH_TYPE, "timestamp": rfc3339(newest), "data": {"events": items}})


def batches(count: int, oldest_age: float, *, most: int, after_lag: float) -> list[int]:
    """How many of `count` events due for one receiver go in each request: one each unless batching
    is on (most > 1) and the receiver is behind (its oldest due event at least after_lag old)."""
    if most <= 1 or count <= 1 or oldest_age < after_lag:
        return [1] * count
    return [min(most, count - start) for start in range(0, count, most)]


# -- where a subscription may point ------------------------------------------------------------------


def url_refusal(url: str, *, allow_http: bool) -> str | None:
    """Why a subscription URL is refused before any name is resolved; None when its form is fine."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an https URL with a host"
    if parts.scheme == "http" and not allow_http:
        return "must be https (plain http needs [webhooks] allow_http = true)"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (user:password@)"
    if parts.fragment or url.endswith("#"):
        return "must not have a fragment (#...)"
    if port == 0:
        return "must not name port 0"
    return None


def address_refusal(address: str, *, allow_private: bool) -> str | None:
    """Why a receiver at this IP address is refused: loopback, link-local, private and other ranges
    not on the public internet would let a subscriber reach the gateway's own network (SSRF)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private:
        return None
    if ip.is_loopback:
        return f"resolves to the loopback address {ip}"
    if ip.is_link_local:
        return f"resolves to the link-local address {ip}"
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified or not ip.is_global:
        return f"resolves to the private address {ip}"
    return None


def addresses_refusal(addresses: Iterable[str], *, allow_private: bool) -> str | None:
    """Every address a name resolves to must pass, or a rebinding resolver could pick the bad one."""
    found = list(addresses)
    if not found:
        return "does not resolve to any address"
    for address in found:
        refusal = address_refusal(address, allow_private=allow_private)
        if refusal is not None:
            return refusal
    return None


# -- retries, the dead-letter list, pausing -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    horizon_seconds: float = 86_400.0
    base_seconds: float = 5.0
    max_seconds: float = 3_600.0
    pause_after_failures: int = 100
    pause_after_seconds: float = 3_600.0


def next_attempt(
    policy: DeliveryPolicy,
    *,
    attempts: int,
    first_at: float,
    now: float,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> float | None:
    """When to try a failed delivery again (full jitter, Retry-After a floor); None: the horizon has
    passed and it goes to the dead-letter list."""
    retry = next_retry(
        RetryPolicy(max_attempts=2**31, base_seconds=policy.base_seconds, max_seconds=policy.max_seconds),
        attempt=attempts,
        now=now,
        expires_at=first_at + policy.horizon_seconds,
        retry_after=retry_after,
        rng=rng,
    )
    if isinstance(retry, GiveUp):
        # A last try at the horizon itself, unless that too is behind us.
        return first_at + policy.horizon_seconds if now < first_at + policy.horizon_seconds else None
    return retry.at


def pause_reason(
    policy: DeliveryPolicy, *, consecutive_failures: int, failing_since: float | None, now: float
) -> str | None:
    """An endpoint that keeps failing is paused: its deliveries wait for the API's resume instead of
    spending the retry horizon against a receiver that is gone."""
    if failing_since is None or consecutive_failures < policy.pause_after_failures:
        return None
    if now - failing_since < policy.pause_after_seconds:
        return None
    return f"{consecutive_failures} failed deliveries in a row since {rfc3339(failing_since)}"


def success_rate(delivered: int, failed: int) -> float | None:
    total = delivered + failed
    return None if total == 0 else delivered / total

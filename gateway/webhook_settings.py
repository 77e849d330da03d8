"""`[webhooks]`: status callbacks to the campaign systems (docs/webhooks.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.domain.webhooks import DeliveryPolicy


class WebhooksSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    delivery_process: Literal["auto", "worker", "own"] = Field(
        "auto",
        description="where callbacks are delivered: own: in a process of their own (`gateway serve --role callbacks`,"
        " which `gateway serve` starts), not in the worker processes; worker: in every worker process; auto: own"
        " when `gateway serve` runs several processes, in the one process otherwise",
    )
    allow_private_networks: bool = Field(
        False,
        description="true: subscriptions may point at loopback, link-local and private addresses (local use, tests)",
    )
    allow_http: bool = Field(False, description="true: subscriptions may use plain http:// URLs (local use, tests)")
    max_endpoints_per_tenant: int = Field(20, ge=1, le=1000, description="subscriptions one tenant may hold")
    retry_horizon_seconds: float = Field(
        86_400.0, gt=0, description="a delivery is retried this long after its first attempt, then dead-lettered"
    )
    retry_base_seconds: float = Field(
        5.0, gt=0, description="full-jitter backoff: uniform(0, min(max, base * 2^(n-1)))"
    )
    retry_max_seconds: float = Field(3_600.0, gt=0, description="the longest wait between two attempts")
    pause_after_failures: int = Field(
        100, ge=1, description="failed deliveries in a row (and pause_after_seconds of failing) that pause an endpoint"
    )
    pause_after_seconds: float = Field(3_600.0, ge=0, description="how long an endpoint fails before it is paused")
    rotation_grace_seconds: float = Field(
        86_400.0, ge=0, description="after a secret rotation the old secret signs too, for this long"
    )
    timeout_seconds: float = Field(10.0, gt=0, description="seconds a receiver has to answer a delivery")
    connect_timeout_seconds: float = Field(5.0, gt=0, description="seconds to connect to a receiver")
    concurrency: int = Field(256, ge=1, description="deliveries in flight per worker process")
    batch_size: int = Field(500, ge=1, le=5000, description="deliveries claimed per round trip to the database")
    max_events_per_request: int = Field(
        1,
        ge=1,
        le=1000,
        description="above 1: a receiver that is behind gets up to this many events in one request (a `batch`"
        " event, docs/webhooks.md); 1: one event per request",
    )
    batch_after_lag_seconds: float = Field(
        2.0, ge=0, description="events are batched only once the oldest one due for a receiver is this old"
    )
    poll_interval_ms: float = Field(100.0, gt=0, description="how often an idle delivery loop looks for work")
    round_ms: float = Field(
        20.0,
        gt=0,
        description="while deliveries are under way, the pause between two rounds of the delivery loop (each records"
        " the results that came back and claims the next in one commit): longer, fewer commits and more lag",
    )
    lease_seconds: float = Field(60.0, gt=0, description="a claim held by a dead worker is taken back after this")
    outbox_gap_seconds: float = Field(
        10.0,
        gt=0,
        description="how long the outbox reader waits for an event id still being committed (PostgreSQL) before"
        " taking the gap for a rolled-back transaction",
    )

    delivered_retention_days: float = Field(
        7.0, ge=0, description="a delivered callback's row is deleted this many days after delivery; 0 keeps it"
    )
    dead_retention_days: float = Field(
        30.0,
        ge=0,
        description="a dead letter's row is deleted this many days after its last attempt (it can no longer be"
        " replayed); 0 keeps it",
    )
    prune_interval_seconds: float = Field(
        300.0, gt=0, description="how often a process delivering callbacks deletes those rows"
    )
    prune_batch_size: int = Field(
        1000, ge=1, le=10_000, description="rows deleted per transaction, so the pruning never holds the writer long"
    )

    def policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(
            horizon_seconds=self.retry_horizon_seconds,
            base_seconds=self.retry_base_seconds,
            max_seconds=self.retry_max_seconds,
            pause_after_failures=self.pause_after_failures,
            pause_after_seconds=self.pause_after_seconds,
        )

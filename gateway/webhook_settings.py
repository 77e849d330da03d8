"""`[webhooks]`: status callbacks to the campaign systems (docs/webhooks.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.domain.webhooks import DeliveryPolicy


class WebhooksSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
    lease_seconds: float = Field(60.0, gt=0, description="a claim held by a dead worker is taken back after this")
    outbox_gap_seconds: float = Field(
        10.0,
        gt=0,
        description="how long the outbox reader waits for an event id still being committed (PostgreSQL) before"
        " taking the gap for a rolled-back transaction",
    )

    def policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(
            horizon_seconds=self.retry_horizon_seconds,
            base_seconds=self.retry_base_seconds,
            max_seconds=self.retry_max_seconds,
            pause_after_failures=self.pause_after_failures,
            pause_after_seconds=self.pause_after_seconds,
        )

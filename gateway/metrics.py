"""Prometheus metrics; one registry per process so tests can start several gateways side by side."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.accepted = Counter("gateway_messages_accepted_total", "Send jobs accepted (202)", ["channel"], registry=r)
        self.replayed = Counter(
            "gateway_idempotent_replays_total",
            "Requests answered from an earlier request with the same key",
            registry=r,
        )
        self.dispatched = Counter(
            "gateway_messages_dispatched_total",
            "Provider hand-offs by outcome",
            ["channel", "provider", "outcome"],
            registry=r,
        )
        self.failed = Counter(
            "gateway_messages_failed_total",
            "Messages that ended failed, rejected, suppressed, expired or unknown",
            ["channel", "provider", "reason"],
            registry=r,
        )
        self.dispatch_latency = Histogram(
            "gateway_dispatch_latency_seconds",
            "From the moment a job was due to its provider hand-off",
            ["channel", "provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.provider_call = Histogram(
            "gateway_provider_call_seconds",
            "Duration of provider send calls",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("gateway_queue_depth", "Messages waiting or in hand-off", ["status"], registry=r)
        self.receipts = Counter(
            "gateway_receipts_total",
            "Delivery receipts by result",
            ["provider", "result"],
            registry=r,
        )
        self.number_changes = Counter(
            "gateway_number_state_changes_total",
            "Sender number state changes applied by this process",
            ["pool", "to_state", "reason"],
            registry=r,
        )
        self.numbers = Gauge(
            "gateway_numbers",
            "Sender numbers per pool and state (alert on a pool with no active number)",
            ["pool", "state"],
            registry=r,
        )
        self.handoff_recovered = Counter(
            "gateway_handoff_recoveries_total",
            "Jobs found mid hand-off after a crash, by resolution",
            ["resolution"],
            registry=r,
        )
        self.callbacks = Counter(
            "gateway_webhook_deliveries_total",
            "Status-callback delivery attempts per subscription and outcome (delivered, retry, dead)",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.callback_lag = Gauge(
            "gateway_webhook_lag_seconds",
            "Age of the oldest event still waiting for a subscription (0 when none waits)",
            ["endpoint"],
            registry=r,
        )
        self.callback_paused = Gauge(
            "gateway_webhook_paused", "1 while a subscription is paused by its failures", ["endpoint"], registry=r
        )
        self.callback_dead = Gauge(
            "gateway_webhook_dead_letters", "Events on a subscription's dead-letter list", ["endpoint"], registry=r
        )
        self.background_errors = Counter(
            "gateway_background_errors_total",
            "Errors a background loop caught and carried on after (each one is also logged)",
            ["loop"],
            registry=r,
        )

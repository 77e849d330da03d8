"""Records of the status-callback rooms passed between the store and the delivery loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """One event due at one endpoint, leased to the worker that claimed it."""

    id: int
    endpoint_id: str
    tenant_id: str
    url: str
    secrets: tuple[str, ...]  # the current secret, then the one a rotation replaced while it still signs
    type: str
    attempts: int
    first_attempt_at: float | None
    event: dict[str, Any]  # the audit-log row, with the message's channel, campaign, variant, user_id


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one attempt came to: delivered, retried at `next_at`, or dead-lettered (next_at None)."""

    delivery_id: int
    endpoint_id: str
    delivered: bool
    at: float
    first_attempt_at: float
    status_code: int | None = None
    error: str | None = None
    next_at: float | None = None

"""What each failure reason means for on-call: would a retry help, and what to do.

Reason codes are the taxonomy every failed, rejected, suppressed, expired or unknown message
carries; the prefix names the stage that decided (content, limit, suppressed, route, provider,
number) so a report grouped by reason reads like a map of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.models import Status

# What on-call reviews as failures (the report's default filter, in this order).
FAILURE_STATUSES = (
    Status.FAILED,
    Status.REJECTED,
    Status.SUPPRESSED,
    Status.EXPIRED,
    Status.UNKNOWN,
    Status.UNDELIVERED,
)
# What a requeue may put back; never delivered (done) nor what policy refused (suppressed, rejected).
REQUEUEABLE = frozenset({Status.FAILED, Status.UNKNOWN, Status.UNDELIVERED, Status.EXPIRED})
# What the failure report groups by (each one a field of the message).
REPORT_DIMENSIONS = ("reason", "provider", "error_code", "sender", "campaign", "channel", "status")


@dataclass(frozen=True, slots=True)
class Advice:
    retry_helps: bool
    action: str


_BY_PREFIX: list[tuple[str, Advice]] = [
    (
        "provider.transient.exhausted",
        Advice(True, "the provider failed transiently until attempts ran out; requeue once it is healthy"),
    ),
    ("provider.permanent.recipient_invalid", Advice(False, "the address is invalid; fix it upstream")),
    ("provider.permanent", Advice(False, "the provider refused for good; read the error code")),
    ("provider.opted_out", Advice(False, "the recipient opted out at the provider; they are suppressed")),
    ("provider.undelivered", Advice(True, "the carrier did not deliver; a requeue may reach the handset later")),
    ("unknown.handoff", Advice(True, "a crash cut the hand-off; requeue only if a duplicate is acceptable")),
    ("content.", Advice(False, "the text breaks the content policy; fix the text (see POST /v1/content/check)")),
    ("limit.cap", Advice(False, "the recipient reached a frequency cap; it frees up later")),
    ("limit.quiet_hours", Advice(False, "the recipient's quiet hours; it goes out in the next window")),
    ("suppressed.", Advice(False, "the recipient is on the suppression list")),
    ("route.", Advice(False, "no provider serves this channel; configure one")),
    (
        "number.pool_exhausted",
        Advice(
            True,
            "every sender number serving this route is quarantined or retired (see GET /v1/numbers or "
            "`gateway numbers` for each one's reason); restore or add numbers, then requeue by "
            "reason=number.pool_exhausted",
        ),
    ),
    (
        "number.daily_cap",
        Advice(False, "every healthy sender number reached its daily (or warm-up) cap; it goes out when one frees up"),
    ),
    ("expired", Advice(True, "expires_at passed before it could be sent; requeue with a later expires_at")),
]


def advice_for(reason: str | None) -> Advice:
    for prefix, advice in _BY_PREFIX:
        if reason and reason.startswith(prefix):
            return advice
    return Advice(False, "see the message's events")

"""Errors a background loop survives: each one logged with its context and counted, never silent.

Loops that must outlive a failure (the worker's, the number pool's, retention, list reloads, the
key-use recorder, ...) catch broadly and carry on; they report what they caught here, so every
swallowed error is a log line with the loop's name and a tick of
`gateway_background_errors_total{loop=...}` (alert on its rate)."""

from __future__ import annotations

from typing import Any

import structlog

from gateway.metrics import Metrics
from gateway.store.outage import DatabaseUnavailable

log = structlog.get_logger("gateway.background")


def survived(metrics: Metrics | None, loop: str, event: str, exc: BaseException, **context: Any) -> None:
    """Log and count an error the loop `loop` caught and carries on after.

    `event` says what failed and what happens next; `context` names what it was about (message id,
    tenant, provider, number, ...). `metrics` is None only where a part runs outside a gateway."""
    if metrics is not None:
        metrics.background_errors.labels(loop).inc()
    if isinstance(exc, DatabaseUnavailable):
        # The store logs an outage when it begins and ends; a traceback per retry would bury that.
        log.debug(event, loop=loop, error=str(exc), **context)
        return
    log.error(event, loop=loop, error=repr(exc), exc_info=exc, **context)

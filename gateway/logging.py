"""structlog JSON logs with recipients masked; message id, tenant and campaign are bound per job."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

_PHONE = re.compile(r"\+?\d{7,15}")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")
_RECIPIENT_KEYS = frozenset({"to", "to_addr", "recipient", "phone", "email", "address", "from_"})


def mask_phone(number: str) -> str:
    digits = number.lstrip("+")
    if len(digits) < 7:
        return "***"
    # At least four digits hidden, whatever the length: enough to tell numbers apart, not to dial one.
    tail = 4 if len(digits) >= 11 else 2
    head = max(1, min(5, len(digits) - tail - 4))
    hidden = len(digits) - head - tail
    return ("+" if number.startswith("+") else "") + digits[:head] + "*" * hidden + digits[-tail:]


def mask_value(value: str) -> str:
    """Keep enough to tell numbers apart in an incident, not enough to contact anyone."""
    value = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", value)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), value)


def mask_recipients(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str) and (key in _RECIPIENT_KEYS or key == "event"):
            event[key] = mask_value(value)
    return event


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure_logging(level: str = "info") -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_recipients,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )

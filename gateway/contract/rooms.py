"""Every operation of the API, room by room: the one list the document is generated from."""

from __future__ import annotations

from gateway.contract import (
    callbacks,
    campaigns,
    content,
    events,
    messages,
    numbers,
    ops,
    recipients,
    reports,
    suppressions,
    templates,
    tracking,
    webhooks,
)
from gateway.contract.operations import Named, Operation

ALL_OPERATIONS: tuple[Operation, ...] = (
    *messages.OPERATIONS,
    *numbers.OPERATIONS,
    *suppressions.OPERATIONS,
    *templates.OPERATIONS,
    *content.OPERATIONS,
    *reports.OPERATIONS,
    *events.OPERATIONS,
    *tracking.OPERATIONS,
    *callbacks.OPERATIONS,
    *ops.OPERATIONS,
    *recipients.OPERATIONS,
    *webhooks.OPERATIONS,
    *campaigns.OPERATIONS,
)
# Schemas named in the document without an operation of their own (clients generate types from them).
NAMED_SCHEMAS: tuple[Named, ...] = (*messages.NAMED, *events.NAMED)

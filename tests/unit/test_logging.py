"""Logs are JSON, carry the bound message id, tenant and campaign, and never a full recipient."""

from __future__ import annotations

import json

import pytest
import structlog

from gateway.logging import configure_logging, mask_value


def test_recipients_are_masked_and_context_is_bound(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    try:
        log = structlog.get_logger("test").bind(message_id="msg_1", tenant="acme", campaign="spring")
        log.info("could not reach +8613812345678", to="+8613812345678", email="alice.smith@example.com")
        line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    finally:
        structlog.reset_defaults()
    assert line["message_id"] == "msg_1" and line["tenant"] == "acme" and line["campaign"] == "spring"
    assert line["level"] == "info" and "timestamp" in line
    assert line["to"] == "+86138****5678"
    assert line["event"] == "could not reach +86138****5678"
    assert line["email"] == "a***@example.com"
    assert "13812345678" not in json.dumps(line)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+8613812345678", "+86138****5678"),
        ("+14155552671", "+141****2671"),
        ("+1415555", "+1****55"),
        ("call 4155552671 now", "call 4155****71 now"),
        ("+123", "+123"),
    ],
)
def test_at_least_four_digits_are_hidden(raw: str, masked: str) -> None:
    assert mask_value(raw) == masked

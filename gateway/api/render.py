"""JSON representations of stored records, as the API contract shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.domain.models import DISPATCHABLE, Status


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(text: str | None, default: Any) -> Any:
    return orjson.loads(text) if text else default


def template_pin(content: str | None) -> dict[str, Any] | None:
    """The template a job was rendered from (name, version, locale, params), kept with its content."""
    if not content or '"template":{' not in content:
        return None
    pin = orjson.loads(content).get("template")
    return pin if isinstance(pin, dict) else None


def accepted_message(row: dict[str, Any]) -> dict[str, Any]:
    """The answer to an accepted job. Built from stored fields only, so a replay of the same
    idempotency key gives the very same answer as the first request."""
    answer = {
        "id": row["id"],
        "status": Status.HELD_OUT if row["status"] == Status.HELD_OUT else Status.QUEUED,
        "channel": row["channel"],
        "to": row["to_addr"],
        "category": row["category"],
        "user_id": row["user_id"],
        "campaign": row["campaign"],
        "variant": row["variant"],
        "send_at": iso(row["send_at"]),
        "expires_at": iso(row["expires_at"]),
        "idempotency_key": row["idempotency_key"],
        "created_at": iso(row["created_at"]),
    }
    pin = template_pin(row["content"])
    if pin is not None:
        answer["template"] = {k: v for k, v in pin.items() if k != "params"}
    return answer


def message(row: dict[str, Any]) -> dict[str, Any]:
    body = {
        "id": row["id"],
        "status": row["status"],
        "reason": row["reason"],
        "channel": row["channel"],
        "to": row["to_addr"],
        "content": _json(row["content"], {}),
        "category": row["category"],
        "user_id": row["user_id"],
        "campaign": row["campaign"],
        "variant": row["variant"],
        "send_at": iso(row["send_at"]),
        "expires_at": iso(row["expires_at"]),
        "fallback": row["fallback"].split(",") if row["fallback"] else [],
        "metadata": _json(row["metadata"], {}),
        "tz": row["tz"],
        "provider": row["provider"],
        "provider_message_id": row["provider_message_id"],
        "sender": row["sender"],
        "attempt_count": row["attempt_count"],
        "next_attempt_at": iso(row["next_attempt_at"]) if row["status"] in DISPATCHABLE else None,
        "error_code": row["error_code"],
        "error_message": row["error_message"],
        "idempotency_key": row["idempotency_key"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    pin = template_pin(row["content"])
    if pin is not None:
        body["template"] = pin
    return body


def message_detail(row: dict[str, Any]) -> dict[str, Any]:
    body = message(row)
    body["attempts"] = [
        {
            "number": a["number"],
            "channel": a["channel"],
            "provider": a["provider"],
            "sender": a["sender"],
            "started_at": iso(a["started_at"]),
            "finished_at": iso(a["finished_at"]),
            "outcome": a["outcome"],
            "error_kind": a["error_kind"],
            "error_code": a["error_code"],
            "error_message": a["error_message"],
            "provider_message_id": a["provider_message_id"],
            "cost": a.get("cost"),
            "currency": a.get("currency"),
        }
        for a in row["attempts"]
    ]
    body["receipts"] = [
        {
            "provider": r["provider"],
            "provider_message_id": r["provider_message_id"],
            "status": r["status"],
            "error_code": r["error_code"],
            "occurred_at": iso(r["occurred_at"]),
            "received_at": iso(r["received_at"]),
        }
        for r in row["receipts"]
    ]
    body["clicks"] = row.get("clicks", [])
    body["events"] = [
        {
            "at": iso(e["at"]),
            "type": e["type"],
            "status": e["status"],
            "reason": e["reason"],
            "detail": _json(e["detail"], {}),
        }
        for e in row["events"]
    ]
    return body

"""The sandbox: a local simulator of a provider for every channel, with latency, failures and receipts.

It behaves like a remote service: it keeps its own ledger of what it accepted (so crash recovery
can ask it), and it reports delivery by calling the gateway's real receipt endpoint with signed
requests, so the embedded default shows the whole loop without any account.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from providers.base import (
    CallbackFormatError,
    Capabilities,
    ErrorKind,
    InboundMessage,
    InboundRequest,
    JsonCallbackAnswers,
    Lookup,
    Outbound,
    ProviderError,
    Receipt,
    SendResult,
    SignatureError,
)

log = structlog.get_logger("providers.sandbox")

SIGNATURE_HEADER = "Sandbox-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
RECEIPT_BATCH = 500


@dataclass(frozen=True, slots=True)
class SimulatedError:
    code: str
    kind: ErrorKind
    weight: float = 1.0
    message: str = ""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: str, header: str | None, body: bytes, now: float, tolerance: float = SIGNATURE_TOLERANCE_SECONDS
) -> None:
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        raise SignatureError("signature header has no valid timestamp") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError("signature timestamp outside the tolerance window (replayed or stale)")
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        raise SignatureError("signature does not match")


def ledger_beside_database(ledger_path: str | None, database_url: str) -> str | None:
    """Where the ledger is kept. A relative path is taken beside the SQLite database file, so every
    process on one database shares one ledger whatever folder it was started from: crash recovery
    asks that ledger what the "provider" took. PostgreSQL has no such folder; there a relative path
    stays relative to the working directory (give workers an absolute one)."""
    if ledger_path is None or os.path.isabs(ledger_path) or not database_url.startswith("sqlite:///"):
        return ledger_path
    database = database_url.removeprefix("sqlite:///")
    if database in ("", ":memory:"):
        return ledger_path
    return os.path.join(os.path.dirname(os.path.abspath(database)), ledger_path)


class _ServerBusy(Exception):
    """The gateway answered 5xx: worth another try."""


class SandboxProvider(JsonCallbackAnswers):
    name = "sandbox"

    def __init__(
        self,
        *,
        receipt_url: str | None,
        secret: str,
        latency_ms: float = 20.0,
        failure_rate: float = 0.0,
        errors: Sequence[SimulatedError] = (),
        delivery_rate: float = 1.0,
        receipt_delay_ms: float = 200.0,
        ledger_path: str | None = None,
        seed: int | None = None,
        filtered_senders: Sequence[str] = (),
        receipts_per_segment: bool = False,
    ) -> None:
        self.capabilities = Capabilities(
            channels=frozenset({"sms", "voice", "push", "email", "webhook"}),
            receipts=receipt_url is not None,
            lookup=True,
        )
        self.receipt_url = receipt_url
        # Senders the simulated carrier treats as spam: their messages are accepted, then filtered.
        self.filtered_senders = set(filtered_senders)
        # As SMPP routes do: one receipt per segment of a long SMS, which the gateway must combine.
        self.receipts_per_segment = receipts_per_segment
        self.secret = secret
        self.latency = latency_ms / 1000
        self.failure_rate = failure_rate
        self.errors = list(errors) or [SimulatedError("SBX-503", ErrorKind.TRANSIENT, 1.0, "service unavailable")]
        self.delivery_rate = delivery_rate
        self.receipt_delay = receipt_delay_ms / 1000
        self.ledger_path = ledger_path
        self._random = random.Random(seed)
        self._ledger_fd: int | None = None
        self._ledger: dict[str, str] | None = None
        self._ledger_read_to = 0  # bytes of the ledger file read into _ledger
        self._pending: list[tuple[float, Receipt]] = []
        self._wakeup = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.sent_count = 0

    async def start(self) -> None:
        if self.ledger_path:
            if self.receipt_url:
                # A real provider keeps reporting after our crash; so does the sandbox: receipts that
                # were owed when the last process died are sent now.
                self._ledger, owed = await asyncio.to_thread(self._read_ledger)
                self._pending.extend((0.0, receipt) for receipt in owed)
            self._ledger_fd = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if self.receipt_url:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            self._flusher = asyncio.create_task(self._flush_receipts(), name="sandbox-receipts")

    async def close(self) -> None:
        if self._flusher:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._session:
            await self._session.close()
        if self._ledger_fd is not None:
            os.close(self._ledger_fd)
            self._ledger_fd = None

    async def send(self, message: Outbound) -> SendResult:
        if self.latency:
            await asyncio.sleep(self.latency * self._random.uniform(0.5, 1.5))
        if self.failure_rate and self._random.random() < self.failure_rate:
            chosen = self._random.choices(self.errors, weights=[e.weight for e in self.errors])[0]
            retry_after = 1.0 if chosen.kind == ErrorKind.RATE_LIMITED else None
            return SendResult(error=ProviderError(chosen.kind, chosen.code, chosen.message, retry_after))
        sid = "SBX" + uuid.uuid4().hex
        fate = "delivered" if self._random.random() < self.delivery_rate else "undelivered"
        if message.sender is not None and message.sender in self.filtered_senders:
            fate = "filtered"
        self._remember(message.reference, sid, fate)
        self.sent_count += 1
        if self.receipt_url:
            due = time.monotonic() + self.receipt_delay
            if self.receipts_per_segment and message.channel == "sms" and message.segments > 1:
                self._pending.extend(
                    (due, r) for r in _segment_receipts(sid, message.reference, fate, message.segments)
                )
            else:
                self._pending.append((due, _receipt(sid, message.reference, fate)))
            self._wakeup.set()
        return SendResult(provider_message_id=sid)

    def _remember(self, reference: str, sid: str, fate: str) -> None:
        # One unbuffered append per send: the line is in the kernel before send() returns, so it
        # survives a kill -9 of this process, as a remote provider's record would.
        if self._ledger_fd is not None:
            line = {"ref": reference, "sid": sid, "fate": fate, "at": time.time()}
            os.write(self._ledger_fd, orjson.dumps(line) + b"\n")
        if self._ledger is not None:
            self._ledger[reference] = sid

    async def lookup(self, reference: str) -> Lookup | None:
        # Like a real provider's record, the ledger is shared: another worker process may have
        # accepted this reference since we last looked. Only what was appended since is read (off
        # the event loop: only crash recovery asks).
        await asyncio.to_thread(self._catch_up)
        sid = (self._ledger or {}).get(reference)
        return Lookup(accepted=sid is not None, provider_message_id=sid)

    def _catch_up(self) -> None:
        if self._ledger is None:
            self._ledger, _ = self._read_ledger()
        elif self.ledger_path and os.path.exists(self.ledger_path):
            entries, self._ledger_read_to = _ledger_entries(self.ledger_path, self._ledger_read_to)
            self._ledger.update((e["ref"], e["sid"]) for e in entries if "ref" in e and "sid" in e)

    def _read_ledger(self) -> tuple[dict[str, str], list[Receipt]]:
        """What was accepted (reference -> sid), and the receipts still owed for it."""
        ledger: dict[str, str] = {}
        owed: dict[str, Receipt] = {}
        if self.ledger_path and os.path.exists(self.ledger_path):
            entries, self._ledger_read_to = _ledger_entries(self.ledger_path, 0)
            for entry in entries:
                with contextlib.suppress(KeyError):
                    if "receipted" in entry:
                        owed.pop(entry["receipted"], None)
                        continue
                    ledger[entry["ref"]] = entry["sid"]
                    owed[entry["sid"]] = _receipt(entry["sid"], entry["ref"], entry.get("fate", "delivered"))
        return ledger, list(owed.values())

    async def _flush_receipts(self) -> None:
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            now = time.monotonic()
            due = [r for at, r in self._pending if at <= now]
            if not due:
                await asyncio.sleep(min(at for at, _ in self._pending) - now)
                continue
            self._pending = [(at, r) for at, r in self._pending if at > now]
            for start in range(0, len(due), RECEIPT_BATCH):
                await self._post(due[start : start + RECEIPT_BATCH])

    async def _post(self, batch: list[Receipt]) -> None:
        assert self._session is not None and self.receipt_url is not None
        body = orjson.dumps(
            {
                "receipts": [
                    {
                        "sid": r.provider_message_id,
                        "reference": r.reference,
                        "status": r.status,
                        "error_code": r.error_code,
                        "occurred_at": time.time(),
                        **({"part": r.part, "parts": r.parts} if r.parts else {}),
                    }
                    for r in batch
                ]
            }
        )
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, _ServerBusy):
            # Nearly every post goes through the first time: the retrying machinery is set up only
            # for one that did not (a receipt at a time, its cost showed in the worker's profile).
            return await self._post_once(body, batch)
        try:
            # The gateway may be restarting: keep trying a while, as a provider's callback queue does.
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type((aiohttp.ClientError, TimeoutError, _ServerBusy)),
                wait=wait_exponential(multiplier=0.2, max=5),
                stop=stop_after_attempt(8),
                reraise=True,
            ):
                with attempt:
                    await self._post_once(body, batch)
        except (aiohttp.ClientError, TimeoutError, _ServerBusy) as exc:
            # Left owed in the ledger: the next process start sends them again.
            log.warning("sandbox receipts not delivered", count=len(batch), error=repr(exc))

    async def _post_once(self, body: bytes, batch: list[Receipt]) -> None:
        assert self._session is not None and self.receipt_url is not None
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, int(time.time()), body)}
        async with self._session.post(self.receipt_url, data=body, headers=headers) as response:
            if response.status >= 500:
                raise _ServerBusy(response.status)
            if response.status >= 400:
                log.warning("sandbox receipts refused", status=response.status, count=len(batch))
                return
        if self._ledger_fd is not None:
            done = b"".join(orjson.dumps({"receipted": r.provider_message_id}) + b"\n" for r in batch)
            os.write(self._ledger_fd, done)

    def parse_inbound(self, request: InboundRequest) -> list[InboundMessage]:
        verify(self.secret, request.headers.get(SIGNATURE_HEADER), request.body, time.time())
        try:
            items = orjson.loads(request.body)["messages"]
            return [
                InboundMessage(
                    sender=str(item["from"]),
                    to=item.get("to"),
                    text=str(item["text"]),
                    received_at=item.get("received_at"),
                )
                for item in items
            ]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise CallbackFormatError(f"not a sandbox inbound batch: {exc}") from None

    def parse_receipts(self, request: InboundRequest) -> list[Receipt]:
        verify(self.secret, request.headers.get(SIGNATURE_HEADER), request.body, time.time())
        try:
            payload = orjson.loads(request.body)
            return [_receipt_of(item) for item in _listed(payload["receipts"], "receipts")]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CallbackFormatError(f"not a sandbox receipt batch: {exc}") from None


def _text(item: dict[str, object], name: str, limit: int, required: bool) -> str | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise ValueError(f"{name} must be a string of 1-{limit} characters")
    return value


def _receipt_of(item: object) -> Receipt:
    if not isinstance(item, dict):
        raise TypeError("each receipt must be an object")
    occurred = item.get("occurred_at")
    if occurred is not None and (isinstance(occurred, bool) or not isinstance(occurred, int | float)):
        raise ValueError("occurred_at must be a number")
    sid = _text(item, "sid", 128, True)
    assert sid is not None
    error_code = _text(item, "error_code", 64, False)
    part, parts = item.get("part"), item.get("parts")
    if parts is not None or part is not None:
        if not (isinstance(part, int) and isinstance(parts, int) and not isinstance(part, bool)):
            raise ValueError("part and parts must be whole numbers, given together")
        if not 1 <= part <= parts <= 255:
            raise ValueError("part must be 1..parts and parts at most 255")
    return Receipt(
        provider_message_id=sid,
        reference=_text(item, "reference", 40, False),
        status=_status(item.get("status")),
        error_code=error_code,
        occurred_at=float(occurred) if occurred is not None else None,
        raw=orjson.dumps(item).decode(),
        error_kind=RECEIPT_ERRORS.get(error_code) if error_code else None,
        part=part,
        parts=parts,
    )


def sign_inbound(secret: str, messages: list[dict[str, object]], timestamp: int | None = None) -> tuple[bytes, str]:
    """A body and signature header as the sandbox sends replies (used by tests and demos)."""
    body = orjson.dumps({"messages": messages})
    return body, sign(secret, int(time.time()) if timestamp is None else timestamp, body)


# The sandbox's receipt error codes and their classes (its own wire format, like a provider's table).
RECEIPT_ERRORS: dict[str, ErrorKind] = {
    "SBX-30003": ErrorKind.TRANSIENT,  # unreachable handset
    "SBX-30007": ErrorKind.SENDER_FLAGGED,  # the carrier filtered the message as spam
}


def _receipt(sid: str, reference: str, fate: str) -> Receipt:
    if fate == "filtered":
        return Receipt(sid, "undelivered", reference, "SBX-30007", error_kind=ErrorKind.SENDER_FLAGGED)
    return Receipt(
        provider_message_id=sid,
        reference=reference,
        status=fate,
        error_code=None if fate == "delivered" else "SBX-30003",
        error_kind=None if fate == "delivered" else ErrorKind.TRANSIENT,
    )


def _segment_receipts(sid: str, reference: str, fate: str, segments: int) -> list[Receipt]:
    """One receipt per segment; a message that is not delivered lost its last segment."""
    whole = _receipt(sid, reference, fate)
    delivered = _receipt(sid, reference, "delivered")
    return [
        dataclasses.replace(whole if part == segments else delivered, part=part, parts=segments)
        for part in range(1, segments + 1)
    ]


def _status(value: object) -> str:
    if value not in ("sent", "delivered", "undelivered", "failed"):
        raise ValueError(f"unknown receipt status {value!r}")
    return str(value)


def _ledger_entries(path: str, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The entries appended to the ledger from `offset` on, and where the next read starts: a line
    still being written by another process (no newline yet) is left for the next read."""
    with open(path, "rb") as ledger:
        ledger.seek(offset)
        data = ledger.read()
    complete = data.rfind(b"\n") + 1
    entries = []
    for line in data[:complete].splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            entry = orjson.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries, offset + complete


def _listed(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{name} must be a list")
    return value

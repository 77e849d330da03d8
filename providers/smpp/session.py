"""One SMPP bind: the TCP connection, its bind, a window of outstanding submit_sm, enquire_link
keep-alive, deliver_sm handed up and answered only when the provider says so, and a graceful unbind.

What a submit's failure means is kept exact, because the worker's duplicate-or-lose decision rests on
it: `NotSent` when the submit_sm never left this process (safe to send on another bind), `NoAnswer`
when it was written and no response came (the SMSC may have it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import cast

import structlog

from providers.smpp import pdu
from providers.smpp.pdu import Frame

log = structlog.get_logger("providers.smpp")

BIND_NAMES = {pdu.BIND_TRANSCEIVER: "transceiver", pdu.BIND_TRANSMITTER: "transmitter", pdu.BIND_RECEIVER: "receiver"}
MAX_SEQUENCE = 0x7FFFFFFF


class BindRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused with command_status 0x{status:08X}")
        self.status = status


class NotSent(Exception):
    """The submit_sm never left this process."""


class NoAnswer(Exception):
    """The submit_sm was written, and no response came (timeout, or the connection went)."""


class Session(asyncio.Protocol):
    def __init__(
        self,
        *,
        label: str,
        bind_command: int,
        window: int,
        response_timeout: float,
        enquire_link_seconds: float,
        max_per_second: float | None,
        throttle_backoff: tuple[float, float],
        on_deliver: Callable[[Session, Frame], None],
    ) -> None:
        self.label = label
        self.bind_command = bind_command
        self.window_size = window
        self.window = asyncio.Semaphore(window)
        self.response_timeout = response_timeout
        self.enquire_link_seconds = enquire_link_seconds
        self.interval = 1.0 / max_per_second if max_per_second else 0.0
        self.on_deliver = on_deliver
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sequences = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Frame]] = {}
        # Requests written in this turn of the loop, sent together in one write when it ends: a
        # window refilled at once costs one send() instead of one per submit_sm (sequence, PDU).
        self.outbox: list[tuple[int, bytes]] = []
        self.bound = False  # the bind answered OK and no unbind or loss since
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.next_slot = 0.0  # monotonic time the next submit may leave (per-bind rate, throttling)
        self.throttle_first, self.throttle_longest = throttle_backoff
        self.throttle_wait = 0.0
        self.paused_at = 0.0
        self._keepalive: asyncio.Task[None] | None = None

    # -- the connection ------------------------------------------------------------------------

    @property
    def can_submit(self) -> bool:
        return self.bound and self.bind_command != pdu.BIND_RECEIVER

    @property
    def in_flight(self) -> int:
        return len(self.pending)

    async def open(self, host: str, port: int, system_id: str, password: str, system_type: str) -> None:
        """Connect and bind; raises BindRefused, OSError or TimeoutError."""
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.create_connection(lambda: self, host, port), self.response_timeout)
        try:
            answer = await self._request(
                self.bind_command,
                lambda sequence: pdu.bind(self.bind_command, sequence, system_id, password, system_type),
            )
        except NoAnswer as exc:
            self.abort()
            raise TimeoutError(f"{self.label}: no bind response") from exc
        if answer.status != pdu.ESME_ROK:
            self.abort()
            raise BindRefused(answer.status)
        self.bound = True
        self._keepalive = asyncio.create_task(self._keep_alive(), name=f"{self.label}-enquire-link")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, though they behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.bound = False
        self.transport = None
        unsent = {sequence for sequence, _ in self.outbox}
        self.outbox.clear()
        for sequence, future in self.pending.items():
            if not future.done():
                # A request still in the outbox never left; the others may be with the SMSC.
                gone = NotSent if sequence in unsent else NoAnswer
                future.set_exception(gone(f"{self.label}: connection lost"))
        if not self.lost.done():
            self.lost.set_result(None)
        if self._keepalive is not None:
            self._keepalive.cancel()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            frames = pdu.frames(self.buffer)
        except ValueError as exc:
            log.exception("SMPP stream corrupt; dropping the connection", bind=self.label, error=str(exc))
            self.abort()
            return
        for frame in frames:
            self._handle(frame)

    def _handle(self, frame: Frame) -> None:
        if frame.command_id & pdu.RESPONSE:
            # Responses, and generic_nack, answer one of ours by sequence number.
            future = self.pending.get(frame.sequence)
            if future is not None and not future.done():
                future.set_result(frame)
        elif frame.command_id == pdu.DELIVER_SM:
            self.on_deliver(self, frame)
        elif frame.command_id == pdu.ENQUIRE_LINK:
            self.write(pdu.pdu(pdu.ENQUIRE_LINK | pdu.RESPONSE, pdu.ESME_ROK, frame.sequence))
        elif frame.command_id == pdu.UNBIND:
            # The SMSC ends the session: answer, stop submitting, and let the provider bind again.
            self.bound = False
            self.write(pdu.pdu(pdu.UNBIND | pdu.RESPONSE, pdu.ESME_ROK, frame.sequence))
            if self.transport is not None:
                self.transport.close()
        else:
            self.write(pdu.pdu(pdu.GENERIC_NACK, 0x03, frame.sequence))  # ESME_RINVCMDID

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def answer_deliver(self, sequence: int, status: int) -> None:
        self.write(pdu.pdu(pdu.DELIVER_SM | pdu.RESPONSE, status, sequence, b"\x00"))

    # -- requests ------------------------------------------------------------------------------

    def _next_sequence(self) -> int:
        sequence = next(self.sequences)
        if sequence >= MAX_SEQUENCE:
            self.sequences = itertools.count(1)
        return sequence

    async def _request(self, command_id: int, build: Callable[[int], bytes]) -> Frame:
        if self.transport is None or self.transport.is_closing():
            raise NotSent(f"{self.label}: not connected")
        sequence = self._next_sequence()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Frame] = loop.create_future()
        self.pending[sequence] = future
        if not self.outbox:
            loop.call_soon(self._send_outbox)
        self.outbox.append((sequence, build(sequence)))
        # A timer of our own rather than asyncio.wait_for, which costs a waiter future and callbacks
        # more per request (Python 3.11).
        timer = loop.call_later(self.response_timeout, self._no_answer, sequence)
        try:
            return await future
        finally:
            timer.cancel()
            self.pending.pop(sequence, None)

    def _send_outbox(self) -> None:
        requests, self.outbox = self.outbox, []
        if not requests:
            return
        if self.transport is None or self.transport.is_closing():
            for sequence, _ in requests:
                future = self.pending.get(sequence)
                if future is not None and not future.done():
                    future.set_exception(NotSent(f"{self.label}: not connected"))
            return
        self.transport.write(b"".join(data for _, data in requests))

    def _no_answer(self, sequence: int) -> None:
        future = self.pending.get(sequence)
        if future is not None and not future.done():
            future.set_exception(NoAnswer(f"{self.label}: no response in {self.response_timeout:g} s"))

    @property
    def paused(self) -> bool:
        return self.next_slot > time.monotonic()

    async def submit(self, build: Callable[[int], bytes]) -> Frame:
        """One submit_sm within the window; raises NotSent or NoAnswer."""
        async with self.window:
            await self._wait_for_slot()
            if not self.can_submit:
                raise NotSent(f"{self.label}: not bound")
            sent_at = time.monotonic()
            frame = await self._request(pdu.SUBMIT_SM, build)
        if frame.status in pdu.THROTTLED:
            self._throttled(sent_at)
        elif frame.status == pdu.ESME_ROK:
            self.throttle_wait = 0.0
        return frame

    async def _wait_for_slot(self) -> None:
        now = time.monotonic()
        slot = max(self.next_slot, now)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def _throttled(self, sent_at: float) -> None:
        """The SMSC throttled this bind: its next submits wait, longer each time in a row. Refusals
        of submits already in flight when the pause began do not lengthen it again."""
        if sent_at < self.paused_at:
            return
        now = time.monotonic()
        self.throttle_wait = min(self.throttle_longest, self.throttle_wait * 2 or self.throttle_first)
        self.paused_at = now
        self.next_slot = max(self.next_slot, now + self.throttle_wait)

    async def _keep_alive(self) -> None:
        while self.bound:
            await asyncio.sleep(self.enquire_link_seconds)
            try:
                await self._request(pdu.ENQUIRE_LINK, lambda sequence: pdu.pdu(pdu.ENQUIRE_LINK, 0, sequence))
            except (NoAnswer, NotSent):
                log.warning("SMPP enquire_link unanswered; reconnecting", bind=self.label)
                self.abort()
                return

    async def unbind(self) -> None:
        """Stop submitting, let outstanding submits finish, unbind, close."""
        was_bound, self.bound = self.bound, False
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self.pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self.pending.values(), return_exceptions=True), self.response_timeout
                )
        if was_bound:
            with contextlib.suppress(NoAnswer, NotSent):
                await self._request(pdu.UNBIND, lambda sequence: pdu.pdu(pdu.UNBIND, 0, sequence))
        if self.transport is not None:
            self.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.lost), 2.0)

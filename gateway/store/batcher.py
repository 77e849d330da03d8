"""Group commit: callers that arrive together share one transaction, then each gets its own answer.

One fsync per batch instead of one per request is what lets a durable accept keep up with a bare
handler. A batch is flushed a few milliseconds after its first item (or at once when full); while
one flush runs, the next batch gathers, so batches grow exactly as fast as the disk is slow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger("gateway.store")
Item = TypeVar("Item")
Result = TypeVar("Result")
Value = TypeVar("Value", covariant=True)


@dataclass(frozen=True, slots=True)
class Committed(Generic[Value]):
    """A transaction's answer once committed, with what ends when the commit is on disk (None: it is
    already). A flush that answers this lets the next batch begin its transaction meanwhile; its own
    callers are answered only once `durable` ends."""

    value: Value
    durable: asyncio.Future[None] | None = None


class GroupCommitter(Generic[Item, Result]):
    def __init__(
        self,
        flush: Callable[[list[Item]], Awaitable[Sequence[Result] | Committed[Sequence[Result]]]],
        *,
        delay_seconds: float = 0.002,
        max_items: int = 2000,
        name: str = "group-commit",
        paced: bool = False,
    ) -> None:
        self._flush = flush
        self._delay = delay_seconds
        # Paced: a batch waits `delay_seconds` even while flushes follow each other, for items nobody
        # waits on (each commit costs a fsync's worth of CPU however few rows it holds).
        self._paced = paced
        self._max_items = max_items
        self._name = name
        self._items: list[Item] = []
        # (offset into _items, count, future) per submission
        self._groups: list[tuple[int, int, asyncio.Future[list[Result]] | None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        self._reaching_disk: set[asyncio.Task[None]] = set()  # committed flushes waiting for their sync
        self._at_once = False  # a pending item asked not to wait for the delay
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    async def submit(self, item: Item) -> Result:
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: Sequence[Item]) -> list[Result]:
        """All items land in the same transaction (they are never split across two batches); one
        future per submission, not per item, since a batch request brings a thousand."""
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self._add(items, future)
        return await future

    def add(self, items: Sequence[Item], *, at_once: bool = False) -> None:
        """Items for the next commit, for a caller that goes on without waiting; a failed commit of
        them is logged. `at_once`: that commit does not wait for the delay (nor, paced, for the
        running one's)."""
        self._at_once = self._at_once or at_once
        self._add(items, None)

    def _add(self, items: Sequence[Item], future: asyncio.Future[list[Result]] | None) -> None:
        if self._closed:
            raise RuntimeError(f"{self._name} is closed")
        self._groups.append((len(self._items), len(items), future))
        self._items.extend(items)
        self._schedule()

    def _schedule(self) -> None:
        if self._running is not None:
            return  # the running flush starts the next one when it ends
        if len(self._items) >= self._max_items or self._delay == 0 or self._at_once:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay, self._start)

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running is not None or not self._items:
            return
        items, groups = self._items, self._groups
        self._items, self._groups, self._at_once = [], [], False
        self._running = asyncio.get_running_loop().create_task(self._run(items, groups), name=self._name)

    async def _run(self, items: list[Item], groups: list[tuple[int, int, asyncio.Future[list[Result]] | None]]) -> None:
        this = asyncio.current_task()
        try:
            answer = await self._flush(items)
            if isinstance(answer, Committed):
                results = _one_each(list(answer.value), items, self._name)
                if answer.durable is not None:
                    self._hand_over(this)
                    await answer.durable
            else:
                results = _one_each(list(answer), items, self._name)
        except BaseException as exc:  # every waiter must learn the batch failed, whatever the error
            unanswered = sum(count for _, count, future in groups if future is None)
            if unanswered:
                log.exception("items not committed: the commit failed", committer=self._name, items=unanswered)
            for _, _, future in groups:
                if future is not None and not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for offset, count, future in groups:
                if future is not None and not future.done():
                    future.set_result(results[offset : offset + count])
        finally:
            self._reaching_disk.discard(this)
            if self._running is this:
                self._running = None
                self._next()

    def _hand_over(self, this: asyncio.Task[None] | None) -> None:
        """Committed, not yet on disk: the next batch may begin its transaction (its own commit's sync
        then covers this one's too)."""
        if this is not None and self._running is this:
            self._reaching_disk.add(this)
            self._running = None
            self._next()

    def _next(self) -> None:
        if self._items:
            if self._paced:
                self._schedule()
            else:
                self._start()

    async def drain(self) -> None:
        """Flush what is pending and refuse new items (graceful shutdown)."""
        self._closed = True
        await self.settle()

    async def settle(self) -> None:
        """Flush what is pending now, taking new items all the while."""
        while self._items or self._running is not None or self._reaching_disk:
            if self._running is None:
                self._start()
            running = [self._running] if self._running is not None else list(self._reaching_disk)
            if running:
                await asyncio.wait(running)


def _one_each(results: list[Result], items: list[Item], name: str) -> list[Result]:
    if len(results) != len(items):
        raise RuntimeError(f"{name}: {len(results)} results for {len(items)} items")
    return results

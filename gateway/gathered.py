"""Items gathered for one flush: callers note them without waiting; a flush takes them a gathering
time after the first, at once after an urgent one, and nothing wakes while none are noted (on a
small VM each wake-up of an idle process costs 0.3-0.7 ms of CPU, docs/BENCHMARKS.md)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Gathered(Generic[Item]):
    def __init__(self, seconds: float, most: int) -> None:
        self.seconds = seconds
        self.most = most  # this many noted is as urgent as an urgent one
        self._items: list[Item] = []
        self._noted = asyncio.Event()
        self._urgent = asyncio.Event()

    def note(self, item: Item, *, urgent: bool = False) -> None:
        self._items.append(item)
        self._noted.set()
        if urgent or len(self._items) >= self.most:
            self._urgent.set()

    async def next(self) -> list[Item]:
        """What was noted, once something is and its gathering time is up (or one is urgent)."""
        await self._noted.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._urgent.wait(), self.seconds)
        return self.take()

    def take(self) -> list[Item]:
        self._noted.clear()
        self._urgent.clear()
        items, self._items = self._items, []
        return items

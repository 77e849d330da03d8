"""Group commit: callers that arrive together share one flush and each gets its own answers."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store.batcher import Committed, GroupCommitter


async def test_concurrent_submissions_share_a_flush_and_get_their_own_results() -> None:
    flushes: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushes.append(items)
        await asyncio.sleep(0.01)
        return [item * 10 for item in items]

    committer: GroupCommitter[int, int] = GroupCommitter(flush, delay_seconds=0.005)
    results = await asyncio.gather(committer.submit(1), committer.submit_many([2, 3, 4]), committer.submit(5))
    assert results == [10, [20, 30, 40], 50]
    assert flushes == [[1, 2, 3, 4, 5]]
    # While one flush runs, the next batch gathers.
    first = asyncio.create_task(committer.submit(6))
    await asyncio.sleep(0.007)
    later = await asyncio.gather(committer.submit(7), committer.submit(8))
    assert await first == 60 and later == [70, 80]
    assert flushes[1:] == [[6], [7, 8]]


async def test_a_failed_flush_fails_every_waiter_and_drain_flushes_the_rest() -> None:
    calls = 0

    async def flush(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return items

    committer: GroupCommitter[str, str] = GroupCommitter(flush, delay_seconds=0.005)
    outcomes = await asyncio.gather(committer.submit("a"), committer.submit_many(["b", "c"]), return_exceptions=True)
    assert all(isinstance(o, OSError) for o in outcomes)
    pending = asyncio.create_task(committer.submit("d"))
    await asyncio.sleep(0)
    await committer.drain()
    assert await pending == "d"
    with pytest.raises(RuntimeError, match="closed"):
        await committer.submit("e")


async def test_a_committed_batch_is_answered_once_on_disk_while_the_next_batch_begins() -> None:
    flushes: list[list[int]] = []
    syncs: list[asyncio.Future[None]] = []

    async def flush(items: list[int]) -> Committed[list[int]]:
        flushes.append(items)
        syncs.append(asyncio.get_running_loop().create_future())
        return Committed([item * 10 for item in items], syncs[-1])

    committer: GroupCommitter[int, int] = GroupCommitter(flush, delay_seconds=0)
    first = asyncio.create_task(committer.submit(1))
    await asyncio.sleep(0.01)
    assert flushes == [[1]] and not first.done(), "answered before its commit was on disk"
    second = asyncio.create_task(committer.submit_many([2, 3]))
    await asyncio.sleep(0.01)
    assert flushes == [[1], [2, 3]], "the next batch waited for the last one's sync"
    syncs[1].set_result(None)  # a later sync covers the earlier commit too, but each is answered by its own
    await asyncio.sleep(0.01)
    assert second.done() and not first.done()
    syncs[0].set_exception(OSError("fsync failed"))
    with pytest.raises(OSError, match="fsync failed"):
        await first
    assert await second == [20, 30]
    third = asyncio.create_task(committer.submit(4))
    await asyncio.sleep(0.01)
    closing = asyncio.create_task(committer.drain())
    await asyncio.sleep(0.01)
    assert not closing.done(), "drained before the last commit was on disk"
    syncs[2].set_result(None)
    await closing
    assert await third == 40

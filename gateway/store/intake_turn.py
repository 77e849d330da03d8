"""Intake first at SQLite's write lock: a flag the accepts raise while they wait for it.

SQLite has one write lock for every process and no queue for it: a writer that finds it taken polls
(gateway.store.database), and a worker handing off a backlog, committing back to back, takes it again
before the waiting accept's next try most of the time. An accept that finds the lock taken raises
this flag; every other write beside the loop (the worker's claims and hand-offs, clicks, the callbacks' outbox),
before it asks for the lock, waits while the flag is up, for at most `sqlite_intake_first_ms` since
its process's last such write: the accepts waiting commit first, the others gather meanwhile and
commit more per turn. The trade, from no priority to a worker held to a third of its pace, is
measured in docs/BENCHMARKS.md ("The write lock let go before the fsync, accepts first at it").

The flag is the time (CLOCK_MONOTONIC, the same in every process) an accept last found the lock
taken, in a file beside the database that every process maps. A flag older than STALE_SECONDS is
down: an API process killed while waiting does not hold anyone back.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

STALE_SECONDS = 0.05
_FLAG = struct.Struct("d")


class IntakeTurn:
    def __init__(self, database_path: str) -> None:
        self.path = f"{database_path}-intake"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _FLAG.size:
                os.ftruncate(fd, _FLAG.size)
            self._flag = mmap.mmap(fd, _FLAG.size)
        finally:
            os.close(fd)  # the mapping keeps the file

    def raise_flag(self) -> None:
        _FLAG.pack_into(self._flag, 0, time.monotonic())

    def lower_flag(self) -> None:
        _FLAG.pack_into(self._flag, 0, 0.0)

    def waiting(self) -> bool:
        """An accept waits for the write lock now (a torn read of the 8 bytes reads as stale)."""
        since: float = _FLAG.unpack_from(self._flag, 0)[0]
        return 0.0 < time.monotonic() - since < STALE_SECONDS

    def close(self) -> None:
        self._flag.close()

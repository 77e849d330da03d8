"""Intake first at SQLite's write lock: a flag the API processes raise while an accept waits for it.

SQLite has one write lock for every process and no queue for it: a writer that finds it taken polls
(gateway.store.database), and a worker handing off a backlog, committing back to back, takes it again
before the waiting accept's next try most of the time. Single-job accepts beside a draining worker
then waited ~13 ms each (1.2 x Jasmin's /send, bench/smpp.py, where Jasmin's own dispatch stops). An
accept that finds the lock taken raises this flag; the worker's hand-off writes, before they ask for
the lock, wait while it is up, once per transaction: one group commit of every accept waiting goes
next, then the worker's (its marks and outcomes gather meanwhile, so it commits more per turn).

The flag is the time (CLOCK_MONOTONIC, the same in every process) the accept began to wait, in a file
beside the database that every process maps. A flag older than STALE_SECONDS is down: an API process
killed while waiting does not hold the worker back.
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

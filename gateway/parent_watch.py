"""A supervised process stops when its supervisor is gone, even one killed with SIGKILL.

On Linux the kernel sends SIGTERM at the parent's death (PR_SET_PDEATHSIG), which the process
answers with its usual graceful stop; elsewhere, and for a death before the request was made, the
parent id is polled: an orphan is re-parented, so a changed getppid() means the supervisor died.
Without this, an orphaned worker would go on dispatching beside the supervisor restarted by an
init system, with its memory state gone.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal
import sys

import structlog

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 1.0
log = structlog.get_logger("gateway")


def ask_for_signal_at_parent_death() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


async def watch_parent(parent: int, stop: asyncio.Event) -> None:
    ask_for_signal_at_parent_death()
    while os.getppid() == parent:  # noqa: ASYNC110 - no event announces it but the signal asked above
        await asyncio.sleep(POLL_SECONDS)
    log.warning("supervisor gone; stopping", supervisor_pid=parent)
    stop.set()

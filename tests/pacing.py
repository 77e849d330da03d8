"""How many sends a provider may see in one second under a throughput limit, as the sandbox stamps them.

The limiter grants at most `rate` sends in any second (after a burst of one). Each send then reaches
the provider `lag` after its grant: its `sending` commit and the loop's turn (the wait for throughput
comes before the commit, so a crash while waiting leaves the job queued, not in an unknowable
hand-off). Stamps in a window [s, s + 1) come from grants in [s - max lag, s + 1 - min lag): at most
rate x (1 + spread of the lags) + 1. On a quiet machine that is the rate itself; on a loaded one the
bound grows with the lag actually measured, never with an allowance picked to make a run pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def busiest_second(stamps: Iterable[float]) -> int:
    ordered = sorted(stamps)
    busiest, first = 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - 1.0:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest


def bound_for(rate: float, lags: Iterable[float]) -> int:
    spread = max(lags_list := list(lags)) - min(lags_list)
    return math.floor(rate * (1 + spread)) + 1

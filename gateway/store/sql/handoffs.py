"""One group commit for a worker's hand-off writes: the `sending` marks and the outcomes.

Committed apart, the marks and the outcomes took two transactions per round (two WAL appends and
fsyncs on SQLite, each rewriting the same message and index pages), and outcomes, whose senders
wait only to release their slot, were committed in small groups as answers trickled in. Here the
outcomes that came in meanwhile ride in the next marks' transaction, so a steady dispatch commits
once per round. The rules are the callers' (leases.py fences a mark by its lease, outcomes.py keeps
the status lattice); the outcomes are written first: a job whose outcome is pending has no mark
pending (its mark was committed before it was sent).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from gateway.store.batcher import GroupCommitter
from gateway.store.records import Outcome, ReceiptRecord, SendingMark
from gateway.store.sql.common import Room
from gateway.store.sql.leases import mark_sending
from gateway.store.sql.outcomes import record_outcomes

# A `sending` mark (with its lease in seconds) or an outcome; answered with whether the mark held,
# or with the receipts that had come before the outcome.
HandoffWrite = tuple[SendingMark, float] | Outcome
HandoffResult = bool | list[ReceiptRecord]


def write_handoffs(
    conn: Connection, outcomes: Sequence[Outcome], marks: Sequence[SendingMark], lease_until: float
) -> tuple[list[tuple[str, ReceiptRecord]], list[bool]]:
    held = record_outcomes(conn, outcomes) if outcomes else []
    return held, mark_sending(conn, marks, lease_until) if marks else []


class HandoffsRoom(Room):
    _handoffs: GroupCommitter[HandoffWrite, HandoffResult]

    async def _flush_handoffs(self, items: list[HandoffWrite]) -> list[HandoffResult]:
        outcomes = [item for item in items if isinstance(item, Outcome)]
        marks = [item for item in items if not isinstance(item, Outcome)]
        lease = max((seconds for _, seconds in marks), default=0.0)
        # Beside the loop: the replies of sends in flight are read while this commit waits on the
        # disk, and the next writes gather meanwhile. Answered once on disk, and only then does the
        # next batch begin: begun during the sync (as the accepts' do), a drain committed smaller
        # batches more often and dispatched a fifth slower (bench/smpp.py --parts drain).
        held, marked = await self.db.write_beside_loop(
            write_handoffs, outcomes, [mark for mark, _ in marks], time.time() + lease
        )
        by_message: dict[str, list[ReceiptRecord]] = {}
        for message_id, receipt in held:
            by_message.setdefault(message_id, []).append(receipt)
        answers = iter(marked)
        # A message appears once per flush at most in practice; its earlier receipts go to the first.
        return [by_message.pop(item.message_id, []) if isinstance(item, Outcome) else next(answers) for item in items]

    async def mark_sending(self, mark: SendingMark, lease_seconds: float) -> bool:
        """Commit that this job is being handed off; sends admitted together share the commit.
        False when the job's lease passed to another worker: this one must not send it."""
        held = await self._handoffs.submit((mark, lease_seconds))
        assert isinstance(held, bool)
        return held

    async def record_outcome(self, outcome: Outcome) -> list[ReceiptRecord]:
        """Record what happened to a job; returns the receipts for it that had come before this record."""
        early = await self._handoffs.submit(outcome)
        assert isinstance(early, list)
        return early

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if outcomes:
            await self._handoffs.submit_many(outcomes)

    async def flush_outcomes(self) -> None:
        await self._handoffs.drain()

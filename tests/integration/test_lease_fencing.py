"""A worker that stalls past its lease loses the job to the worker that claimed it next: only the
holder of the lease may mark it `sending`, so a stall never turns into a second delivery."""

from __future__ import annotations

import time
import uuid

from gateway.store.records import SendingMark
from gateway.store.sql import leases, messages
from gateway.store.store import SqlStore
from tests.integration.test_receipt_lattice import PROVIDER, TENANT, message_row


def _mark(message_id: str, worker: str, now: float) -> SendingMark:
    return SendingMark(message_id, TENANT, 1, "sms", PROVIDER, None, now, worker=worker)


async def test_only_the_worker_holding_the_lease_can_mark_a_job_sending(database_url: str) -> None:
    store = SqlStore.open(database_url, synchronous="OFF")
    try:
        await store.migrate()
        now = time.time()
        stalled, taken = f"msg_{uuid.uuid4().hex[:24]}", f"msg_{uuid.uuid4().hex[:24]}"
        await store.accept([message_row(stalled, now), message_row(taken, now)])
        claimed = await store.db.write(leases.claim_due, "worker-a", now, 10, now + 0.001)
        assert {job.id for job in claimed} == {stalled, taken}
        # worker-a stalls; its leases run out and worker-b claims both jobs
        later = now + 1.0
        again = await store.db.write(leases.claim_due, "worker-b", later, 10, later + 30)
        assert {job.id for job in again} == {stalled, taken}

        late = await store.db.write(
            leases.mark_sending, [_mark(stalled, "worker-a", later), _mark(taken, "worker-a", later)], later + 30
        )
        assert late == [False, False]
        holder = await store.db.write(leases.mark_sending, [_mark(taken, "worker-b", later)], later + 30)
        assert holder == [True]

        for message_id, status in ((stalled, "queued"), (taken, "sending")):
            row = await store.db.read(messages.get_message, TENANT, message_id)
            assert row is not None
            assert (row["status"], row["lease_owner"]) == (status, "worker-b")
        assert await store.db.read(lambda conn: conn.exec_driver_sql("SELECT count(*) FROM attempts").scalar()) == 1
    finally:
        await store.close()

"""A batch of `sending` marks or of outcomes is written in a few statements (set-based on PostgreSQL),
with the same rules per job as one at a time: each mark holds only under its own lease, and two
outcomes of one job in the same batch apply in order."""

from __future__ import annotations

import time
import uuid
from typing import Any

from gateway.domain.models import AttemptOutcome, Status
from gateway.store.records import Outcome, SendingMark
from gateway.store.sql import leases, messages
from gateway.store.store import SqlStore
from tests.integration.test_receipt_lattice import PROVIDER, TENANT, message_row


def _mark(message_id: str, worker: str, now: float, attempt: int = 1) -> SendingMark:
    return SendingMark(message_id, TENANT, attempt, "sms", PROVIDER, "+100", now, worker=worker)


async def _rows(store: SqlStore, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return await store.db.read(lambda conn: [tuple(r) for r in conn.exec_driver_sql(sql, *args).all()])


async def test_a_batch_of_marks_holds_only_where_each_lease_does(database_url: str) -> None:
    store = SqlStore.open(database_url, synchronous="OFF")
    try:
        await store.migrate()
        now = time.time()
        ids = [uuid.uuid4().hex for _ in range(4)]
        await store.accept([message_row(i, now) for i in ids])
        await store.db.write(leases.claim_due, "worker-a", now, 2, now + 0.001)  # the first two, to a
        later = time.time() + 0.01
        await store.db.write(leases.claim_due, "worker-b", later, 10, later + 30)  # all four, to b

        # worker-a stalled past its lease: its marks are refused, worker-b's hold, in the same batch.
        batch = [_mark(ids[0], "worker-a", later), _mark(ids[1], "worker-b", later)]
        batch += [_mark(ids[2], "worker-b", later), _mark(ids[3], "worker-a", later)]
        assert await store.db.write(leases.mark_sending, batch, later + 30) == [False, True, True, False]

        for message_id, status in zip(ids, ["queued", "sending", "sending", "queued"], strict=True):
            row = await store.db.read(messages.get_message, TENANT, message_id)
            assert row is not None
            assert (row["status"], row["lease_owner"]) == (status, "worker-b")
        marked = sorted([ids[1], ids[2]])
        attempts = await _rows(store, "SELECT message_id, number, sender, outcome FROM attempts ORDER BY message_id")
        assert attempts == [(i, 1, "+100", "pending") for i in marked]
        events = await _rows(
            store, "SELECT message_id, status, reason FROM events WHERE reason <> 'accepted' ORDER BY message_id"
        )
        assert events == [(i, "sending", "attempt 1") for i in marked]
    finally:
        await store.close()


async def test_two_outcomes_of_one_job_in_a_batch_apply_in_order(database_url: str) -> None:
    store = SqlStore.open(database_url, synchronous="OFF")
    try:
        await store.migrate()
        now = time.time()
        job, other = uuid.uuid4().hex, uuid.uuid4().hex
        await store.accept([message_row(job, now), message_row(other, now)])
        await store.db.write(leases.claim_due, "worker-a", now, 10, now + 30)
        await store.db.write(
            leases.mark_sending, [_mark(job, "worker-a", now), _mark(other, "worker-a", now)], now + 30
        )
        retry = Outcome(
            job,
            TENANT,
            Status.QUEUED,
            now + 1,
            reason="retry.transient",
            attempt=1,
            attempt_outcome=AttemptOutcome.TRANSIENT,
            provider=PROVIDER,
            error_code="429",
            next_attempt_at=now + 60,
        )
        expired = Outcome(job, TENANT, Status.EXPIRED, now + 2, reason="expired")
        sent = Outcome(
            other,
            TENANT,
            Status.SENT,
            now + 1,
            reason="provider.accepted",
            attempt=1,
            attempt_outcome=AttemptOutcome.SENT,
            provider=PROVIDER,
            provider_message_id="pm-" + other,
        )
        await store.record_outcomes([retry, sent, expired])

        row = await store.db.read(messages.get_message, TENANT, job)
        assert row is not None
        assert (row["status"], row["reason"], row["next_attempt_at"]) == ("expired", "expired", now + 60)
        assert row["lease_owner"] is None
        row = await store.db.read(messages.get_message, TENANT, other)
        assert row is not None
        assert (row["status"], row["provider_message_id"]) == ("sent", "pm-" + other)
        events = await _rows(store, f"SELECT status, reason FROM events WHERE message_id = '{job}' ORDER BY id")
        assert events == [
            ("queued", "accepted"),
            ("sending", "attempt 1"),
            ("queued", "retry.transient"),
            ("expired", "expired"),
        ]
        attempts = await _rows(store, "SELECT message_id, outcome, error_code FROM attempts ORDER BY message_id")
        assert sorted(attempts) == sorted([(job, "transient", "429"), (other, "sent", None)])
    finally:
        await store.close()

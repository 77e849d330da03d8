"""The Store port: the durable record and the job queue, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from gateway.domain.failures import REQUEUEABLE
from gateway.domain.ids import message_id_floor
from gateway.domain.models import FINAL, Status
from gateway.store import migrations, queries
from gateway.store.batcher import GroupCommitter
from gateway.store.database import DEFAULT_CACHE_MIB, WRITE_BUSY_TIMEOUT_SECONDS, Database, open_database
from gateway.store.records import AcceptOutcome, MessageFilter, Outcome, ReceiptRecord, SendingMark


class Store:
    def __init__(self, db: Database, *, group_commit_ms: float = 2.0, group_commit_max_rows: int = 2000) -> None:
        self.db = db
        self.dialect = db.dialect
        self._accepts: GroupCommitter[dict[str, Any], AcceptOutcome] = GroupCommitter(
            self._flush_accepts,
            delay_seconds=group_commit_ms / 1000,
            max_items=group_commit_max_rows,
            name="accept-commit",
        )
        self._marks: GroupCommitter[tuple[SendingMark, float], bool] = GroupCommitter(
            self._flush_marks,
            delay_seconds=0.002,
            max_items=2000,
            name="sending-commit",
        )
        self._clicks: GroupCommitter[dict[str, Any], None] = GroupCommitter(
            self._flush_clicks,
            delay_seconds=0.005,
            max_items=2000,
            name="click-commit",
        )
        self._outcomes: GroupCommitter[Outcome, list[ReceiptRecord]] = GroupCommitter(
            self._flush_outcomes,
            delay_seconds=0.005,
            max_items=2000,
            name="outcome-commit",
        )
        # Set after every accept commit, so an in-process worker starts at once instead of polling.
        self.work_available = asyncio.Event()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        synchronous: str = "FULL",
        pool_size: int = 10,
        group_commit_ms: float = 2.0,
        group_commit_max_rows: int = 2000,
        sqlite_cache_mib: int = DEFAULT_CACHE_MIB,
        sqlite_busy_timeout: float = WRITE_BUSY_TIMEOUT_SECONDS,
        outage_log_seconds: float = 10.0,
    ) -> Store:
        return cls(
            open_database(
                url,
                synchronous=synchronous,
                pool_size=pool_size,
                sqlite_cache_mib=sqlite_cache_mib,
                sqlite_busy_timeout=sqlite_busy_timeout,
                outage_log_seconds=outage_log_seconds,
            ),
            group_commit_ms=group_commit_ms,
            group_commit_max_rows=group_commit_max_rows,
        )

    async def migrate(self) -> int:
        return await self.db.write(migrations.migrate)

    async def close(self) -> None:
        await self._accepts.drain()
        await self._marks.drain()
        await self._clicks.drain()
        await self._outcomes.drain()
        await self.db.close()

    async def ping(self) -> bool:
        return await self.db.read(queries.ping)

    # accept
    async def _flush_accepts(self, rows: list[dict[str, Any]]) -> list[AcceptOutcome]:
        outcomes = await self.db.write_beside_loop(queries.insert_accepted, rows, time.time())
        self.work_available.set()
        return outcomes

    async def accept(self, rows: Sequence[dict[str, Any]]) -> list[AcceptOutcome]:
        """Commit jobs durably (together with whatever else is being accepted right now)."""
        return await self._accepts.submit_many(rows)

    async def accept_one(self, row: dict[str, Any]) -> AcceptOutcome:
        return await self._accepts.submit(row)

    async def release_idempotency_keys(self) -> int:
        return await self.db.write(queries.release_idempotency_keys, time.time())

    async def purge_content(self, older_than_days: float, batch: int = 5000) -> int:
        """Drop the content of finished messages older than the retention period; the count purged.

        In batches, so a first purge of a large backlog never holds the writer for long. A message
        still waiting for a receipt (`sent`) counts as finished here: a receipt needs no content.
        """
        now = time.time()
        floor = message_id_floor(now - older_than_days * 86400)
        statuses = sorted(FINAL | {Status.SENT})
        total = 0
        while True:
            purged = await self.db.write(queries.purge_content, floor, statuses, batch, now)
            total += purged
            if purged < batch:
                return total

    # dispatch
    async def claim_due(self, worker: str, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
        now = time.time()
        return await self.db.write(queries.claim_due, worker, now, limit, now + lease_seconds)

    async def claim_orphaned_handoffs(
        self, worker: str, limit: int, lease_seconds: float, settle_seconds: float
    ) -> list[dict[str, Any]]:
        """Hand-offs whose worker's lease ran out, marked `sending` at least settle_seconds ago."""
        now = time.time()
        return await self.db.write(
            queries.claim_orphaned_handoffs, worker, now, limit, now + lease_seconds, now - settle_seconds
        )

    async def mark_sending(self, mark: SendingMark, lease_seconds: float) -> bool:
        """Commit that this job is being handed off; sends admitted together share the commit.
        False when the job's lease passed to another worker: this one must not send it."""
        return await self._marks.submit((mark, lease_seconds))

    async def _flush_marks(self, items: list[tuple[SendingMark, float]]) -> list[bool]:
        lease = max(seconds for _, seconds in items)
        return await self.db.write(queries.mark_sending, [mark for mark, _ in items], time.time() + lease)

    async def renew_leases(self, worker: str, message_ids: Sequence[str], lease_seconds: float) -> int:
        return await self.db.write(queries.renew_leases, worker, message_ids, time.time() + lease_seconds)

    async def record_outcome(self, outcome: Outcome) -> list[ReceiptRecord]:
        """Record what happened to a job; returns the receipts for it that had come before this record."""
        return await self._outcomes.submit(outcome)

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if outcomes:
            await self._outcomes.submit_many(outcomes)

    async def _flush_outcomes(self, outcomes: list[Outcome]) -> list[list[ReceiptRecord]]:
        held = await self.db.write(queries.record_outcomes, outcomes)
        by_message: dict[str, list[ReceiptRecord]] = {}
        for message_id, receipt in held:
            by_message.setdefault(message_id, []).append(receipt)
        # A message appears once per flush at most in practice; its earlier receipts go to the first.
        return [by_message.pop(o.message_id, []) for o in outcomes]

    async def flush_outcomes(self) -> None:
        await self._outcomes.drain()

    async def unreceipted_sends(self, channels: Sequence[str], limit: int) -> list[dict[str, Any]]:
        return await self.db.read(queries.unreceipted_sends, channels, time.time(), limit)

    async def fall_back_unreceipted(self, moves: Sequence[tuple[Outcome, float]]) -> list[str]:
        return await self.db.write(queries.fall_back_unreceipted, moves)

    async def release_leases(self, worker: str, message_ids: Sequence[str]) -> int:
        return await self.db.write(queries.release_leases, worker, message_ids)

    # receipts
    async def apply_receipts(
        self, receipts: Sequence[ReceiptRecord], observed: list[tuple[str, ReceiptRecord]] | None = None
    ) -> dict[str, int]:
        return await self.db.write(queries.apply_receipts, receipts, time.time(), observed)

    # clicks
    async def record_click(self, click: dict[str, Any]) -> None:
        await self._clicks.submit(click)

    async def _flush_clicks(self, rows: list[dict[str, Any]]) -> list[None]:
        await self.db.write(queries.record_clicks, rows)
        return [None] * len(rows)

    # suppressions
    async def suppressed_among(self, recipients: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        return await self.db.read(queries.suppressed_among, recipients)

    async def add_suppressions(self, rows: Sequence[dict[str, Any]]) -> int:
        return await self.db.write(queries.add_suppressions, rows)

    async def engagement(
        self, tenant_id: str, subjects: Sequence[tuple[str, str]], since: float
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        return await self.db.read(queries.engagement, tenant_id, subjects, since)

    # reads
    async def get_message(self, tenant_id: str, message_id: str) -> dict[str, Any] | None:
        return await self.db.read(queries.get_message, tenant_id, message_id)

    async def list_messages(self, f: MessageFilter) -> list[dict[str, Any]]:
        return await self.db.read(queries.list_messages, f)

    async def status_counts(
        self, statuses: Sequence[str] = ("queued", "deferred", "sending"), tenant_id: str | None = None
    ) -> dict[str, int]:
        return await self.db.read(queries.status_counts, statuses, tenant_id)

    async def message_clicks(self, message_id: str) -> list[dict[str, Any]]:
        return await self.db.read(queries.message_clicks, message_id)

    async def message_links(self, message_id: str) -> list[dict[str, Any]]:
        return await self.db.read(queries.message_links, message_id)

    async def activity(
        self, tenant_id: str, since: float, until: float, bucket_seconds: float
    ) -> list[tuple[int, str | None, int]]:
        return await self.db.read(queries.activity, tenant_id, since, until, bucket_seconds)

    # reports
    async def failure_report(
        self,
        tenant_id: str,
        since: float,
        until: float,
        group_by: Sequence[str],
        statuses: Sequence[str],
        samples: int = 3,
    ) -> list[dict[str, Any]]:
        """Failed messages in [since, until) grouped; `samples` newest ids of each group (0: none)."""
        return await self.db.read(queries.failure_report, tenant_id, since, until, group_by, statuses, samples)

    async def failure_samples(
        self,
        tenant_id: str,
        since: float,
        until: float,
        statuses: Sequence[str],
        group: dict[str, Any],
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        return await self.db.read(queries.failure_samples, tenant_id, since, until, statuses, group, limit)

    async def failure_timeline(
        self, tenant_id: str, since: float, until: float, statuses: Sequence[str], buckets: int
    ) -> list[tuple[int, str | None, int]]:
        return await self.db.read(queries.failure_timeline, tenant_id, since, until, statuses, buckets)

    async def campaign_report(self, tenant_id: str, campaign: str, group_by: Sequence[str]) -> list[dict[str, Any]]:
        return await self.db.read(queries.campaign_report, tenant_id, campaign, group_by)

    async def campaign_link_report(self, tenant_id: str, campaign: str) -> list[dict[str, Any]]:
        return await self.db.read(queries.campaign_link_report, tenant_id, campaign)

    async def campaign_names(self, tenant_id: str, limit: int = 200) -> list[str]:
        return await self.db.read(queries.campaign_names, tenant_id, limit)

    async def requeue_by_filter(
        self, tenant_id: str, filters: dict[str, Any], limit: int, dry_run: bool, actor: str
    ) -> dict[str, Any]:
        """What a filter matches, what of it may be requeued (and why not the rest); unless a dry
        run, requeue those. Only failed, unknown, undelivered or expired messages whose expires_at
        is still ahead are ever put back."""
        candidates = await self.db.read(queries.requeue_candidates, tenant_id, filters, limit)
        now = time.time()
        eligible = [
            c["id"]
            for c in candidates
            if c["status"] in REQUEUEABLE and (c["expires_at"] is None or c["expires_at"] > now)
        ]
        chosen = set(eligible)
        skipped: dict[str, int] = {}
        for c in candidates:
            if c["id"] not in chosen:
                why = c["status"] if c["status"] not in REQUEUEABLE else "expired_window"
                skipped[why] = skipped.get(why, 0) + 1
        requeued: list[str] = []
        if not dry_run and eligible:
            requeued = await self.db.write(queries.requeue, tenant_id, eligible, sorted(REQUEUEABLE), actor, now)
            self.work_available.set()
        return {
            "dry_run": dry_run,
            "matched": len(candidates),
            "requeueable": len(eligible),
            "requeued": len(requeued),
            "skipped": skipped,
            "sample_ids": eligible[:20],
        }

    # keys and secrets
    async def get_or_create_secret(self, name: str) -> str:
        return await self.db.write(queries.get_or_create_secret, name)

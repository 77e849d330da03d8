"""The Store on SQLite or PostgreSQL: the rooms of gateway/store/sql/ put together, with their group commits."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.store import migrations
from gateway.store.batcher import GroupCommitter
from gateway.store.database import (
    DEFAULT_CACHE_MIB,
    INTAKE_FIRST_SECONDS,
    WRITE_BUSY_TIMEOUT_SECONDS,
    Database,
    open_database,
)
from gateway.store.records import AcceptOutcome, Addressing
from gateway.store.sql.accept import AcceptRoom
from gateway.store.sql.blocklists import BlocklistsRoom
from gateway.store.sql.campaigns import CampaignsRoom
from gateway.store.sql.claims import ClaimsRoom
from gateway.store.sql.events import EventsRoom
from gateway.store.sql.experiments import ExperimentsRoom
from gateway.store.sql.failures import FailuresRoom
from gateway.store.sql.handoffs import HandoffResult, HandoffsRoom, HandoffWrite
from gateway.store.sql.keys import KeysRoom
from gateway.store.sql.leases import LeasesRoom
from gateway.store.sql.messages import MessagesRoom
from gateway.store.sql.numbers import NumbersRoom
from gateway.store.sql.outcomes import OutcomesRoom
from gateway.store.sql.receipts import ReceiptCall, ReceiptsRoom
from gateway.store.sql.recipients import RecipientsRoom
from gateway.store.sql.retention import RetentionRoom
from gateway.store.sql.suppressions import SuppressionsRoom
from gateway.store.sql.templates import TemplatesRoom
from gateway.store.sql.tracking import EngagementMarks, TrackingRoom
from gateway.store.sql.webhook_outbox import WebhookOutboxRoom
from gateway.store.sql.webhooks import WebhooksRoom
from gateway.store.wakeups import WorkListener

# The most queued clicks one commit takes (a limit on its memory, not a pace: at 10,000 clicks a
# second, a second's worth).
QUEUED_CLICKS_PER_COMMIT = 10_000
# Callbacks (not receipts: an Aliyun push or a sandbox batch brings hundreds) a receipt commit takes.
RECEIPT_CALLS_PER_COMMIT = 256


class SqlStore(
    KeysRoom,
    AcceptRoom,
    LeasesRoom,
    OutcomesRoom,
    HandoffsRoom,
    ReceiptsRoom,
    MessagesRoom,
    SuppressionsRoom,
    BlocklistsRoom,
    TrackingRoom,
    FailuresRoom,
    CampaignsRoom,
    EventsRoom,
    RetentionRoom,
    NumbersRoom,
    RecipientsRoom,
    TemplatesRoom,
    WebhooksRoom,
    WebhookOutboxRoom,
    ExperimentsRoom,
    ClaimsRoom,
):
    def __init__(
        self,
        db: Database,
        *,
        group_commit_ms: float = 2.0,
        group_commit_max_rows: int = 2000,
        listen_url: str | None = None,
        click_synchronous: str | None = None,
        queued_click_commit_ms: float = 200.0,
    ) -> None:
        self.db = db
        # links.click_synchronous: how durable a click's commit is (None: as every other commit).
        self.click_synchronous = click_synchronous
        self.engagement_marks = EngagementMarks()
        self.dialect = db.dialect
        self._accepts: GroupCommitter[dict[str, Any], AcceptOutcome] = GroupCommitter(
            self._flush_accepts,
            delay_seconds=group_commit_ms / 1000,
            max_items=group_commit_max_rows,
            name="accept-commit",
        )
        # The sending marks, and the outcomes that came meanwhile, in one commit (sql/handoffs.py).
        self._handoffs: GroupCommitter[HandoffWrite, HandoffResult] = GroupCommitter(
            self._flush_handoffs,
            delay_seconds=0.002,
            max_items=2000,
            name="handoff-commit",
        )
        self._clicks: GroupCommitter[dict[str, Any], None] = GroupCommitter(
            self._flush_clicks,
            delay_seconds=0.002,
            max_items=2000,
            name="click-commit",
        )
        # Clicks whose redirect does not wait for them (links.wait_for_click_commit off): larger batches,
        # gathered for links.queued_click_commit_ms. A commit writes each index page its clicks touch
        # (their message ids are scattered over `clicks` and `events`), so the more clicks share a
        # commit, the fewer pages are written per click; nearly never cut short by a count.
        self._queued_clicks: GroupCommitter[dict[str, Any], None] = GroupCommitter(
            self._flush_clicks,
            delay_seconds=queued_click_commit_ms / 1000,
            max_items=QUEUED_CLICKS_PER_COMMIT,
            name="queued-click-commit",
            paced=True,
        )
        # Receipt callbacks arriving together share a commit (sql/receipts.py).
        self._receipts: GroupCommitter[ReceiptCall, dict[str, int] | Exception] = GroupCommitter(
            self._flush_receipts,
            delay_seconds=group_commit_ms / 1000,
            max_items=RECEIPT_CALLS_PER_COMMIT,
            name="receipt-commit",
        )
        # Recipients' jobs arriving together read their profiles together (one read, three statements).
        self._addressings: GroupCommitter[tuple[str, str], Addressing | None] = GroupCommitter(
            self._read_addressings,
            delay_seconds=group_commit_ms / 1000,
            max_items=group_commit_max_rows,
            name="addressing-read",
        )
        # Set after every accept commit, so an in-process worker starts at once instead of polling; in
        # worker processes on PostgreSQL also by the LISTEN connection (store/wakeups.py).
        self.work_available = asyncio.Event()
        self.listener = WorkListener(listen_url, self.work_available) if listen_url and db.dialect != "sqlite" else None

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
        sqlite_intake_first: float = INTAKE_FIRST_SECONDS,
        outage_log_seconds: float = 10.0,
        transaction_pooling: bool = False,
        listen_url: str | None = None,
        click_synchronous: str | None = None,
        queued_click_commit_ms: float = 200.0,
    ) -> SqlStore:
        return cls(
            open_database(
                url,
                synchronous=synchronous,
                pool_size=pool_size,
                sqlite_cache_mib=sqlite_cache_mib,
                sqlite_busy_timeout=sqlite_busy_timeout,
                sqlite_intake_first=sqlite_intake_first,
                outage_log_seconds=outage_log_seconds,
                transaction_pooling=transaction_pooling,
            ),
            group_commit_ms=group_commit_ms,
            group_commit_max_rows=group_commit_max_rows,
            listen_url=listen_url,
            click_synchronous=click_synchronous,
            queued_click_commit_ms=queued_click_commit_ms,
        )

    async def migrate(self) -> int:
        return await self.db.write(migrations.migrate)

    def listen_for_work(self) -> None:
        """Worker processes: be woken by other processes' commits of new work (PostgreSQL LISTEN)."""
        if self.listener is not None:
            self.listener.start()

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        await self._accepts.drain()
        await self._receipts.drain()
        await self._handoffs.drain()
        await self._clicks.drain()
        await self._queued_clicks.drain()
        await self._addressings.drain()
        await self.db.close()

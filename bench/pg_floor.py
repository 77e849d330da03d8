"""What PostgreSQL spends per row write of the record's tables: the floor under bench/dispatch.py's
"PostgreSQL CPU per delivered message".

    .venv/bin/python bench/pg_floor.py [--messages 20000] [--batch 100] [--runs 3] [--no-write]

A fresh database with the gateway's own schema (gateway/store/schema.py: every table and index as a
deployment has them) on a PostgreSQL started from tests/servers.py (as the dispatch bench's). After
--messages queued rows are loaded (COPY, not measured), each kind of write a message's dispatch
makes is run alone over every message, in batches of --batch rows per statement and one commit per
batch (as the worker batches them: one array per column, unnested), and the CPU of every PostgreSQL
process (/proc) is divided by the rows written:

- `messages` status change: UPDATE of status and updated_at (columns in indexes: every index gets
  a new entry, a non-HOT update), what the claim, the hand-off, the outcome and the receipt each do;
- `messages` HOT update: an UPDATE of a column no index holds (error_message), for comparison;
- `attempts` insert and update (its outcome and the provider's id), `events` insert, `receipts` insert:
  one row each;
- a narrow queue table (message id, due time; its primary key and one index): insert + delete;
- a lease table (message id, owner, lease end; its primary key only): insert + delete;
- a narrow status table (message id, tenant, status; its primary key and a (tenant, status, id)
  index, as the delivery log's status filter reads): a status change.

Today's dispatch of one message writes a heap-only update (the claim's lease; `messages` keeps room
on its pages, fillfactor 70, --fillfactor to change it), three status changes, an attempt (inserted
and updated), three events and a receipt; the figure "today's writes" adds those up, and "the lease
in a table of its own" the same with the claim's update replaced by a lease row, and "the narrow
record" the design where no index of `messages` holds what dispatch changes (NARROW below); "schema
version 4" the one before message_keys, when the indexes of what never changes after accept
(LOOKUP_INDEXES) were on `messages` (`floor_wide` is `messages` with them). What it shows: how much of
issue 23's 0.15 ms of PostgreSQL CPU per message the rows themselves take before any statement,
round trip or lock is counted, and what a narrower record would take instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from common import doc_header, fmt, load_average, markdown_table, median, write_doc  # noqa: E402
from dispatch import _fresh_database, cpu_seconds, pids_listening_on  # noqa: E402

from gateway.store.schema import MESSAGES_FILLFACTOR  # noqa: E402

DOC = ROOT / "docs" / "benchmarks" / "pg-floor.md"
TENANT = "t_floor"

Write = Callable[[object, list[str]], Awaitable[None]]


async def create_schema(conn: object) -> None:
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from gateway.store.schema import metadata

    dialect = postgresql.dialect()
    for table in metadata.sorted_tables:
        await conn.execute(str(sa.schema.CreateTable(table).compile(dialect=dialect)))  # type: ignore[attr-defined]
        for index in table.indexes:
            await conn.execute(str(sa.schema.CreateIndex(index).compile(dialect=dialect)))  # type: ignore[attr-defined]
    await conn.execute(  # type: ignore[attr-defined]
        "CREATE TABLE floor_queue (message_id varchar(32) PRIMARY KEY, due double precision NOT NULL)"
    )
    await conn.execute("CREATE INDEX ix_floor_queue_due ON floor_queue (due)")  # type: ignore[attr-defined]
    await conn.execute(  # type: ignore[attr-defined]
        "CREATE TABLE floor_leases (message_id varchar(32) PRIMARY KEY, owner varchar(64) NOT NULL,"
        " lease_until double precision NOT NULL)"
    )
    await conn.execute(  # type: ignore[attr-defined]
        'CREATE TABLE floor_states (message_id varchar(32) COLLATE "C" PRIMARY KEY,'
        ' tenant_id varchar(64) COLLATE "C" NOT NULL, status varchar(16) COLLATE "C" NOT NULL,'
        " updated_at double precision NOT NULL)"
    )
    await conn.execute("CREATE INDEX ix_floor_states ON floor_states (tenant_id, status, message_id)")  # type: ignore[attr-defined]
    await create_wide_messages(conn)


# The indexes of what a message is (its tenant's listings by id, campaign, recipient, user; its
# idempotency key) as schema version 4 had them on `messages`: none of their columns changes after
# accept, yet each got a new entry whenever dispatch changed the row's status. They are on
# message_keys now, written once at accept.
LOOKUP_INDEXES = (
    "CREATE UNIQUE INDEX floor_wide_idempotency ON floor_wide (tenant_id, idempotency_key)",
    "CREATE INDEX floor_wide_tenant_id ON floor_wide (tenant_id, id)",
    "CREATE INDEX floor_wide_campaign ON floor_wide (tenant_id, campaign, id)",
    "CREATE INDEX floor_wide_to ON floor_wide (tenant_id, to_addr, id)",
    "CREATE INDEX floor_wide_user ON floor_wide (tenant_id, user_id, id)",
)


async def create_wide_messages(conn: object) -> None:
    """`floor_wide`: `messages` as the schema makes it (columns, fillfactor, the key and every index,
    partial ones with their conditions), and the lookup indexes of schema version 4 besides."""
    await conn.execute(  # type: ignore[attr-defined]
        "CREATE TABLE floor_wide (LIKE messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
        f" WITH (fillfactor = {MESSAGES_FILLFACTOR})"
    )
    definitions = await conn.fetch(  # type: ignore[attr-defined]
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = 'messages'::regclass"
    )
    for name, definition in definitions:
        wide = definition.replace(f"INDEX {name} ON public.messages ", f"INDEX floor_{name} ON public.floor_wide ")
        assert wide != definition, definition
        await conn.execute(wide)  # type: ignore[attr-defined]
    for statement in LOOKUP_INDEXES:
        await conn.execute(statement)  # type: ignore[attr-defined]


# The columns of a queued message as bench/pg_growth.py loads them too, and one such row.
MESSAGE_COLUMNS = [
    "id",
    "tenant_id",
    "idempotency_key",
    "channel",
    "to_addr",
    "content",
    "category",
    "user_id",
    "campaign",
    "status",
    "attempt_count",
    "next_attempt_at",
    "created_at",
    "updated_at",
]
SHORT_CONTENT = '{"text": "Your order has shipped: track it at https://example.com/t/abc"}'


def queued_message(message_id: str, n: int, now: float, content: str = SHORT_CONTENT) -> tuple[object, ...]:
    return (message_id, TENANT, f"key-{n}", "sms", f"+861380{n:07d}", content, "transactional", f"u{n}", "spring",
            "queued", 0, now, now, now)  # fmt: skip


async def load_messages(conn: object, count: int) -> list[str]:
    now = time.time()
    ids = [f"msg_{uuid.uuid4().hex[:26]}" for _ in range(count)]
    rows = [queued_message(mid, n, now) for n, mid in enumerate(ids)]
    await conn.copy_records_to_table("messages", records=rows, columns=MESSAGE_COLUMNS)  # type: ignore[attr-defined]
    await conn.copy_records_to_table(  # type: ignore[attr-defined]
        "floor_states", records=[(mid, TENANT, "queued", now) for mid in ids]
    )
    await conn.copy_records_to_table("floor_wide", records=rows, columns=MESSAGE_COLUMNS)  # type: ignore[attr-defined]
    await conn.execute("VACUUM ANALYZE messages")  # type: ignore[attr-defined]
    await conn.execute("VACUUM ANALYZE floor_wide")  # type: ignore[attr-defined]
    await conn.execute("VACUUM ANALYZE floor_states")  # type: ignore[attr-defined]
    return ids


async def status_change(conn: object, ids: list[str]) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "UPDATE messages m SET status = 'sent', updated_at = $2 FROM unnest($1::text[]) AS b(id) WHERE m.id = b.id",
        ids,
        time.time(),
    )


async def wide_status_change(conn: object, ids: list[str]) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "UPDATE floor_wide m SET status = 'sent', updated_at = $2 FROM unnest($1::text[]) AS b(id) WHERE m.id = b.id",
        ids,
        time.time(),
    )


async def hot_update(conn: object, ids: list[str]) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "UPDATE messages m SET error_message = $2 FROM unnest($1::text[]) AS b(id) WHERE m.id = b.id",
        ids,
        str(time.time()),
    )


async def attempt_insert(conn: object, ids: list[str]) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO attempts (message_id, number, channel, provider, started_at, outcome, provider_message_id)"
        " SELECT id, 1, 'sms', 'sandbox', $2, 'sent', 'SBX' || id FROM unnest($1::text[]) AS b(id)",
        ids,
        time.time(),
    )


async def attempt_update(conn: object, ids: list[str]) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "UPDATE attempts a SET outcome = 'sent', finished_at = $2, provider_message_id = 'SBY' || b.id"
        " FROM unnest($1::text[]) AS b(id) WHERE a.message_id = b.id AND a.number = 1",
        ids,
        time.time(),
    )


async def event_insert(conn: object, ids: list[str]) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO events (tenant_id, message_id, at, type, status, reason)"
        " SELECT $2, id, $3, 'status', 'sent', NULL FROM unnest($1::text[]) AS b(id)",
        ids,
        TENANT,
        time.time(),
    )


async def receipt_insert(conn: object, ids: list[str]) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO receipts (dedup_key, provider, provider_message_id, message_id, status, received_at)"
        " SELECT 'sandbox:' || id || ':delivered', 'sandbox', 'SBX' || id, id, 'delivered', $2"
        " FROM unnest($1::text[]) AS b(id)",
        ids,
        time.time(),
    )


async def queue_insert_delete(conn: object, ids: list[str]) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO floor_queue (message_id, due) SELECT id, $2 FROM unnest($1::text[]) AS b(id)", ids, time.time()
    )
    await conn.execute("DELETE FROM floor_queue q USING unnest($1::text[]) AS b(id) WHERE q.message_id = b.id", ids)  # type: ignore[attr-defined]


async def lease_insert_delete(conn: object, ids: list[str]) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO floor_leases (message_id, owner, lease_until) SELECT id, 'worker-1', $2"
        " FROM unnest($1::text[]) AS b(id)",
        ids,
        time.time() + 30,
    )
    await conn.execute("DELETE FROM floor_leases l USING unnest($1::text[]) AS b(id) WHERE l.message_id = b.id", ids)  # type: ignore[attr-defined]


async def state_change(conn: object, ids: list[str]) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "UPDATE floor_states s SET status = 'sent', updated_at = $2 FROM unnest($1::text[]) AS b(id)"
        " WHERE s.message_id = b.id",
        ids,
        time.time(),
    )


WRITES: dict[str, Write] = {
    "messages status change (non-HOT update)": status_change,
    "messages HOT update (unindexed column)": hot_update,
    "messages status change, schema version 4 (the lookup indexes on messages)": wide_status_change,
    "attempts insert": attempt_insert,
    "attempts update (outcome, provider id)": attempt_update,
    "events insert": event_insert,
    "receipts insert": receipt_insert,
    "narrow queue row: insert + delete": queue_insert_delete,
    "lease row (its primary key only): insert + delete": lease_insert_delete,
    "narrow status row: status change (its key and a tenant+status index)": state_change,
}
# Today's dispatch of one message: the claim's lease is a heap-only update (no index holds it, and
# the page has room for it); hand-off, outcome and receipt each change the status; an attempt is
# inserted at hand-off and updated with its outcome; three events; one receipt.
TODAY = {
    "messages HOT update (unindexed column)": 1,
    "messages status change (non-HOT update)": 3,
    "attempts insert": 1,
    "attempts update (outcome, provider id)": 1,
    "events insert": 3,
    "receipts insert": 1,
}
# The claim's lease in a table of its own: the claim inserts a lease row instead of a new version of
# the message's row, the outcome deletes it; the three status changes stay.
LEASE_APART = {
    **{name: count for name, count in TODAY.items() if name != "messages HOT update (unindexed column)"},
    "lease row (its primary key only): insert + delete": 1,
}


# The narrow record: the message's row written at accept and changed only where no index looks
# (heap-only: outcome and receipt); the queue, its lease and the hand-off in a narrow queue row
# (inserted at accept, so here only its delete and two changes, counted as the insert + delete of
# the queue row and the lease row); status filters on a narrow status row changed with each of the
# three status changes; attempts, events and the receipt as today.
NARROW = {
    "messages HOT update (unindexed column)": 2,
    "narrow queue row: insert + delete": 1,
    "lease row (its primary key only): insert + delete": 1,
    "narrow status row: status change (its key and a tenant+status index)": 3,
    "attempts insert": 1,
    "attempts update (outcome, provider id)": 1,
    "events insert": 3,
    "receipts insert": 1,
}

# Schema version 4: the lookup indexes on `messages` (LOOKUP_INDEXES), each status change writing
# an entry in each; the rest as today.
VERSION_4 = {
    **{name: count for name, count in TODAY.items() if name != "messages status change (non-HOT update)"},
    "messages status change, schema version 4 (the lookup indexes on messages)": 3,
}


COMPOSITES = {
    "today's writes per message (heap-only claim, 3 status changes, attempt in + up, 3 events, receipt)": TODAY,
    "the lease in a table of its own (3 status changes, a lease row inserted and deleted, the rest as today)": (
        LEASE_APART
    ),
    "the narrow record (the message's row heap-only twice; queue, lease and status in narrow rows)": NARROW,
    "schema version 4's writes (the 3 status changes in 5 more indexes, the rest as today)": VERSION_4,
}


def cluster_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


async def one_run(admin_url: str, args: argparse.Namespace) -> dict[str, float]:
    import asyncpg

    url = await _fresh_database(admin_url, f"floor_{uuid.uuid4().hex[:10]}")
    conn = await asyncpg.connect(url)
    port = int(admin_url.rsplit(":", 1)[1].split("/")[0])
    try:
        await create_schema(conn)
        await conn.execute(f"ALTER TABLE messages SET (fillfactor = {args.fillfactor})")
        ids = await load_messages(conn, args.messages)
        per_row: dict[str, float] = {}
        for name, write in WRITES.items():
            await conn.execute("CHECKPOINT")
            pids = pids_listening_on(port)
            before = cluster_cpu(pids)
            for start in range(0, len(ids), args.batch):
                async with conn.transaction():
                    await write(conn, ids[start : start + args.batch])
            per_row[name] = (cluster_cpu(pids) - before) * 1000 / len(ids)
        return per_row
    finally:
        await conn.close()


def report(args: argparse.Namespace, runs: list[dict[str, float]], command: str) -> str:
    rows = []
    for name in WRITES:
        values = [r[name] for r in runs]
        rows.append([name, fmt(median(values), 4), ", ".join(fmt(v, 4) for v in values)])
    for label, counts in COMPOSITES.items():
        totals = [sum(count * r[name] for name, count in counts.items()) for r in runs]
        rows.append([label, fmt(median(totals), 4), ", ".join(fmt(v, 4) for v in totals)])
    return "\n".join(
        [
            *doc_header(
                "PostgreSQL CPU per row written",
                "`bench/pg_floor.py`; see its docstring for what each row measures.",
                command,
            ),
            f"- {args.messages:,} messages (`messages` fillfactor {args.fillfactor}), batches of {args.batch} rows"
            " per statement, one commit per batch;"
            " CPU of every PostgreSQL process",
            f"- load average before / after: {args.load_before} / {load_average()}",
            "",
            markdown_table(["write", "PostgreSQL CPU ms per row (median)", "runs"], rows),
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--fillfactor", type=int, default=MESSAGES_FILLFACTOR, help="of `messages` (default: as the schema makes it)"
    )
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOC.relative_to(ROOT)}")
    args = parser.parse_args()
    args.load_before = load_average()
    command = ".venv/bin/python bench/pg_floor.py " + " ".join(sys.argv[1:])
    from tests.servers import postgres_server

    runs = []
    with postgres_server() as admin_url:
        if admin_url is None:
            print("no PostgreSQL here")
            return 1
        for i in range(args.runs):
            runs.append(asyncio.run(one_run(admin_url, args)))
            print(f"  run {i + 1}: " + ", ".join(f"{k}: {fmt(v, 4)}" for k, v in runs[-1].items()), flush=True)
    text = report(args, runs, command)
    print()
    print(text)
    if not args.no_write:
        write_doc(DOC, text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(main())

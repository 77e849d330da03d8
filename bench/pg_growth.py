"""How fast the `messages` heap grows on PostgreSQL at a given fillfactor: the disk side of the
CPU that room on its pages saves (bench/dispatch.py, docs/BENCHMARKS.md).

    .venv/bin/python bench/pg_growth.py [--messages 20000] [--days 4] [--fillfactors 100,70,50]

For each fillfactor, a fresh database with the gateway's schema (gateway/store/schema.py) on a
PostgreSQL started from tests/servers.py. Each "day" --messages rows are loaded (COPY, a ~250-byte
text each) and then changed as dispatch changes them, in batches of 200: the claim's lease, the
hand-off (`sending`), the outcome (`sent`, the provider's id) and the receipt (`delivered`), with a
VACUUM after every 4,000 rows (autovacuum's rounds during a day) and one at the day's end. Printed:
the heap's size (pg_relation_size, indexes apart) after each day, and the growth per day.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from dispatch import _fresh_database  # noqa: E402
from pg_floor import MESSAGE_COLUMNS, create_schema, queued_message  # noqa: E402

CONTENT = '{"text": "' + "Your order has shipped: track it at https://example.com/t/abc " * 4 + '"}'
DISPATCH = (
    "UPDATE messages SET lease_owner = 'worker-1', lease_until = $2 WHERE id = ANY($1::text[])",
    "UPDATE messages SET status = 'sending', provider = 'sandbox', updated_at = $2 WHERE id = ANY($1::text[])",
    "UPDATE messages SET status = 'sent', provider_message_id = 'SBX' || id, lease_owner = NULL,"
    " lease_until = NULL, updated_at = $2 WHERE id = ANY($1::text[])",
    "UPDATE messages SET status = 'delivered', updated_at = $2 WHERE id = ANY($1::text[])",
)


async def heap_sizes(admin_url: str, fillfactor: int, messages: int, days: int) -> list[float]:
    import asyncpg

    url = await _fresh_database(admin_url, f"growth_{uuid.uuid4().hex[:10]}")
    conn = await asyncpg.connect(url)
    try:
        await create_schema(conn)
        await conn.execute(f"ALTER TABLE messages SET (fillfactor = {fillfactor})")
        sizes = []
        for day in range(days):
            now = time.time()
            ids = [f"msg_{day:02d}{n:024d}" for n in range(messages)]
            rows = [queued_message(mid, day * messages + n, now, CONTENT) for n, mid in enumerate(ids)]
            await conn.copy_records_to_table("messages", records=rows, columns=MESSAGE_COLUMNS)
            for start in range(0, messages, 200):
                batch = ids[start : start + 200]
                for statement in DISPATCH:
                    await conn.execute(statement, batch, now)
                if start % 4000 == 0:
                    await conn.execute("VACUUM messages")
            await conn.execute("VACUUM messages")
            sizes.append(await conn.fetchval("SELECT pg_relation_size('messages')") / 2**20)
        return sizes
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per day")
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--fillfactors", default="100,70,50")
    args = parser.parse_args()
    from tests.servers import postgres_server

    with postgres_server() as admin_url:
        if admin_url is None:
            print("no PostgreSQL here")
            return 1
        for fillfactor in (int(f) for f in args.fillfactors.split(",")):
            sizes = asyncio.run(heap_sizes(admin_url, fillfactor, args.messages, args.days))
            growth = (sizes[-1] - sizes[0]) / max(1, len(sizes) - 1)
            print(
                f"fillfactor {fillfactor}: heap after each day of {args.messages:,} messages: "
                + ", ".join(f"{size:.1f}" for size in sizes)
                + f" MB; {growth:.1f} MB a day"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

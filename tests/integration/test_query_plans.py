"""The delivery-log queries ops run are served by indexes, on both engines, so they stay fast at
10 million rows: each filter's plan names the index that serves it (no full scan, no sort)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from gateway.store.records import MessageFilter
from gateway.store.sql import messages, outcomes
from gateway.store.store import SqlStore
from tests.harness import GatewayStarter

CASES = [
    # One tenant holds every row here, so the primary key (id order) serves as well as (tenant, id).
    (MessageFilter(tenant_id="t"), ("ix_messages_tenant_id", "messages_pkey")),
    (MessageFilter(tenant_id="t", campaign="spring"), "ix_messages_tenant_campaign"),
    (MessageFilter(tenant_id="t", to="+8613812345678"), "ix_messages_tenant_to"),
    (MessageFilter(tenant_id="t", user_id="u1"), "ix_messages_tenant_user"),
    (MessageFilter(tenant_id="t", status=("failed",)), "ix_messages_tenant_status"),
    (MessageFilter(tenant_id="t", campaign="spring", before_id="msg_01"), "ix_messages_tenant_campaign"),
    # A creation-time window is an id range (ids are made from the time): the scan starts and stops there.
    (MessageFilter(tenant_id="t", since=50.0, until=60.0), ("ix_messages_tenant_id", "messages_pkey")),
]


def _plan(conn: Any, query: Any) -> str:
    compiled = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        return "\n".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled))
    # PostgreSQL plans by statistics: give it a table shaped like a real one (many tenants' worth of
    # campaigns, recipients and users, mostly delivered), analysed, as it would be at 10M rows.
    conn.exec_driver_sql(
        "INSERT INTO messages (id, tenant_id, channel, to_addr, content, category, user_id, campaign, status,"
        " next_attempt_at, created_at, updated_at, attempt_count)"
        " SELECT 'msg_' || lpad(n::text, 26, '0'), 't', 'sms', '+86139' || lpad((n % 50000)::text, 8, '0'),"
        " '{}', 'marketing', 'u' || (n % 20000), 'c' || (n % 300),"
        " CASE WHEN n % 97 = 0 THEN 'failed' ELSE 'delivered' END, n, n, n, 1"
        " FROM generate_series(1, 60000) AS n"
    )
    conn.exec_driver_sql("ANALYZE messages")
    return "\n".join(str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + compiled))


@pytest.mark.parametrize(("message_filter", "index"), CASES)
async def test_each_delivery_log_filter_uses_its_index(
    start_gateway: GatewayStarter, message_filter: MessageFilter, index: str | tuple[str, ...]
) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        plan = await gw.gateway.store.db.write(_plan, messages.delivery_log_query(message_filter))
    assert any(name in plan for name in ((index,) if isinstance(index, str) else index)), plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, f"an extra sort:\n{plan}"


def _unreceipted_plan(conn: Any) -> str:
    """The plan of the no-receipt scan over a table of 60,000 sent messages, 60 of them with a fallback."""
    conn.exec_driver_sql(
        "INSERT INTO messages (id, tenant_id, channel, to_addr, content, category, status, fallback,"
        " next_attempt_at, created_at, updated_at, attempt_count)"
        " SELECT 'msg_' || n, 't', 'sms', '+8613912345678', '{}', 'marketing', 'sent',"
        " CASE WHEN n % 1000 = 0 THEN 'voice' END, n, n, n, 1"
        " FROM (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 60000) SELECT n FROM s) AS s"
    )
    conn.exec_driver_sql("ANALYZE messages" if conn.dialect.name == "postgresql" else "ANALYZE")
    assert len(outcomes.unreceipted_sends(conn, ["sms"], 1e12, 500)) == 60
    sql, params = outcomes.unreceipted_sql(conn.dialect.name, ["sms"])
    for name, value in {**params, "now": 1e12, "limit": 500}.items():
        sql = sql.replace(f":{name}", f"'{value}'" if isinstance(value, str) else str(value))
    if conn.dialect.name == "sqlite":
        return "\n".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    return "\n".join(str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql))


async def test_the_no_receipt_scan_reads_only_jobs_that_can_fall_back(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        plan = await gw.gateway.store.db.write(_unreceipted_plan)
    assert "ix_messages_receipt_due" in plan, plan


async def test_migrate_adds_an_index_introduced_after_the_table(database_url: str) -> None:
    store = SqlStore.open(database_url, synchronous="OFF")
    try:
        await store.migrate()

        def drop_and_list(conn: Any) -> list[str]:
            conn.exec_driver_sql("DROP INDEX ix_messages_receipt_due")
            return [i["name"] for i in sa.inspect(conn).get_indexes("messages")]

        def names(conn: Any) -> list[str]:
            return [i["name"] for i in sa.inspect(conn).get_indexes("messages")]

        assert "ix_messages_receipt_due" not in await store.db.write(drop_and_list)
        await store.migrate()  # a database created before the index existed
        assert "ix_messages_receipt_due" in await store.db.read(names)
    finally:
        await store.close()

"""The delivery-log queries ops run are served by indexes, on both engines, so they stay fast at
10 million rows: each filter's plan names the index that serves it (no full scan, no sort)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.store import queries
from gateway.store.records import MessageFilter
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
        plan = await gw.gateway.store.db.write(_plan, queries.delivery_log_query(message_filter))
    assert any(name in plan for name in ((index,) if isinstance(index, str) else index)), plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, f"an extra sort:\n{plan}"

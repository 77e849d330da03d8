"""The delivery-log queries ops run are served by indexes, on both engines, so they stay fast at
10 million rows: each filter's plan names the index that serves it (no full scan, no sort)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.domain.failures import FAILURE_STATUSES
from gateway.store import schema
from gateway.store.migrations import KEYS_OF_MESSAGES
from gateway.store.records import MessageFilter
from gateway.store.sql import failures, leases, messages, outcomes, receipts, retention, webhook_outbox, webhooks
from gateway.store.sql.common import compiled_query, keyed, listed
from gateway.store.store import SqlStore
from tests.harness import GatewayStarter

# What a message is (campaign, recipient, user) is found in message_keys' indexes, its status in messages'.
# One tenant holds every row here, so the keys' primary key (id order) serves as well as (tenant, id).
TENANT_BY_ID = ("ix_message_keys_tenant_id", "sqlite_autoindex_message_keys_1", "message_keys_pkey")
CASES = [
    (MessageFilter(tenant_id="t"), TENANT_BY_ID),
    (MessageFilter(tenant_id="t", campaign="spring"), "ix_message_keys_tenant_campaign"),
    (MessageFilter(tenant_id="t", to="+8613812345678"), "ix_message_keys_tenant_to"),
    (MessageFilter(tenant_id="t", user_id="u1"), "ix_message_keys_tenant_user"),
    (MessageFilter(tenant_id="t", status=("failed",)), "ix_messages_tenant_status"),
    (MessageFilter(tenant_id="t", campaign="spring", before_id="msg_01"), "ix_message_keys_tenant_campaign"),
    # A creation-time window is an id range (ids are made from the time): the scan starts and stops there.
    (MessageFilter(tenant_id="t", since=50.0, until=60.0), TENANT_BY_ID),
]


# The numbers 1 to 60,000 as rows of `s(n)`, for building tables on either engine (SQLite has no
# generate_series).
_COUNT_TO_60000 = (
    "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 60000) SELECT n FROM s) AS s"
)


def _explain(conn: Any, query: Any) -> str:
    return _explain_sql(conn, str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})))


def _explain_sql(conn: Any, sql: str, values: Any = ()) -> str:
    """The plan of `sql` as each engine tells it, a line per step."""
    if conn.dialect.name == "sqlite":
        return "\n".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, values))
    return "\n".join(str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql, values))


def _with_plans(conn: Any, read: Callable[..., Any], *args: Any) -> tuple[Any, list[str]]:
    """What `read(conn, *args)` returns, and the plan of each statement it ran."""
    ran: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        ran.append((statement, parameters))

    sa.event.listen(conn, "before_cursor_execute", remember)
    try:
        result = read(conn, *args)
    finally:
        sa.event.remove(conn, "before_cursor_execute", remember)
    return result, [_explain_sql(conn, statement, parameters) for statement, parameters in ran]


def _plan(conn: Any, query: Any) -> str:
    if conn.dialect.name == "sqlite":
        return _explain(conn, query)
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
    conn.exec_driver_sql(KEYS_OF_MESSAGES)
    conn.exec_driver_sql("ANALYZE messages")
    conn.exec_driver_sql("ANALYZE message_keys")
    return _explain(conn, query)


@pytest.mark.parametrize(("message_filter", "index"), CASES)
async def test_each_delivery_log_filter_uses_its_index(
    start_gateway: GatewayStarter, message_filter: MessageFilter, index: str | tuple[str, ...]
) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        plan = await gw.gateway.store.db.write(_plan, messages.delivery_log_query(message_filter))
    assert any(name in plan for name in ((index,) if isinstance(index, str) else index)), plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, f"an extra sort:\n{plan}"


# Readers that find a tenant's messages by what they are: through message_keys' index, each message
# then by its primary key, never by walking every message of the tenant.
KEYED_READS = [
    pytest.param(
        lambda: (
            sa.select(sa.func.count())
            .select_from(schema.messages)
            .where(keyed("t", schema.message_keys.c.campaign == "c7"))
        ),
        "ix_message_keys_tenant_campaign",
        id="campaign-report",
    ),
    pytest.param(
        lambda: (
            sa.select(schema.messages.c.id)
            .where(keyed("t", schema.message_keys.c.campaign == "c7"), schema.messages.c.content != "")
            .order_by(schema.messages.c.id)
            .limit(100)
        ),
        "ix_message_keys_tenant_campaign",
        id="requeue-by-campaign",
    ),
    pytest.param(
        lambda: sa.select(schema.message_keys.c.message_id).where(
            schema.message_keys.c.tenant_id == "t", schema.message_keys.c.user_id == "u7"
        ),
        "ix_message_keys_tenant_user",
        id="erasure-by-user",
    ),
    pytest.param(
        lambda: sa.select(schema.message_keys.c.message_id).where(
            schema.message_keys.c.tenant_id == "t", schema.message_keys.c.to_addr.in_(["+8613900000007"])
        ),
        "ix_message_keys_tenant_to",
        id="erasure-by-address",
    ),
]


@pytest.mark.parametrize(("query", "index"), KEYED_READS)
async def test_readers_by_key_seek_message_keys_not_every_message_of_the_tenant(
    start_gateway: GatewayStarter, query: Callable[[], Any], index: str
) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        plan = await gw.gateway.store.db.write(_plan, query())
    assert index in plan, plan
    assert "ix_messages_tenant_status" not in plan and "Seq Scan on messages" not in plan, plan


def _unreceipted_plan(conn: Any) -> str:
    """The plan of the no-receipt scan over a table of 60,000 sent messages, 60 of them with a fallback."""
    conn.exec_driver_sql(
        "INSERT INTO messages (id, tenant_id, channel, to_addr, content, category, status, fallback,"
        " next_attempt_at, created_at, updated_at, attempt_count)"
        " SELECT 'msg_' || n, 't', 'sms', '+8613912345678', '{}', 'marketing', 'sent',"
        " CASE WHEN n % 1000 = 0 THEN 'voice' END, n, n, n, 1"
        f" FROM {_COUNT_TO_60000}"
    )
    conn.exec_driver_sql("ANALYZE messages" if conn.dialect.name == "postgresql" else "ANALYZE")
    assert len(outcomes.unreceipted_sends(conn, ["sms"], 1e12, 500)) == 60
    sql, params = outcomes.unreceipted_sql(conn.dialect.name, ["sms"])
    for name, value in {**params, "now": 1e12, "limit": 500}.items():
        sql = sql.replace(f":{name}", f"'{value}'" if isinstance(value, str) else str(value))
    return _explain_sql(conn, sql)


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


def _queue_plans(conn: Any) -> dict[str, str]:
    """Plans of the queue's reads over 60,000 messages of which 3,000 wait and 30 are being handed off:
    a claim, an idle worker's peek, the sweep for orphaned hand-offs, the queue-depth gauge. PostgreSQL's
    statistics are those of an empty table, as after a burst into a fresh database; SQLite has none
    (the gateway runs no ANALYZE there)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE messages")
    conn.exec_driver_sql(
        "INSERT INTO messages (id, tenant_id, channel, to_addr, content, category, status,"
        " next_attempt_at, created_at, updated_at, attempt_count)"
        " SELECT 'msg_' || n, 't', 'sms', '+8613912345678', '{}', 'marketing',"
        " CASE WHEN n % 20 = 0 THEN 'queued' WHEN n % 2000 = 1 THEN 'sending' ELSE 'delivered' END,"
        " n, n, n, 1"
        f" FROM {_COUNT_TO_60000}"
    )
    assert len(leases.claim_due(conn, "w1", 1e12, 200, 2e12)) == 200  # the statement itself runs
    if conn.dialect.name == "postgresql":
        leases.in_due_order(conn)
    queries = {
        "claim": leases.due_candidates(1e12, 200),
        "peek": leases.ANY_DUE.params(now=1e12),
        "orphans": leases.orphaned_handoffs(1e12, 500, 1e12),
        **{
            f"gauge {i}": query
            for i, query in enumerate(messages.status_count_queries(("queued", "deferred", "sending"), None))
        },
    }
    return {name: _explain(conn, query) for name, query in queries.items()}


async def test_the_queue_is_read_from_its_own_indexes_not_from_every_message(start_gateway: GatewayStarter) -> None:
    """A claim takes the earliest due jobs straight from the index of waiting jobs, in its order: its
    cost does not grow with the messages sent before, nor with the backlog (no scan, no sort)."""
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        plans = await gw.gateway.store.db.write(_queue_plans)
    for name in ("claim", "peek"):
        assert "ix_messages_waiting_due" in plans[name], plans[name]
        assert "TEMP B-TREE" not in plans[name] and "Sort" not in plans[name], f"{name} sorts:\n{plans[name]}"
    assert "ix_messages_handing_off" in plans["orphans"], plans["orphans"]
    assert "ix_messages_waiting_due" in plans["gauge 0"], plans["gauge 0"]
    assert "ix_messages_handing_off" in plans["gauge 1"], plans["gauge 1"]


def _receipt_states_plan(conn: Any) -> str:
    """The plan of the lookup a batch of 200 receipts makes (their messages and the attempts they
    name) over 60,000 messages with an attempt each."""
    conn.exec_driver_sql(
        "INSERT INTO messages (id, tenant_id, channel, to_addr, content, category, status,"
        " next_attempt_at, created_at, updated_at, attempt_count)"
        " SELECT 'msg_' || n, 't', 'sms', '+8613912345678', '{}', 'marketing', 'sent', n, n, n, 1"
        " FROM generate_series(1, 60000) AS n"
    )
    conn.exec_driver_sql(
        "INSERT INTO attempts (message_id, number, channel, provider, started_at, outcome, provider_message_id)"
        " SELECT 'msg_' || n, 1, 'sms', 'sandbox', n, 'sent', 'SBX' || n FROM generate_series(1, 60000) AS n"
    )
    conn.exec_driver_sql("ANALYZE")
    named = range(30000, 30200)
    params = {"ids": [f"msg_{n}" for n in named], "pmids": [f"SBX{n}" for n in named]}
    sql, values = compiled_query(receipts._STATES_BY_MESSAGE, conn.dialect, params)
    assert len(conn.exec_driver_sql(sql, values).all()) == 200
    return _explain_sql(conn, sql, values)


async def _postgres_plan(
    start_gateway: GatewayStarter, database_url: str, plan_of: Callable[[Any], str], sqlite_as_written: str
) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip(f"SQLite {sqlite_as_written} as written")
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        return str(await gw.gateway.store.db.write(plan_of))


async def test_receipts_find_the_attempts_they_name_by_message_not_by_scanning_every_attempt(
    start_gateway: GatewayStarter, database_url: str
) -> None:
    plan = await _postgres_plan(
        start_gateway, database_url, _receipt_states_plan, "joins through uq_attempts_message_number"
    )
    assert "uq_attempts_message_number" in plan and "Seq Scan on attempts" not in plan, plan


def _new_event_peek_plan(conn: Any) -> str:
    """The plan of an idle callbacks process's poll, "any event past the outbox's position?", over
    60,000 events all read already, for a subscription made before them."""
    conn.exec_driver_sql(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret, state, after_event_id, created_at,"
        " updated_at) VALUES ('whk_plan', 't', 'https://example.com/h', '[\"*\"]', 's', 'active', 0, 0, 0)"
    )
    conn.exec_driver_sql(
        "INSERT INTO events (tenant_id, message_id, at, type, status)"
        " SELECT 't', 'msg_' || n, n, 'status', 'delivered' FROM generate_series(1, 60000) AS n"
    )
    conn.exec_driver_sql(
        "INSERT INTO webhook_outbox (name, last_event_id) SELECT 'events', max(id) FROM events"
        " ON CONFLICT (name) DO UPDATE SET last_event_id = excluded.last_event_id"
    )
    conn.exec_driver_sql("ANALYZE")
    assert conn.execute(webhook_outbox.ANY_NEW_EVENT).all() == []
    return _explain(conn, webhook_outbox.ANY_NEW_EVENT)


async def test_an_idle_callbacks_poll_seeks_the_outbox_position_not_every_event(
    start_gateway: GatewayStarter, database_url: str
) -> None:
    plan = await _postgres_plan(start_gateway, database_url, _new_event_peek_plan, "seeks a rowid range")
    assert "events_pkey" in plan and "Seq Scan on events" not in plan, plan


def _work_of_a_poll_without_subscriptions(conn: Any) -> int:
    """What the callbacks poll reads when no subscription exists and 60,000 events came since the
    outbox's position: SQLite's virtual-machine steps (a seek is a few dozen; reading the events,
    hundreds of thousands), PostgreSQL's rows of `events` read (kept or filtered out)."""
    sqlite = conn.dialect.name == "sqlite"
    conn.exec_driver_sql(
        f"INSERT INTO events (tenant_id, message_id, at, type, status) SELECT 't', 'msg_' || n, n, 'status', 'sent'"
        f" FROM {_COUNT_TO_60000}"
    )
    conn.exec_driver_sql("INSERT INTO webhook_outbox (name, last_event_id) VALUES ('events', 0)")
    conn.exec_driver_sql("ANALYZE")
    sql, values = compiled_query(webhook_outbox.ANY_NEW_EVENT, conn.dialect, {})
    if sqlite:
        raw = conn.connection.dbapi_connection
        steps = [0]

        def count() -> int:
            steps[0] += 100
            return 0

        raw.set_progress_handler(count, 100)
        try:
            assert raw.execute(sql, values).fetchall() == []
        finally:
            raw.set_progress_handler(None, 0)
        return steps[0]
    [(plan,)] = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, values).all()
    nodes = [plan[0]["Plan"]]
    read = 0
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") == "events":
            read += node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
    return read


async def test_without_a_subscription_the_callbacks_poll_reads_no_event(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        work = await gw.gateway.store.db.write(_work_of_a_poll_without_subscriptions)
    assert work < 1000, work


def _one_day_one_in_97_failed(conn: Any) -> None:
    conn.exec_driver_sql(
        "INSERT INTO messages (id, tenant_id, channel, to_addr, content, category, status, reason, provider,"
        " error_code, next_attempt_at, created_at, updated_at, attempt_count)"
        " SELECT 'msg_' || n, 't', 'sms', '+8613912345678', '{}', 'marketing',"
        " CASE WHEN n % 97 = 0 THEN 'failed' ELSE 'delivered' END,"
        " CASE WHEN n % 97 = 0 THEN 'provider.rejected' END, 'sandbox', CASE WHEN n % 97 = 0 THEN '21610' END,"
        " n, n, n, 1"
        f" FROM {_COUNT_TO_60000}"
    )


def _failure_report_plans(conn: Any, statuses: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[str]]:
    """The failure report's groups, and the plan of each statement it ran (SQLite unanalysed, as the
    gateway leaves it)."""
    return _with_plans(conn, failures.failure_report, "t", 0, 86_400, ("reason", "provider", "error_code"), statuses)


@pytest.mark.parametrize("statuses", [FAILURE_STATUSES, ("failed",), ("undelivered", "failed")])
async def test_the_failure_report_reads_failed_messages_only(
    start_gateway: GatewayStarter, statuses: tuple[str, ...]
) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        db = gw.gateway.store.db
        await db.write(_one_day_one_in_97_failed)
        if db.dialect == "postgresql":
            # As autovacuum leaves a real table: statistics, and a visibility map that lets the partial
            # index be read alone. Analysed only, the planner costs its index-only scan with a heap
            # fetch per row and may take (tenant, status, id) instead, by the luck of ANALYZE's sample.
            async with db._engine.connect() as conn:  # VACUUM runs outside a transaction
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.exec_driver_sql("VACUUM ANALYZE messages")
        groups, plans = await db.write(_failure_report_plans, statuses)
    assert [(g["reason"], g["error_code"], g["count"]) for g in groups] == [("provider.rejected", "21610", 618)]
    assert len(plans) == 2, plans  # the groups, and the samples of the one group
    for plan in plans:
        assert "ix_messages_tenant_failed_updated" in plan, plan


def _provider_ref_plans(conn: Any) -> dict[str, str]:
    """The plans of the lookups by the provider's id over 60,000 sent messages with an attempt and a
    receipt each (30 receipts held), and 60,000 queued ones without a provider id yet."""
    conn.exec_driver_sql(
        "INSERT INTO messages (id, tenant_id, channel, to_addr, content, category, status, provider,"
        " provider_message_id, next_attempt_at, created_at, updated_at, attempt_count)"
        " SELECT 'msg_' || n, 't', 'sms', '+8613912345678', '{}', 'marketing', 'sent', 'sandbox', 'SBX' || n,"
        f" n, n, n, 1 FROM {_COUNT_TO_60000}"
    )
    conn.exec_driver_sql(
        "INSERT INTO messages (id, tenant_id, channel, to_addr, content, category, status,"
        " next_attempt_at, created_at, updated_at, attempt_count)"
        f" SELECT 'msq_' || n, 't', 'sms', '+8613912345678', '{{}}', 'marketing', 'queued', n, n, n, 0"
        f" FROM {_COUNT_TO_60000}"
    )
    conn.exec_driver_sql(
        "INSERT INTO attempts (message_id, number, channel, provider, started_at, outcome, provider_message_id)"
        f" SELECT 'msg_' || n, 1, 'sms', 'sandbox', n, 'sent', 'SBX' || n FROM {_COUNT_TO_60000}"
    )
    conn.exec_driver_sql(
        "INSERT INTO receipts (dedup_key, provider, provider_message_id, message_id, status, received_at)"
        " SELECT 'sandbox:' || n, 'sandbox', 'SBX' || n, CASE WHEN n % 2000 = 0 THEN NULL ELSE 'msg_' || n END,"
        f" 'delivered', n FROM {_COUNT_TO_60000}"
    )
    if conn.dialect.name == "postgresql":  # SQLite plans without statistics, as the gateway runs it
        conn.exec_driver_sql("ANALYZE messages, attempts, receipts")
    params = {"provider": "sandbox", "pmids": listed(conn, [f"SBX{n}" for n in range(30000, 30200)])}
    plans = {}
    for name in ("_BY_PROVIDER_ID", "_BY_EARLIER_ATTEMPT", "_HELD"):
        sql, values = compiled_query(getattr(receipts, name), conn.dialect, params)
        assert conn.exec_driver_sql(sql, values).all(), name
        plans[name] = _explain_sql(conn, sql, values)
    return plans


async def test_receipts_find_their_message_by_provider_id_in_indexes_of_rows_that_have_one(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        plans = await gw.gateway.store.db.write(_provider_ref_plans)
    assert "ix_messages_provider_ref" in plans["_BY_PROVIDER_ID"], plans["_BY_PROVIDER_ID"]
    assert "ix_attempts_provider_ref" in plans["_BY_EARLIER_ATTEMPT"], plans["_BY_EARLIER_ATTEMPT"]
    # Sought by the receipts' ids, not read as a range of the provider's every id (SQLite: `>?`).
    for name in ("_BY_PROVIDER_ID", "_BY_EARLIER_ATTEMPT"):
        assert "provider_message_id=?" in plans[name] or "provider_message_id)::text = ANY" in plans[name], plans
    # Held receipts are few: found through the held ones' own index, or seeking message_id IS NULL.
    held = plans["_HELD"]
    assert "ix_receipts_provider_ref" in held or "ix_receipts_message_id (message_id=?)" in held, held
    assert "SCAN receipts" not in held and "Seq Scan on receipts" not in held, held


def _key_release_plans(conn: Any) -> tuple[int, list[str]]:
    """The minute's release of idempotency keys over 60,000 messages, every other one sent with a key,
    60 of those past their retention: how many it released, and the plan of each statement it ran."""
    conn.exec_driver_sql(
        "INSERT INTO messages (id, tenant_id, idempotency_key, idempotency_expires_at, channel, to_addr, content,"
        " category, status, next_attempt_at, created_at, updated_at, attempt_count)"
        " SELECT 'msg_' || n, 't', CASE WHEN n % 2 = 0 THEN 'k' || n END,"
        " CASE WHEN n % 1000 = 0 THEN 100 WHEN n % 2 = 0 THEN 1e12 END,"
        f" 'sms', '+8613912345678', '{{}}', 'marketing', 'delivered', n, n, n, 1 FROM {_COUNT_TO_60000}"
    )
    conn.exec_driver_sql(KEYS_OF_MESSAGES)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE messages, message_keys")
    return _with_plans(conn, retention.release_idempotency_keys, 1e6)


async def test_the_minutes_key_release_seeks_the_held_keys_not_every_message(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        released, plans = await gw.gateway.store.db.write(_key_release_plans)
    assert released == 60
    finding, *changes = plans
    assert "ix_message_keys_held_until" in finding, finding
    for plan in changes:  # each release by the messages' ids
        assert "Seq Scan" not in plan and "SCAN messages" not in plan and "SCAN message_keys" not in plan, plan


def _callback_health_plans(conn: Any) -> tuple[dict[str, Any], list[str]]:
    """The callbacks' health (read every 5 s) of an endpoint with 60,000 deliveries kept, 19
    pending and 6 dead: what it found, and the plan of each statement it ran."""
    conn.exec_driver_sql(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, type, event_at, state, attempts, next_attempt_at,"
        " created_at) SELECT 'wh_1', n, 'message.delivered', n,"
        " CASE WHEN n % 10000 = 0 THEN 'dead' WHEN n > 59980 THEN 'pending' ELSE 'delivered' END, 1, n, n"
        f" FROM {_COUNT_TO_60000}"
    )
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE webhook_deliveries")
    return _with_plans(conn, webhooks.delivery_health, ["wh_1"])


async def test_the_callbacks_health_reads_pending_and_dead_deliveries_not_the_delivered_ones(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway({"GATEWAY_SANDBOX__ENABLED": "false"}, role="api") as gw:
        health, plans = await gw.gateway.store.db.write(_callback_health_plans)
    assert health == {"wh_1": {"counts": {"pending": 19, "dead": 6}, "oldest_pending_at": 59981.0}}
    [plan] = plans
    # An index sought by state (with the endpoint, or filtered by it), not every delivery of the endpoint.
    if "Index Cond:" in plan:  # PostgreSQL
        assert "state" in plan.split("Index Cond:")[1].splitlines()[0], plan
    else:  # SQLite
        assert "SEARCH webhook_deliveries USING" in plan and "state=?" in plan, plan

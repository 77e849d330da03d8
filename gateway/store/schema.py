"""The tables of the record, in SQLAlchemy Core so SQLite and PostgreSQL share one definition.

Times are stored as seconds since the epoch (double precision): index-friendly and identical on
both engines; the API renders them as RFC 3339.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.domain.failures import FAILURE_STATUSES
from gateway.domain.models import DISPATCHABLE, Status

metadata = sa.MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants 64 bits for the busy tables.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# 2: events' index by message leaves out clicks (migrations.STEPS[2] drops the old one).
# 3: the queue's index holds only the jobs waiting to be sent, in due order, and a second one the
#    hand-offs under way (migrations.STEPS[3] drops ix_messages_due, which held every message).
# 4: on PostgreSQL every String column compares bytewise (COLLATE "C", see the end of this module);
#    attempts are found by message through uq_attempts_message_number, and the failure window's index
#    holds failures only (STEPS[4] drops ix_attempts_message_id, which held the same first column, and
#    ix_messages_tenant_status_updated, which held every message); the provider-id indexes hold
#    only rows that have one (or, for receipts, only those held); messages' pages keep room for
#    updates (fillfactor, on pages written from then on).
SCHEMA_VERSION = 6


schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # the public prefix of the key
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float),
    sa.Column("revoked_at", sa.Float),
    sa.Column("last_used_at", sa.Float),
)

secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

MESSAGES_FILLFACTOR = 50
messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("idempotency_expires_at", sa.Float),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("to_addr", sa.String(2048), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("category", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(128)),
    sa.Column("campaign", sa.String(128)),
    sa.Column("variant", sa.String(128)),
    sa.Column("send_at", sa.Float),
    sa.Column("expires_at", sa.Float),
    sa.Column("fallback", sa.String(200)),
    sa.Column("metadata", sa.Text),
    sa.Column("tz", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(128)),
    sa.Column("provider", sa.String(32)),
    sa.Column("provider_message_id", sa.String(128)),
    sa.Column("sender", sa.String(64)),
    sa.Column("attempt_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # A message is found by its idempotency key, campaign, recipient or user through message_keys.
    sa.Index("ix_messages_tenant_status", "tenant_id", "status", "id"),
    # Sent jobs that may still fall back, by the deadline for their receipt (kept in next_attempt_at).
    sa.Index(
        "ix_messages_receipt_due",
        "next_attempt_at",
        sqlite_where=sa.text("status = 'sent' AND fallback IS NOT NULL"),
        postgresql_where=sa.text("status = 'sent' AND fallback IS NOT NULL"),
    ),
    # Room on each page for a new version of every row on it: a claim takes a run of rows accepted
    # together, and its lease is in no index, so with the room each is a heap-only update (no index
    # entry at all); later versions land beside the ones they replace. bench/dispatch.py, PostgreSQL's
    # CPU per delivered message, each against the one before in one launch: 100 -> 70, -6 %; 70 -> 50,
    # -12 %. The price is disk: the heap grows ~2.1 x as fast as at 100 (bench/pg_growth.py,
    # docs/DEPLOYMENT.md "Upgrades").
    postgresql_with={"fillfactor": MESSAGES_FILLFACTOR},
)

# What a message is looked up by, in a table of its own. On PostgreSQL each of dispatch's three status
# changes is a new row version with an entry in every index of `messages` (heap-only only when no
# indexed column changes): with these five indexes there, a status change cost 0.0255 ms a row, without
# them 0.0100 (bench/pg_floor.py). A row here is written at accept and changed only with the message's
# address (a fallback, an erasure) or when its key is released; the message's row keeps the values too.
KEY_COLUMNS = ("tenant_id", "idempotency_key", "idempotency_expires_at", "to_addr", "user_id", "campaign")
message_keys = sa.Table(
    "message_keys",
    metadata,
    sa.Column("message_id", sa.String(32), primary_key=True),
    # Each as the message's row defines it.
    *(sa.Column(name, messages.c[name].type, nullable=messages.c[name].nullable) for name in KEY_COLUMNS),
    # Dedup belongs to the store: concurrent requests with one key race on this index, not on a read.
    sa.Index("uq_message_keys_tenant_idempotency", "tenant_id", "idempotency_key", unique=True),
    sa.Index("ix_message_keys_tenant_id", "tenant_id", "message_id"),
    sa.Index("ix_message_keys_tenant_campaign", "tenant_id", "campaign", "message_id"),
    sa.Index("ix_message_keys_tenant_to", "tenant_id", "to_addr", "message_id"),
    sa.Index("ix_message_keys_tenant_user", "tenant_id", "user_id", "message_id"),
)
# Held keys by when each may be released (store/sql/retention.py, every minute; reading every message
# for them held SQLite's write lock 83 ms at 1M messages). A query reaches it by naming KEY_HELD.
KEY_HELD = message_keys.c.idempotency_key.is_not(None)
_HELD_UNTIL = message_keys.c.idempotency_expires_at
sa.Index("ix_message_keys_held_until", _HELD_UNTIL, sqlite_where=KEY_HELD, postgresql_where=KEY_HELD)
# The indexes of `messages` that message_keys' replace (dropped by migration step 5).
MOVED_MESSAGE_INDEXES = (
    "uq_messages_tenant_idempotency",
    "ix_messages_tenant_id",
    "ix_messages_tenant_campaign",
    "ix_messages_tenant_to",
    "ix_messages_tenant_user",
)
# Messages found by their keys: filter on message_keys' columns (led by its tenant_id), read messages'.
KEYED_MESSAGES = message_keys.join(messages, messages.c.id == message_keys.c.message_id)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(32), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("sender", sa.String(64)),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("outcome", sa.String(24), nullable=False),  # pending, sent, transient, failed, unknown
    sa.Column("error_kind", sa.String(32)),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("provider_message_id", sa.String(128)),
    # What the provider charges for an attempt it took, by the route's price table (domain/pricing).
    sa.Column("cost", sa.Float),
    sa.Column("currency", sa.String(3)),
    sa.UniqueConstraint("message_id", "number", name="uq_attempts_message_number"),
)

receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # Duplicate deliveries of one receipt collapse on this key: accepted once, in any order.
    sa.Column("dedup_key", sa.String(300), nullable=False, unique=True),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("provider_message_id", sa.String(128), nullable=False),
    sa.Column("message_id", sa.String(32), index=True),  # NULL while held for a send not yet recorded
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_code", sa.String(64)),
    # The provider's class of error_code (e.g. sender_flagged): a receipt held until its send is
    # recorded still counts as evidence about the number it went out from.
    sa.Column("error_kind", sa.String(32)),
    sa.Column("part", sa.Integer),  # segment of a long SMS reported on its own: part of parts
    sa.Column("parts", sa.Integer),
    sa.Column("occurred_at", sa.Float),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("raw", sa.Text),
)

# Segments of a long SMS that the provider numbered apart (SMPP gives each submit_sm its own id): a
# receipt names its segment's id, and is recorded as part `part` of the message's first id.
message_parts = sa.Table(
    "message_parts",
    metadata,
    sa.Column("provider", sa.String(32), primary_key=True),
    sa.Column("part_message_id", sa.String(128), primary_key=True),
    sa.Column("provider_message_id", sa.String(128), nullable=False),
    sa.Column("part", sa.Integer, nullable=False),
    sa.Column("parts", sa.Integer, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(32)),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16)),
    sa.Column("reason", sa.String(128)),
    sa.Column("detail", sa.Text),
    sa.Index("ix_events_tenant_at", "tenant_id", "at"),
)
# The queue. A claim takes the earliest due jobs: an index of (status, due time) held every message
# ever sent and could not give the waiting ones in due order across their two statuses, so each claim
# read and sorted the whole backlog (a seq scan and a sort per claim, its cost growing with the queue).
# These hold only what waits (or is being handed off), in the order the claim and the sweep for
# orphaned hand-offs read them (the status in the second one makes it covering for SQLite's count of
# hand-offs under way). A query reaches them by naming the same condition, as a literal.
WAITING = messages.c.status.in_([sa.literal_column(f"'{status}'") for status in sorted(DISPATCHABLE)])
HANDING_OFF = messages.c.status == sa.literal_column(f"'{Status.SENDING}'")
sa.Index("ix_messages_waiting_due", messages.c.next_attempt_at, sqlite_where=WAITING, postgresql_where=WAITING)
sa.Index(
    "ix_messages_handing_off",
    messages.c.status,
    messages.c.updated_at,
    sqlite_where=HANDING_OFF,
    postgresql_where=HANDING_OFF,
)

# Receipts find what they name by the provider's id, which a message and an attempt get only from
# the provider's answer; a receipt is looked up by it only while it is held for a send not yet
# recorded. Rows without one are left out: the accept, the hand-off's mark, the attempt's insert and
# every receipt matched at once write no entry to these. A lookup reaches each by naming its
# condition. Late receipts of an attempt the job has since moved on from are matched through
# ix_attempts_provider_ref.
MESSAGE_HAS_REF = messages.c.provider_message_id.is_not(None)
ATTEMPT_HAS_REF = attempts.c.provider_message_id.is_not(None)
HELD = receipts.c.message_id.is_(None)
PROVIDER_REF_INDEXES: list[str] = []
for _table, _condition in ((messages, MESSAGE_HAS_REF), (attempts, ATTEMPT_HAS_REF), (receipts, HELD)):
    _index = sa.Index(
        f"ix_{_table.name}_provider_ref",
        _table.c.provider,
        _table.c.provider_message_id,
        sqlite_where=_condition,
        postgresql_where=_condition,
    )
    PROVIDER_REF_INDEXES.append(str(_index.name))

# Failure reports and the console read a window of failed messages by when they ended; with the
# default grouping's columns in it, a month of failures is counted from the index alone. Only failures
# are in it (a query reaches it by naming FAILED): each of a delivered message's four status changes
# wrote an entry here when it held every message.
FAILED = messages.c.status.in_([sa.literal_column(f"'{status}'") for status in sorted(FAILURE_STATUSES)])
sa.Index(
    "ix_messages_tenant_failed_updated",
    *(messages.c[name] for name in ("tenant_id", "status", "updated_at", "reason", "provider", "error_code")),
    sqlite_where=FAILED,
    postgresql_where=FAILED,
)

# The audit entry of a click is found by message through `clicks` (store/sql/events.py), not through
# the events' index by message. At thousands of clicks a second, each one's insert into that index at
# a random place cost more than the click's own row. A query reaches the index by naming NOT_A_CLICK
# (a literal, not a parameter: SQLite matches the index's condition term by term).
CLICK_KIND = "click"
NOT_A_CLICK = events.c.type != sa.literal_column(f"'{CLICK_KIND}'")
sa.Index("ix_events_message_not_click", events.c.message_id, sqlite_where=NOT_A_CLICK, postgresql_where=NOT_A_CLICK)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    # kind: "address" (a phone number, e-mail address, device token or URL) or "user_id".
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("value", sa.String(2048), nullable=False),
    sa.Column("reason", sa.String(128), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),  # api, inbound:<provider>, provider:<name>
    sa.Column("created_at", sa.Float, nullable=False),
    # Which categories it stops (domain/optout.SuppressionScope): all, or marketing (a reply's opt-out).
    sa.Column("scope", sa.String(16), nullable=False, server_default="all"),
    # The sender pool whose number the opt-out reply answered, when the tenant's scope reaches the pool.
    sa.Column("pool", sa.String(64)),
    sa.UniqueConstraint("tenant_id", "kind", "value", name="uq_suppressions_recipient"),
)

blocklists = sa.Table(
    "blocklists",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("words", sa.Text, nullable=False),  # a JSON array
    sa.Column("updated_at", sa.Float, nullable=False),
)

links = sa.Table(
    "links",
    metadata,
    sa.Column("token", sa.String(16), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    # "" for a per_campaign link, shared by every message of its campaign and variant.
    sa.Column("message_id", sa.String(32), nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("campaign", sa.String(128)),
    sa.Column("variant", sa.String(128)),
    sa.Column("created_at", sa.Float, nullable=False),
)

clicks = sa.Table(
    "clicks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("token", sa.String(16), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("user_agent", sa.String(512)),
    sa.Column("ip_hash", sa.String(64)),  # hashed with a secret: counts people, names nobody
    sa.Column("automated", sa.Boolean, nullable=False),
)

conversions = sa.Table(
    "conversions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    # "" when the conversion came through a campaign link, which belongs to no one message.
    sa.Column("message_id", sa.String(32), nullable=False, index=True),
    sa.Column("click_token", sa.String(16), index=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("occurred_at", sa.Float, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.UniqueConstraint("tenant_id", "event_id", name="uq_conversions_event"),
)

# Sender number pools (docs/numbers.md). Numbers are shared by all tenants; an operator manages them.
numbers = sa.Table(
    "numbers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pool", sa.String(64), nullable=False),
    sa.Column("sender", sa.String(64), nullable=False),  # E.164, short code or alphanumeric id
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("provider", sa.String(32)),  # NULL: any provider of the channel
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("countries", sa.String(400), nullable=False, server_default=""),  # comma-separated; "": any
    sa.Column("categories", sa.String(100), nullable=False, server_default=""),
    sa.Column("region", sa.String(64)),
    sa.Column("daily_cap", sa.Integer),
    sa.Column("rate", sa.Float),
    sa.Column("warmup", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("state_reason", sa.String(128)),
    sa.Column("state_since", sa.Float, nullable=False),
    sa.Column("cooldown_until", sa.Float),
    # Bumped when evidence stops counting (quarantine, probation, restore): health counters are per epoch.
    sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),
    sa.Column("checked_at", sa.Float),  # last reputation check
    sa.Column("source", sa.String(16), nullable=False),  # config or api
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("pool", "sender", name="uq_numbers_pool_sender"),
    sa.Index("ix_numbers_sender", "sender"),
)

# The number a recipient last got, so they keep seeing one familiar sender (survives restarts).
number_assignments = sa.Table(
    "number_assignments",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("recipient", sa.String(320), primary_key=True),
    sa.Column("number_id", sa.String(32), nullable=False, index=True),
    sa.Column("assigned_at", sa.Float, nullable=False),
)

number_events = sa.Table(
    "number_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("number_id", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(128), nullable=False),
    sa.Column("evidence", sa.Text),  # JSON
    sa.Column("actor", sa.String(64), nullable=False),  # health, reputation, operator:<key id>, config
    sa.Index("ix_number_events_number_at", "number_id", "at"),
)

# Recipients (docs/recipients.md): a person of a tenant, addressed by the campaign system's user_id.
recipients = sa.Table(
    "recipients",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("tz", sa.String(64)),
    sa.Column("locale", sa.String(64)),
    sa.Column("attributes", sa.Text, nullable=False, server_default="{}"),  # a JSON object
    # The last click, conversion or reply: the sleeping policy counts unanswered sends after it.
    sa.Column("engaged_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# A person's addresses: kind phone, email, push or webhook; `label` is an e-mail's display name or a
# push token's platform.
recipient_addresses = sa.Table(
    "recipient_addresses",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("address", sa.String(2048), primary_key=True),
    sa.Column("label", sa.String(256)),
    sa.Column("last_seen_at", sa.Float),
    sa.Index("ix_recipient_addresses_address", "tenant_id", "address"),
)

# Attributes again, one row each, so recipients can be filtered by one (values as text: strings as
# given, numbers and booleans as JSON writes them).
recipient_attributes = sa.Table(
    "recipient_attributes",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
    sa.Index("ix_recipient_attributes_value", "tenant_id", "name", "value"),
)

recipient_preferences = sa.Table(
    "recipient_preferences",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("category", sa.String(16), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Message templates (docs/templates.md): a draft per tenant and name, immutable numbered versions,
# and every change with who made it.
templates = sa.Table(
    "templates",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("draft", sa.Text, nullable=False),  # JSON: description, variables, channels, locales, providers
    sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("latest_version", sa.Integer, nullable=False, server_default="0"),  # 0: never published
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_templates_tenant_name"),
)

template_versions = sa.Table(
    "template_versions",
    metadata,
    sa.Column("template_id", sa.BigInteger, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content", sa.Text, nullable=False),  # the draft as it was published
    sa.Column("findings", sa.Text, nullable=False),  # the lint's warnings, a JSON array
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),  # the API key's id
)

template_changes = sa.Table(
    "template_changes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("template_id", sa.BigInteger, nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # created, updated, published, archived
    sa.Column("version", sa.Integer),  # the version a publish made
    sa.Column("actor", sa.String(64), nullable=False),  # the API key's id
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("detail", sa.Text),  # JSON: the fields a draft update changed
    sa.Index("ix_template_changes_template", "template_id", "id"),
)

# Status callbacks (docs/webhooks.md): a tenant's subscriptions, and per subscription the delivery
# state of each event of the audit log (`events`, the outbox: every state change writes its event row
# in its own transaction) that it wants.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", sa.Text, nullable=False),  # a JSON array of event types, "*" for all
    sa.Column("description", sa.String(200)),
    sa.Column("secret", sa.String(128), nullable=False),
    # The secret a rotation replaced, still signing beside the new one until previous_until.
    sa.Column("previous_secret", sa.String(128)),
    sa.Column("previous_until", sa.Float),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("paused_reason", sa.String(256)),
    sa.Column("paused_at", sa.Float),
    # Events with an id above this are fanned out to it: none from before it existed.
    sa.Column("after_event_id", sa.BigInteger, nullable=False),
    sa.Column("delivered_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failed_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failing_since", sa.Float),
    sa.Column("last_success_at", sa.Float),
    sa.Column("last_failure_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", sa.String(32), nullable=False),
    sa.Column("event_id", sa.BigInteger, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    # Deliveries of one message go out in event order; NULL: an event of no message, ordered by nothing.
    sa.Column("message_id", sa.String(32)),
    sa.Column("event_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_attempt_at", sa.Float),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.String(512)),
    sa.Column("delivered_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_event"),
    sa.Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_order", "endpoint_id", "message_id", "event_id"),
    sa.Index("ix_webhook_deliveries_endpoint_state", "endpoint_id", "state", "id"),
)

# How far the outbox has been read, with the lease of the one worker reading it (fenced on owner).
webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("last_event_id", sa.BigInteger, nullable=False),
    sa.Column("owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
)

# Experiments (docs/campaigns.md): a campaign's arms with their weights and its holdout share; a job
# with variant "auto" is assigned an arm, or the holdout, by a stable hash of its recipient.
experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("campaign", sa.String(128), primary_key=True),
    sa.Column("variants", sa.Text, nullable=False),  # a JSON object: arm -> weight (percent)
    sa.Column("holdout", sa.Float, nullable=False, server_default="0"),  # percent
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# One-time claim tokens (docs/campaigns.md): a message is claimed once. The first verify inserts the
# row, atomically across processes (the primary key decides); each later verify of a genuine token of
# the same message counts a refused replay.
claims = sa.Table(
    "claims",
    metadata,
    sa.Column("message_id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("campaign", sa.String(128)),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("refused", sa.Integer, nullable=False, server_default="0"),
)


# Identifiers, keys, addresses and names compare byte by byte on PostgreSQL as they do on SQLite. In
# the database's own collation (C.UTF-8, en_US.UTF-8, ...) each comparison in each index on them went
# through strcoll (with the attempts' redundant index, 8 % of PostgreSQL's CPU per delivered message
# in bench/dispatch.py), and campaigns, senders or user ids listed in an order that differed between
# the two stores. Free text (Text columns: content, error messages, details) keeps the database's.
BYTEWISE = "C"
for _table in metadata.tables.values():
    for _column in _table.columns:
        if type(_column.type) is sa.String:
            _column.type = _column.type.with_variant(sa.String(_column.type.length, collation=BYTEWISE), "postgresql")

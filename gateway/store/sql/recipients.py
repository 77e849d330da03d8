"""Recipients: profiles with their addresses and attributes, preferences, and erasure of a person."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.domain.models import SENT, Category
from gateway.domain.recipients import (
    ERASED_ADDRESS,
    PushToken,
    RecipientProfile,
    address_digest,
    attribute_text,
    erased_form,
    patched,
)
from gateway.store.batcher import GroupCommitter
from gateway.store.records import PURGED_CONTENT, Addressing, RecipientFilter
from gateway.store.schema import (
    KEYED_MESSAGES,
    attempts,
    clicks,
    conversions,
    events,
    message_keys,
    messages,
    number_assignments,
    receipts,
    recipient_addresses,
    recipient_attributes,
    recipient_preferences,
    recipients,
    suppressions,
)
from gateway.store.sql.common import (
    Room,
    any_of,
    audit,
    dialect_insert,
    executemany_fast,
    fetch_compiled,
    listed,
    update_with_keys,
)
from gateway.store.sql.keys import get_or_create_secret
from gateway.store.sql.suppressions import ERASURE_SECRET


def _of(tenant_id: str, user_id: str, table: sa.Table) -> Any:
    return sa.and_(table.c.tenant_id == tenant_id, table.c.user_id == user_id)


def _address_rows(tenant_id: str, profile: RecipientProfile) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(kind: str, address: str | None, label: str | None = None, seen: float | None = None) -> None:
        if address is not None:
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "user_id": profile.user_id,
                    "kind": kind,
                    "address": address,
                    "label": label,
                    "last_seen_at": seen,
                }
            )

    add("phone", profile.phone)
    add("email", profile.email, profile.email_name)
    for token in {t.token: t for t in profile.push_tokens}.values():  # a token given twice: the last one
        add("push", token.token, token.platform, token.last_seen_at)
    add("webhook", profile.webhook_url)
    return rows


def _write_profile(conn: Connection, tenant_id: str, profile: RecipientProfile, now: float) -> bool:
    """Insert or replace the whole profile; True when it is new."""
    return put_recipients(conn, tenant_id, [profile], now)[0]


def put_recipients(conn: Connection, tenant_id: str, profiles: Sequence[RecipientProfile], now: float) -> list[bool]:
    """Profiles written (each inserted or replaced whole) in one transaction, in a few statements for
    the lot (a bulk import's batch); per profile, whether it is new. A user_id given twice is written
    in turn, so the later one wins and counts as a replacement."""
    if len({p.user_id for p in profiles}) != len(profiles):
        return [flag for p in profiles for flag in put_recipients(conn, tenant_id, [p], now)]
    named = [p.user_id for p in profiles]
    columns = [_profile_columns(p, now) for p in profiles]
    pairs = zip(named, columns, strict=True)
    rows = [{"tenant_id": tenant_id, "user_id": user_id, "created_at": now, **c} for user_id, c in pairs]
    insert = dialect_insert(conn, recipients).values(rows)
    new = set(
        conn.execute(
            insert.on_conflict_do_nothing(index_elements=["tenant_id", "user_id"]).returning(recipients.c.user_id)
        ).scalars()
    )
    # The others replaced (parameters named apart from the columns they set, as SQLAlchemy requires).
    replaced = [
        {"b_user_id": p.user_id, **{f"b_{k}": v for k, v in c.items()}}
        for p, c in zip(profiles, columns, strict=True)
        if p.user_id not in new
    ]
    if replaced:
        who = sa.and_(recipients.c.tenant_id == tenant_id, recipients.c.user_id == sa.bindparam("b_user_id"))
        changed: dict[str, Any] = {name: sa.bindparam(f"b_{name}") for name in columns[0]}
        conn.execute(recipients.update().where(who).values(**changed), replaced)
    for table in (recipient_addresses, recipient_attributes):
        conn.execute(table.delete().where(table.c.tenant_id == tenant_id, table.c.user_id.in_(named)))
    addresses = [row for p in profiles for row in _address_rows(tenant_id, p)]
    if addresses:
        conn.execute(recipient_addresses.insert(), addresses)
    attributes = [
        {"tenant_id": tenant_id, "user_id": p.user_id, "name": k, "value": attribute_text(v)}
        for p in profiles
        for k, v in p.attributes.items()
    ]
    if attributes:
        conn.execute(recipient_attributes.insert(), attributes)
    return [p.user_id in new for p in profiles]


def _profile_columns(profile: RecipientProfile, now: float) -> dict[str, Any]:
    """The recipients row's columns a write sets (its addresses and attributes are rows of their own)."""
    return {
        "tz": profile.tz,
        "locale": profile.locale,
        "attributes": orjson.dumps(dict(profile.attributes)).decode(),
        "updated_at": now,
    }


def _profile(conn: Connection, row: Mapping[str, Any]) -> RecipientProfile:
    found = conn.execute(
        sa.select(recipient_addresses).where(_of(row["tenant_id"], row["user_id"], recipient_addresses))
    ).mappings()
    return _profile_of(row, found)


def _profile_of(row: Any, found: Iterable[Any]) -> RecipientProfile:
    single: dict[str, Any] = {}
    tokens = []
    for address in found:
        if address["kind"] == "push":
            tokens.append(PushToken(address["address"], address["label"], address["last_seen_at"]))
        else:
            single[address["kind"]] = address
    email = single.get("email")
    return RecipientProfile(
        user_id=row["user_id"],
        phone=single["phone"]["address"] if "phone" in single else None,
        email=email["address"] if email else None,
        email_name=email["label"] if email else None,
        push_tokens=tuple(sorted(tokens, key=lambda t: (-(t.last_seen_at or 0.0), t.token))),
        webhook_url=single["webhook"]["address"] if "webhook" in single else None,
        tz=row["tz"],
        locale=row["locale"],
        attributes=orjson.loads(row["attributes"]),
    )


def _stored(conn: Connection, row: Any) -> dict[str, Any]:
    return {
        "profile": _profile(conn, row),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "engaged_at": row["engaged_at"],
    }


def get_recipient(conn: Connection, tenant_id: str, user_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(recipients).where(_of(tenant_id, user_id, recipients))).mappings().first()
    return _stored(conn, row) if row is not None else None


def patch_recipient(
    conn: Connection, tenant_id: str, user_id: str, changes: Mapping[str, Any], now: float
) -> dict[str, Any] | None:
    current = get_recipient(conn, tenant_id, user_id)
    if current is None:
        return None
    _write_profile(conn, tenant_id, patched(current["profile"], changes), now)
    return get_recipient(conn, tenant_id, user_id)


def sleeping_users(tenant_id: str, after: int, since: float) -> Any:
    """user_ids whose marketing sends since `since` (and since they last engaged) number `after` or more,
    none of them clicked by a person or converted."""
    scope = sa.and_(
        message_keys.c.tenant_id == tenant_id,
        message_keys.c.user_id.is_not(None),
        messages.c.category == Category.MARKETING.value,
        messages.c.status.in_(sorted(SENT)),
        messages.c.created_at >= since,
        messages.c.created_at > sa.func.coalesce(recipients.c.engaged_at, 0.0),
    )
    joined = KEYED_MESSAGES.join(
        recipients,
        sa.and_(recipients.c.tenant_id == message_keys.c.tenant_id, recipients.c.user_id == message_keys.c.user_id),
    )
    engaged = sa.union(
        sa.select(message_keys.c.user_id)
        .select_from(joined.join(clicks, clicks.c.message_id == messages.c.id))
        .where(scope, clicks.c.automated.is_(False)),
        sa.select(message_keys.c.user_id)
        .select_from(joined.join(conversions, conversions.c.message_id == messages.c.id))
        .where(scope),
    )
    return (
        sa.select(message_keys.c.user_id)
        .select_from(joined)
        .where(scope, message_keys.c.user_id.not_in(engaged))
        .group_by(message_keys.c.user_id)
        .having(sa.func.count() >= after)
    )


def list_recipients(conn: Connection, f: RecipientFilter) -> list[dict[str, Any]]:
    query = sa.select(recipients).where(recipients.c.tenant_id == f.tenant_id)
    if f.after_user_id is not None:
        query = query.where(recipients.c.user_id > f.after_user_id)
    if f.address_kind is not None:
        query = query.where(
            recipients.c.user_id.in_(
                sa.select(recipient_addresses.c.user_id).where(
                    recipient_addresses.c.tenant_id == f.tenant_id, recipient_addresses.c.kind == f.address_kind
                )
            )
        )
    if f.attribute is not None:
        name, value = f.attribute
        query = query.where(
            recipients.c.user_id.in_(
                sa.select(recipient_attributes.c.user_id).where(
                    recipient_attributes.c.tenant_id == f.tenant_id,
                    recipient_attributes.c.name == name,
                    recipient_attributes.c.value == value,
                )
            )
        )
    if f.sleeping is not None:
        sleepers = sleeping_users(f.tenant_id, *f.sleeping)
        query = query.where(recipients.c.user_id.in_(sleepers) if f.asleep else recipients.c.user_id.not_in(sleepers))
    rows = conn.execute(query.order_by(recipients.c.user_id).limit(f.limit)).mappings()
    return [{"user_id": row["user_id"], **_stored(conn, row)} for row in rows]


# Built once and run through the driver for each message (executemany_fast): a click flush runs it
# every few milliseconds, and SQLAlchemy's per-call work on one statement with an expanding IN list
# (its cache key, the list rendered into the SQL each time) cost more than the updates themselves.
# The people are found through the messages' primary key, then each recipient through its own: an
# EXISTS over recipients would read every recipient of every tenant for each flush.
_MARK_ENGAGED = (
    recipients.update()
    .where(
        sa.tuple_(recipients.c.tenant_id, recipients.c.user_id).in_(
            sa.select(messages.c.tenant_id, messages.c.user_id).where(
                messages.c.id == sa.bindparam("message_id", type_=sa.String), messages.c.user_id.is_not(None)
            )
        ),
        sa.or_(recipients.c.engaged_at.is_(None), recipients.c.engaged_at < sa.bindparam("at", type_=sa.Float)),
    )
    .values(engaged_at=sa.bindparam("at", type_=sa.Float))
)


def mark_engaged(conn: Connection, message_ids: Sequence[str], at: float) -> None:
    """The people whose messages were clicked or converted engaged at `at`: the sleeping policy counts
    their unanswered sends from then on. Messages in a fixed order, so two flushes lock alike."""
    if message_ids:
        rows = [{"message_id": message_id, "at": at} for message_id in sorted(set(message_ids))]
        executemany_fast(conn, "mark-engaged", _MARK_ENGAGED, rows)


def get_preferences(conn: Connection, tenant_id: str, user_id: str) -> dict[str, dict[str, bool]] | None:
    if conn.execute(sa.select(recipients.c.user_id).where(_of(tenant_id, user_id, recipients))).first() is None:
        return None
    found: dict[str, dict[str, bool]] = {}
    for category, channel, enabled in conn.execute(
        sa.select(recipient_preferences.c.category, recipient_preferences.c.channel, recipient_preferences.c.enabled)
        .where(_of(tenant_id, user_id, recipient_preferences))
        .order_by(recipient_preferences.c.category, recipient_preferences.c.channel)
    ):
        found.setdefault(category, {})[channel] = bool(enabled)
    return found


def put_preferences(
    conn: Connection, tenant_id: str, user_id: str, given: Mapping[str, Mapping[str, bool]], now: float
) -> dict[str, dict[str, bool]] | None:
    if get_preferences(conn, tenant_id, user_id) is None:
        return None
    for category, channels in given.items():
        for channel, enabled in channels.items():
            key = {"tenant_id": tenant_id, "user_id": user_id, "category": category, "channel": channel}
            stmt = dialect_insert(conn, recipient_preferences).values(**key, enabled=enabled, updated_at=now)
            conn.execute(
                stmt.on_conflict_do_update(index_elements=list(key), set_={"enabled": enabled, "updated_at": now})
            )
    return get_preferences(conn, tenant_id, user_id)


def preferences_of(
    conn: Connection, people: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, dict[str, bool]]]:
    """Preferences of (tenant, user_id) pairs, for the dispatch path."""
    found: dict[tuple[str, str], dict[str, dict[str, bool]]] = {}
    for tenant_id, user_id in set(people):
        prefs = get_preferences(conn, tenant_id, user_id)
        if prefs is not None:
            found[(tenant_id, user_id)] = prefs
    return found


def _whose(table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.tenant_id == sa.bindparam("tenant_id", ""), table.c.user_id == sa.bindparam("user_id", ""))


# One person's addressing in one statement of one row shape (part, a, b, c, d), for Database.peek:
# compiled once and asked straight on the driver, with no transaction or thread hop around it. The
# profile part says only that the person exists: its key columns, answered from the primary key's
# index without reading the row (choosing a channel needs no time zone, locale or attributes).
ONE_ADDRESSING = sa.union_all(
    sa.select(
        sa.literal_column("'profile'").label("part"),
        recipients.c.user_id.label("a"),
        sa.cast(sa.null(), sa.String).label("b"),
        sa.cast(sa.null(), sa.String).label("c"),
        sa.cast(sa.null(), sa.Float).label("d"),
    ).where(_whose(recipients)),
    sa.select(
        sa.literal_column("'address'"),
        recipient_addresses.c.kind,
        recipient_addresses.c.address,
        recipient_addresses.c.label,
        recipient_addresses.c.last_seen_at,
    ).where(_whose(recipient_addresses)),
    sa.select(
        sa.literal_column("'preference'"),
        recipient_preferences.c.category,
        recipient_preferences.c.channel,
        sa.cast(sa.null(), sa.String),
        sa.cast(recipient_preferences.c.enabled, sa.Integer),
    ).where(_whose(recipient_preferences)),
)


def addressing_of_rows(user_id: str, rows: Iterable[Sequence[Any]]) -> Addressing | None:
    """ONE_ADDRESSING's rows as the person's addresses and own preferences; None for no such person."""
    found = False
    addresses: list[tuple[str, str, Any, float | None]] = []
    preferences: dict[str, dict[str, bool]] = {}
    for part, a, b, c, d in rows:
        if part == "address":
            addresses.append((a, b, c, d))
        elif part == "profile":
            found = True
        else:
            preferences.setdefault(a, {})[b] = bool(d)
    return (reachable_at(user_id, addresses), preferences) if found else None


def reachable_at(user_id: str, addresses: Iterable[tuple[str, str, Any, float | None]]) -> RecipientProfile:
    """A profile of the person's addresses alone, from (kind, address, label, last_seen_at): what choosing a
    job's channels reads (no time zone, locale or attributes)."""
    single: dict[str, tuple[str, str | None]] = {}
    tokens = []
    for kind, address, label, seen in addresses:
        if kind == "push":
            tokens.append(PushToken(address, label, seen))
        else:
            single[kind] = (address, label)
    phone, email, webhook = single.get("phone"), single.get("email"), single.get("webhook")
    return RecipientProfile(
        user_id=user_id,
        phone=phone[0] if phone else None,
        email=email[0] if email else None,
        email_name=email[1] if email else None,
        push_tokens=tuple(sorted(tokens, key=lambda t: (-(t.last_seen_at or 0.0), t.token))) if tokens else (),
        webhook_url=webhook[0] if webhook else None,
    )


def addressing(conn: Connection, people: Sequence[tuple[str, str]]) -> list[Addressing | None]:
    """What choosing jobs' channels needs of each person (tenant, user_id): their addresses and own
    preferences; None for no such person. Three statements for any number of people (accepts that
    arrive together are looked up together)."""
    by_tenant: dict[str, set[str]] = defaultdict(set)
    for tenant_id, user_id in people:
        by_tenant[tenant_id].add(user_id)
    known: set[tuple[str, str]] = set()
    addresses: dict[tuple[str, str], list[Any]] = defaultdict(list)
    preferences: dict[tuple[str, str], dict[str, dict[str, bool]]] = defaultdict(dict)
    for tenant_id, users in by_tenant.items():
        named = sorted(users)
        for (user_id,) in conn.execute(sa.select(recipients.c.user_id).where(_among(recipients, tenant_id, named))):
            known.add((tenant_id, user_id))
        found = sa.select(recipient_addresses).where(_among(recipient_addresses, tenant_id, named))
        for row in conn.execute(found).mappings():
            addresses[(tenant_id, row["user_id"])].append(
                (row["kind"], row["address"], row["label"], row["last_seen_at"])
            )
        wanted = sa.select(recipient_preferences).where(_among(recipient_preferences, tenant_id, named))
        for row in conn.execute(wanted).mappings():
            own = preferences[(tenant_id, row["user_id"])]
            own.setdefault(row["category"], {})[row["channel"]] = bool(row["enabled"])
    return [
        (reachable_at(key[1], addresses.get(key, ())), preferences.get(key, {})) if key in known else None
        for key in people
    ]


def _among(table: sa.Table, tenant_id: str, user_ids: Sequence[str]) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.tenant_id == tenant_id, table.c.user_id.in_(user_ids))


# Built once (the worker reads it for every batch it judges): each person's zone and phone number.
_PHONES = (
    recipient_addresses.select()
    .where(recipient_addresses.c.tenant_id == sa.bindparam("tenant_id"), recipient_addresses.c.kind == "phone")
    .subquery()
)
_LOCAL_TIME_FACTS = (
    sa.select(recipients.c.user_id, recipients.c.tz, _PHONES.c.address)
    .select_from(recipients.outerjoin(_PHONES, _PHONES.c.user_id == recipients.c.user_id))
    .where(
        recipients.c.tenant_id == sa.bindparam("tenant_id"),
        any_of(recipients.c.user_id, "users"),
    )
)


def local_time_facts(
    conn: Connection, people: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """(tz, phone) of each (tenant, user_id) that has a profile: what quiet hours are timed by."""
    found: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    by_tenant: dict[str, set[str]] = {}
    for tenant_id, user_id in people:
        by_tenant.setdefault(tenant_id, set()).add(user_id)
    for tenant_id, users in by_tenant.items():
        # The list is one parameter (a JSON list or an array), so no length limit needs chunks.
        params = {"tenant_id": tenant_id, "users": listed(conn, sorted(users))}
        for user_id, tz, phone in fetch_compiled(conn, _LOCAL_TIME_FACTS, params):
            found[(tenant_id, user_id)] = (tz, phone)
    return found


# -- erasure ------------------------------------------------------------------------------------------


def _mask_text(conn: Connection, column: sa.Column[Any], where: Any, addresses: Sequence[str]) -> None:
    """Every occurrence of an address in `column` (of the rows `where` picks) replaced by its erased form."""
    for address in addresses:
        conn.execute(
            column.table.update()
            .where(where, column.contains(address, autoescape=True))
            .values({column.name: sa.func.replace(column, address, erased_form(address))})
        )


def erase_recipient(conn: Connection, tenant_id: str, user_id: str, now: float) -> dict[str, int] | None:
    """The person gone: profile, addresses, attributes and preferences deleted; every address they had
    (in the profile, or that a message for their user_id went to) masked in messages, attempts,
    receipts, events and suppressions; sticky sender numbers forgotten. Audited, without the addresses."""
    if conn.execute(sa.select(recipients.c.user_id).where(_of(tenant_id, user_id, recipients))).first() is None:
        return None
    known = set(
        conn.execute(
            sa.select(recipient_addresses.c.address).where(_of(tenant_id, user_id, recipient_addresses))
        ).scalars()
    )
    known |= set(
        conn.execute(
            sa.select(message_keys.c.to_addr).where(
                message_keys.c.tenant_id == tenant_id, message_keys.c.user_id == user_id
            )
        ).scalars()
    )
    # Longest first, so an address inside another (a URL holding an e-mail) is masked whole.
    addresses = sorted(known, key=len, reverse=True)
    # By user id, then by address, each through its own index (as one OR, SQLite walked every key of
    # the tenant).
    ids = sorted(
        {
            message_id
            for condition in (message_keys.c.user_id == user_id, message_keys.c.to_addr.in_(addresses))
            for message_id in conn.execute(
                sa.select(message_keys.c.message_id).where(message_keys.c.tenant_id == tenant_id, condition)
            ).scalars()
        }
    )
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        conn.execute(messages.update().where(messages.c.id.in_(chunk)).values(content=PURGED_CONTENT))
        for address in addresses:
            # The address goes from the message and from the keys it is found by.
            update_with_keys(conn, chunk, where_to=address, to_addr=erased_form(address))
        for column in (messages.c.metadata, messages.c.error_message):
            _mask_text(conn, column, messages.c.id.in_(chunk), addresses)
        _mask_text(conn, attempts.c.error_message, attempts.c.message_id.in_(chunk), addresses)
        _mask_text(conn, receipts.c.raw, receipts.c.message_id.in_(chunk), addresses)
    _mask_text(conn, events.c.detail, events.c.tenant_id == tenant_id, addresses)
    # Suppressions stay (the person opted out): the address becomes its keyed digest, still matched at dispatch.
    secret = get_or_create_secret(conn, ERASURE_SECRET)
    for sid, value in conn.execute(
        sa.select(suppressions.c.id, suppressions.c.value).where(
            suppressions.c.tenant_id == tenant_id, suppressions.c.kind == "address", suppressions.c.value.in_(addresses)
        )
    ).all():
        digest = address_digest(secret, value)
        conn.execute(
            suppressions.delete().where(
                suppressions.c.tenant_id == tenant_id,
                suppressions.c.kind == ERASED_ADDRESS,
                suppressions.c.value == digest,
            )
        )
        conn.execute(suppressions.update().where(suppressions.c.id == sid).values(kind=ERASED_ADDRESS, value=digest))
    if addresses:
        conn.execute(
            number_assignments.delete().where(
                number_assignments.c.tenant_id == tenant_id, number_assignments.c.recipient.in_(addresses)
            )
        )
    for table in (recipient_addresses, recipient_attributes, recipient_preferences, recipients):
        conn.execute(table.delete().where(_of(tenant_id, user_id, table)))
    counts = {"addresses": len(addresses), "messages": len(ids)}
    audit(
        conn,
        tenant_id,
        now,
        "recipient.erased",
        "erasure",
        detail=orjson.dumps({"user_id": user_id, **counts}).decode(),
    )
    return counts


class RecipientsRoom(Room):
    async def put_recipients(self, tenant_id: str, profiles: Sequence[RecipientProfile]) -> list[bool]:
        return await self.db.write(put_recipients, tenant_id, profiles, time.time())

    async def patch_recipient(self, tenant_id: str, user_id: str, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        return await self.db.write(patch_recipient, tenant_id, user_id, changes, time.time())

    async def get_recipient(self, tenant_id: str, user_id: str) -> dict[str, Any] | None:
        return await self.db.read(get_recipient, tenant_id, user_id)

    async def list_recipients(self, f: RecipientFilter) -> list[dict[str, Any]]:
        return await self.db.read(list_recipients, f)

    async def erase_recipient(self, tenant_id: str, user_id: str) -> dict[str, int] | None:
        return await self.db.write(erase_recipient, tenant_id, user_id, time.time())

    async def get_preferences(self, tenant_id: str, user_id: str) -> dict[str, dict[str, bool]] | None:
        return await self.db.read(get_preferences, tenant_id, user_id)

    async def put_preferences(
        self, tenant_id: str, user_id: str, given: Mapping[str, Mapping[str, bool]]
    ) -> dict[str, dict[str, bool]] | None:
        return await self.db.write(put_preferences, tenant_id, user_id, given, time.time())

    async def local_time_facts(
        self, people: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str | None, str | None]]:
        if not people:  # jobs addressed by `to` alone: no profile to read, no trip to the database
            return {}
        return await self.db.read(local_time_facts, people)

    _addressings: GroupCommitter[tuple[str, str], Addressing | None]

    async def addressing(self, tenant_id: str, user_id: str) -> Addressing | None:
        found = await self.db.peek(ONE_ADDRESSING, {"tenant_id": tenant_id, "user_id": user_id})
        if found is None:  # no such shortcut here (an in-memory database), or it failed: the grouped read
            return await self._addressings.submit((tenant_id, user_id))
        return addressing_of_rows(user_id, found)

    async def addressings(self, tenant_id: str, user_ids: Sequence[str]) -> list[Addressing | None]:
        """Many people at once (a batch's recipients' jobs): one read, never split."""
        return await self._addressings.submit_many([(tenant_id, user_id) for user_id in user_ids])

    async def _read_addressings(self, people: list[tuple[str, str]]) -> list[Addressing | None]:
        return await self.db.read(addressing, people)

    async def preferences_of(
        self, people: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, dict[str, bool]]]:
        return await self.db.read(preferences_of, people)

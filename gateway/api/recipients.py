"""/v1/recipients: a tenant's people, their addresses, preferences and erasure."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.api.bodies import read_json
from gateway.api.context import ApiContext, context
from gateway.api.problems import Problem, validation_problem
from gateway.api.render import iso
from gateway.contract.base import judge
from gateway.contract.recipients import (
    USER_ID_PATTERN,
    PreferencesBody,
    RecipientBody,
    RecipientPatch,
    RecipientQuery,
)
from gateway.domain.email_address import parse_mailbox
from gateway.domain.jobs import FieldError
from gateway.domain.limits import SleepingPolicy
from gateway.domain.recipients import (
    ADDRESS_OF_CHANNEL,
    CATEGORIES,
    CHANNELS,
    PushToken,
    RecipientProfile,
    Verdict,
    unserved_platforms,
    wanted,
)
from gateway.store.records import RecipientFilter

MAX_BODY = 65_536
_USER_ID = re.compile(USER_ID_PATTERN)


def json_answer(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def not_found(user_id: str) -> Problem:
    return Problem(404, "not-found", "Not Found", f"no recipient {user_id!r}")


def user_id_of(request: web.Request) -> str:
    user_id = request.match_info["user_id"]
    if not _USER_ID.match(user_id):
        raise not_found(user_id)
    return user_id


def to_profile(user_id: str, body: RecipientBody) -> RecipientProfile:
    mailbox = parse_mailbox(body.email) if body.email is not None else None
    return RecipientProfile(
        user_id=user_id,
        phone=body.phone,
        email=mailbox.address if mailbox else None,
        email_name=mailbox.display_name if mailbox else None,
        push_tokens=tuple(PushToken(t.token, t.platform, t.last_seen_at) for t in body.push_tokens),
        webhook_url=body.webhook_url,
        tz=body.tz,
        locale=body.locale,
        attributes=dict(body.attributes),
    )


def platform_problems(ctx: ApiContext, tokens: Any, prefix: str = "") -> list[FieldError]:
    """A push token for a platform no configured provider delivers to could never be used: refused."""
    served = ctx.providers.push_platforms
    return [
        FieldError(f"{prefix}/push_tokens/{i}/platform", f"no configured push provider delivers to {token.platform}")
        for i, token in enumerate(tokens or ())
        if unserved_platforms([token.platform], served)
    ]


def render(stored: dict[str, Any]) -> dict[str, Any]:
    p: RecipientProfile = stored["profile"]
    return {
        "user_id": p.user_id,
        "phone": p.phone,
        "email": p.email,
        "email_name": p.email_name,
        "push_tokens": [
            {"token": t.token, "platform": t.platform, "last_seen_at": iso(t.last_seen_at)} for t in p.push_tokens
        ],
        "webhook_url": p.webhook_url,
        "tz": p.tz,
        "locale": p.locale,
        "attributes": dict(p.attributes),
        "created_at": iso(stored["created_at"]),
        "updated_at": iso(stored["updated_at"]),
    }


async def put_recipient(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    user_id = user_id_of(request)
    judged, errors = judge(RecipientBody, await read_json(request, MAX_BODY))
    if judged is None or (errors := platform_problems(ctx, judged.push_tokens)):
        raise validation_problem(errors)
    [created] = await ctx.store.put_recipients(principal.tenant_id, [to_profile(user_id, judged)])
    stored = await ctx.store.get_recipient(principal.tenant_id, user_id)
    assert stored is not None
    return json_answer(render(stored), 201 if created else 200)


async def patch_recipient(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    user_id = user_id_of(request)
    judged, errors = judge(RecipientPatch, await read_json(request, MAX_BODY))
    if judged is None or (errors := platform_problems(ctx, judged.push_tokens)):
        raise validation_problem(errors)
    changes = {name: getattr(judged, name) for name in judged.model_fields_set}
    if "email" in changes and changes["email"] is not None:
        mailbox = parse_mailbox(changes["email"])
        assert mailbox is not None  # judged
        changes["email"], changes["email_name"] = mailbox.address, mailbox.display_name
    if changes.get("push_tokens") is not None:
        changes["push_tokens"] = [PushToken(t.token, t.platform, t.last_seen_at) for t in changes["push_tokens"]]
    stored = await ctx.store.patch_recipient(principal.tenant_id, user_id, changes)
    if stored is None:
        raise not_found(user_id)
    return json_answer(render(stored))


async def get_recipient(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    user_id = user_id_of(request)
    stored = await ctx.store.get_recipient(principal.tenant_id, user_id)
    if stored is None:
        raise not_found(user_id)
    return json_answer(render(stored))


async def erase_recipient(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    user_id = user_id_of(request)
    if await ctx.store.erase_recipient(principal.tenant_id, user_id) is None:
        raise not_found(user_id)
    return web.Response(status=204)


def sleeping_window(policy: SleepingPolicy | None, now: float) -> tuple[int, float]:
    """The sleeping policy's (unanswered sends, since); with none configured nobody sleeps."""
    if policy is None:
        return (2**31 - 1, now)  # more sends than anyone has; the largest count PostgreSQL compares as int4
    return (policy.after, now - policy.window_seconds)


async def list_recipients(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    query, errors = RecipientQuery.judge(request.query)
    if query is None:
        raise Problem(400, "invalid-query", "Invalid query", "some query parameters are not valid", errors=errors)
    attribute = (query.attribute.partition(":")[0], query.attribute.partition(":")[2]) if query.attribute else None
    rows = await ctx.store.list_recipients(
        RecipientFilter(
            principal.tenant_id,
            address_kind=ADDRESS_OF_CHANNEL[query.has_channel] if query.has_channel else None,
            attribute=attribute,
            sleeping=sleeping_window(ctx.sleeping, time.time()) if query.sleeping is not None else None,
            asleep=query.sleeping is not False,
            after_user_id=query.cursor,
            limit=query.limit + 1,
        )
    )
    page = rows[: query.limit]
    next_cursor = page[-1]["user_id"] if len(rows) > query.limit else None
    return json_answer({"data": [render(r) for r in page], "next_cursor": next_cursor})


def effective_preferences(
    own: dict[str, dict[str, bool]], defaults: dict[str, dict[str, bool]]
) -> dict[str, dict[str, bool]]:
    return {
        category: {channel: wanted(own, defaults, category, channel) is Verdict.ALLOWED for channel in CHANNELS}
        for category in CATEGORIES
    }


def _preferences_answer(ctx: ApiContext, tenant_id: str, user_id: str, own: dict[str, dict[str, bool]]) -> web.Response:
    defaults = ctx.settings.tenant(tenant_id).preferences
    return json_answer({"user_id": user_id, "preferences": own, "effective": effective_preferences(own, defaults)})


async def put_preferences(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    user_id = user_id_of(request)
    judged, errors = judge(PreferencesBody, await read_json(request, MAX_BODY))
    if judged is None:
        raise validation_problem(errors)
    given = {
        category: {channel: on for channel, on in switches.__dict__.items() if on is not None}
        for category, switches in judged.__dict__.items()
        if switches is not None
    }
    own = await ctx.store.put_preferences(principal.tenant_id, user_id, given)
    if own is None:
        raise not_found(user_id)
    return _preferences_answer(ctx, principal.tenant_id, user_id, own)


async def get_preferences(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "read")
    user_id = user_id_of(request)
    own = await ctx.store.get_preferences(principal.tenant_id, user_id)
    if own is None:
        raise not_found(user_id)
    return _preferences_answer(ctx, principal.tenant_id, user_id, own)

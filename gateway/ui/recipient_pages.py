"""The console's recipient page: one person of the tenant, addresses masked, with their preferences, recent
messages and suppressions."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from gateway.api.context import context
from gateway.api.recipients import effective_preferences
from gateway.domain.recipients import RecipientProfile
from gateway.logging import mask_value
from gateway.store.records import MessageFilter
from gateway.ui.console import PREFIX, ConsoleError, Redirect, page, signed_in

RECENT = 20


def masked_token(token: str) -> str:
    """Enough of a device token to tell two apart, not to send to."""
    return token[:4] + "…" + token[-2:] if len(token) > 10 else "…"


def masked_address(address: str) -> str:
    """A phone number or e-mail address as the logs mask it; anything else (a device token) cut short."""
    masked = mask_value(address)
    return masked if masked != address else masked_token(address)


def masked_addresses(p: RecipientProfile) -> list[tuple[str, str, str]]:
    """(channel, masked address, note) of each address the person has."""
    found = []
    if p.phone:
        found.append(("phone", mask_value(p.phone), ""))
    if p.email:
        found.append(("email", mask_value(p.email), p.email_name or ""))
    for token in p.push_tokens:
        found.append(("push", masked_token(token.token), token.platform))
    if p.webhook_url:
        found.append(("webhook", p.webhook_url.split("/")[2] if p.webhook_url.count("/") >= 2 else "…", "host"))
    return found


async def find_recipient(request: web.Request) -> web.Response:
    await signed_in(request, "read")
    user_id = request.query.get("user_id", "").strip()
    if user_id:
        raise Redirect(f"{PREFIX}/recipients/{quote(user_id, safe='')}")
    return page(request, "recipient.html", person=None, user_id="")


async def recipient(request: web.Request) -> web.Response:
    principal = await signed_in(request, "read")
    store = context(request).store
    user_id = request.match_info["user_id"]
    stored = await store.get_recipient(principal.tenant_id, user_id)
    if stored is None:
        raise ConsoleError(404, "No such recipient", f"This tenant has no recipient {user_id!r}.")
    profile: RecipientProfile = stored["profile"]
    own = await store.get_preferences(principal.tenant_id, user_id) or {}
    defaults = context(request).settings.tenant(principal.tenant_id).preferences
    recent = await store.list_messages(MessageFilter(principal.tenant_id, user_id=user_id, limit=RECENT))
    suppressed = await store.list_suppressions(principal.tenant_id, "user_id", user_id, None, 100)
    for address in (profile.phone, profile.email, *(t.token for t in profile.push_tokens)):
        if address:
            suppressed += await store.list_suppressions(principal.tenant_id, "address", address, None, 100)
    return page(
        request,
        "recipient.html",
        tenant=principal.tenant_id,
        user_id=user_id,
        person=profile,
        stored=stored,
        addresses=masked_addresses(profile),
        preferences=effective_preferences(own, defaults),
        own=own,
        messages=[{**m, "to_addr": masked_address(m["to_addr"])} for m in recent],
        suppressions=[
            {**s, "value": masked_address(s["value"]) if s["kind"] == "address" else s["value"]} for s in suppressed
        ],
    )

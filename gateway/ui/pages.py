"""The console's way in: signing in and out, and the home page.

The other pages, one module per concern: failure_pages, campaign_pages, message_pages, live_page,
number_pages."""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import hash_key
from gateway.api.context import context
from gateway.ui.console import NEW_SESSION, PREFIX, SESSION, Redirect, form, page, safe_next
from gateway.ui.session import Session


async def login_form(request: web.Request) -> web.Response:
    if request[SESSION].key_hash is not None and request.get(NEW_SESSION) is None:
        principal = await context(request).auth.lookup(request[SESSION].key_hash or "")
        if principal is not None:
            raise Redirect(safe_next(request.query.get("next")))
    notice = ""
    if "ended" in request.query:
        notice = "Your session ended: the key was revoked or has expired. Sign in again."
    return page(request, "login.html", next=safe_next(request.query.get("next")), error="", notice=notice)


async def login(request: web.Request) -> web.Response:
    submitted = form(request)
    key = str(submitted.get("key", "")).strip()
    target = safe_next(str(submitted.get("next", "")))
    principal = await context(request).auth.lookup(hash_key(key)) if key else None
    if principal is None:
        return page(
            request,
            "login.html",
            status=401,
            next=target,
            error="That key is unknown, revoked or expired.",
            notice="",
        )
    if not (principal.allows("read") or principal.allows("report")):
        return page(
            request,
            "login.html",
            status=403,
            next=target,
            error="That key has neither the 'read' nor the 'report' scope; the console needs one of them.",
            notice="",
        )
    request[NEW_SESSION] = Session.signed_in(hash_key(key))
    raise Redirect(target)


async def logout(request: web.Request) -> web.Response:
    request[NEW_SESSION] = Session.anonymous()
    raise Redirect(f"{PREFIX}/login")


async def home(request: web.Request) -> web.Response:
    raise Redirect(f"{PREFIX}/failures")

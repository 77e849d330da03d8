"""The console's plumbing: templates, the session middleware (cookie, CSRF, errors as pages) and
the sign-in check every page makes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
import structlog
from aiohttp import web
from multidict import MultiDictProxy

from gateway.api.auth import Principal
from gateway.api.context import context
from gateway.api.problems import UNAVAILABLE_RETRY_AFTER_SECONDS, Problem
from gateway.store.outage import DatabaseUnavailable
from gateway.ui.session import COOKIE, CSRF_FIELD, LIFETIME_SECONDS, Session, SessionCodec

log = structlog.get_logger("gateway.ui")

SESSION = web.RequestKey("console_session", Session)
NEW_SESSION = web.RequestKey("console_new_session", Session)
FORM = web.RequestKey("console_form", MultiDictProxy[str | bytes | Any])
CODEC = web.AppKey("console_codec", list[SessionCodec])
PREFIX = "/ui"

SECURITY_HEADERS = {
    # Pages carry no script at all; charts are inline SVG, styles one file of our own.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class ConsoleError(Exception):
    """Shown as an error page with this status."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


class Redirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "-"
    seconds = int((now or time.time()) - ts)
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def sentence(text: str) -> str:
    """Advice is written to fit a table cell; placed after another sentence it needs a capital and a full stop."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _query(params: Mapping[str, Any], **overrides: Any) -> str:
    merged = {**params, **overrides}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


templates = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.ui", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["when"] = when
templates.filters["ago"] = ago
templates.filters["sentence"] = sentence
templates.filters["urlpart"] = lambda value: quote(str(value), safe="")
templates.globals["query"] = _query


def page(request: web.Request, template: str, *, status: int = 200, **values: Any) -> web.Response:
    session = request.get(NEW_SESSION) or request[SESSION]
    html = templates.get_template(template).render(
        csrf_field=CSRF_FIELD,
        csrf=session.csrf,
        path=request.path,
        tenant=values.pop("tenant", None),
        **values,
    )
    return web.Response(status=status, text=html, content_type="text/html", headers=SECURITY_HEADERS)


def form(request: web.Request) -> MultiDictProxy[Any]:
    return request[FORM]


async def signed_in(request: web.Request, scope: str) -> Principal:
    """The principal behind this session, its key checked again now: a revoked or expired key ends
    the session; a key without `scope` gets a 403 page."""
    session = request[SESSION]
    if session.key_hash is None:
        raise Redirect(f"{PREFIX}/login?" + urlencode({"next": request.path_qs}))
    try:
        return await context(request).auth.principal_for_digest(session.key_hash, scope)
    except Problem as problem:
        if problem.status == 401:
            request[NEW_SESSION] = Session.anonymous()
            raise Redirect(f"{PREFIX}/login?" + urlencode({"ended": "1", "next": request.path_qs})) from None
        raise


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console page only (never another site)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/failures"


async def _codec(request: web.Request) -> SessionCodec:
    holder = request.app[CODEC]
    if not holder:
        secret = await context(request).store.get_or_create_secret("console_session")
        holder.append(SessionCodec(secret))
    return holder[0]


def _error_page(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    return page(request, "error.html", status=status, title=title, detail=detail)


@web.middleware
async def console_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    codec = await _codec(request)
    session = codec.decode(request.cookies.get(COOKIE))
    if session is None:
        session = Session.anonymous()
        request[NEW_SESSION] = session
    request[SESSION] = session
    response: web.StreamResponse
    try:
        if request.method == "POST":
            request[FORM] = await request.post()
            _check_csrf(session, _text(request[FORM].get(CSRF_FIELD)))
        response = await handler(request)
    except Redirect as redirect:
        response = web.Response(status=303, headers={"Location": redirect.location, "Cache-Control": "no-store"})
    except ConsoleError as error:
        response = _error_page(request, error.status, error.title, error.detail)
    except DatabaseUnavailable:
        response = _error_page(
            request,
            503,
            "The database is unavailable",
            "The gateway cannot reach its database just now; try again in a few seconds.",
        )
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_SECONDS)
    except Problem as problem:
        response = _error_page(request, problem.status, problem.title, problem.detail)
        response.headers.update({k: v for k, v in problem.headers.items() if k.lower() == "retry-after"})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error_page(request, exc.status, exc.reason, exc.text or exc.reason)
    except Exception:
        log.exception("console error", path=request.path, method=request.method)
        response = _error_page(
            request, 500, "Something went wrong", "The console failed to show this page; the error has been logged."
        )
    fresh = request.get(NEW_SESSION)
    if fresh is not None and not response.prepared:
        response.set_cookie(
            COOKIE,
            codec.encode(fresh),
            max_age=LIFETIME_SECONDS,
            path=PREFIX,
            httponly=True,
            samesite="Strict",
            secure=context(request).settings.base_url.startswith("https://"),
        )
    return response


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _check_csrf(session: Session, token: str | None) -> None:
    if not session.csrf_matches(token):
        raise ConsoleError(
            403,
            "Refused: the form's CSRF token is missing or stale",
            "This form did not come from a page of this console, or the page is too old."
            " Nothing was changed. Reload the page and try again.",
        )

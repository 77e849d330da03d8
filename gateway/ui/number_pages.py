"""The console's sender number pages: the pools, one number's history, flag and restore."""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote, urlencode

from aiohttp import web

from gateway.api.context import context
from gateway.api.numbers import render_numbers
from gateway.domain.numbers import NumberState
from gateway.number_pool import NumberPool
from gateway.ui.console import PREFIX, ConsoleError, Redirect, form, page, signed_in

NUMBER_STATES = tuple(s.value for s in NumberState)
NUMBER_ACTIONS = {"flag": "flagged", "restore": "restored"}


def _number_pool(request: web.Request) -> NumberPool:
    pool = context(request).numbers
    if pool is None:
        raise ConsoleError(404, "No number pools", "Sender number pools are not enabled on this gateway.")
    return pool


async def numbers(request: web.Request) -> web.Response:
    """Every sender number with its state, the reason it is in it, and its health in the window.
    Numbers belong to the provider accounts, not to a tenant: every tenant sees the same list."""
    principal = await signed_in(request, "read")
    pool = _number_pool(request)
    errors: dict[str, str] = {}
    pool_name = request.query.get("pool") or None
    state = request.query.get("state") or None
    if state is not None and state not in NUMBER_STATES:
        errors["state"] = f"must be one of {', '.join(NUMBER_STATES)}"
        state = None
    rows = await context(request).store.number_rows(pool_name, state)
    listed = await render_numbers(pool, rows)
    by_pool: dict[str, Counter[str]] = {}
    for number in listed:
        by_pool.setdefault(number["pool"], Counter())[number["state"]] += 1
    return page(
        request,
        "numbers.html",
        tenant=principal.tenant_id,
        errors=errors,
        numbers=listed,
        pools=sorted(by_pool.items()),
        states=NUMBER_STATES,
        chosen={"pool": pool_name or "", "state": state or ""},
        window_minutes=round(pool.policy.window_seconds / 60),
    )


async def number(request: web.Request) -> web.Response:
    principal = await signed_in(request, "read")
    pool = _number_pool(request)
    store = context(request).store
    row = await store.number_row(request.match_info["id"])
    if row is None:
        raise ConsoleError(404, "No such number", f"No sender number {request.match_info['id']!r}.")
    [shown] = await render_numbers(pool, [row])
    events = await store.number_events(row["id"], 50)
    return page(
        request,
        "number.html",
        tenant=principal.tenant_id,
        n=shown,
        events=events,
        can_change=principal.allows("admin"),
        error=request.query.get("error", ""),
    )


async def number_action(request: web.Request) -> web.Response:
    """Flag (with a reason) or restore a number: the same act as POST /v1/numbers/{id}/flag|restore,
    with the admin scope it needs there, recorded with this key as the actor."""
    principal = await signed_in(request, "admin")
    pool = _number_pool(request)
    action = request.match_info["action"]
    number_id = request.match_info["id"]
    reason = str(form(request).get("reason", "")).strip()
    if action == "flag" and not 1 <= len(reason) <= 200:
        raise _back_to_number(number_id, "Say why the number is flagged (1-200 characters); nothing was changed.")
    if not reason:
        reason = f"{NUMBER_ACTIONS[action]} by an operator"
    row, _ = await pool.operate(number_id, action, reason[:200], f"operator:{principal.key_id}")
    if row is None:
        raise ConsoleError(404, "No such number", f"No sender number {number_id!r}.")
    if action == "flag" and row["state"] == "retired":
        raise _back_to_number(number_id, "A retired number cannot be flagged; restore it first.")
    raise Redirect(f"{PREFIX}/numbers/{quote(number_id, safe='')}")


def _back_to_number(number_id: str, error: str) -> Redirect:
    return Redirect(f"{PREFIX}/numbers/{quote(number_id, safe='')}?" + urlencode({"error": error}))

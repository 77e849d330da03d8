"""/v1/numbers: the sender number pools, their health, and the operator's hand on them.

Numbers are shared by every tenant (they belong to the provider accounts), so changing them takes
the `admin` scope; reading them takes `read`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from gateway.api.bodies import read_json
from gateway.api.context import ApiContext, context
from gateway.api.problems import Problem, validation_problem
from gateway.api.render import iso
from gateway.contract.base import judge
from gateway.contract.numbers import FlagRequest, NumberAction, NumberAttributes, NumberQuery, judge_new_number
from gateway.domain.jobs import FieldError
from gateway.domain.numbers import NumberState, daily_cap
from gateway.number_pool import NumberPool, number_row
from gateway.store.records import to_number

MAX_BODY = 16_384
ACTIONS = {"flag": "flagged", "restore": "restored", "retire": "retired"}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def _render(ctx: ApiContext, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert ctx.numbers is not None
    return await render_numbers(ctx.numbers, rows)


async def render_numbers(pool: NumberPool, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Numbers as the API and `gateway numbers` show them: state, last reason, health in the window."""
    numbers = [to_number(r) for r in rows]
    counts = await pool.counts(numbers)
    now = time.time()
    out = []
    for row, number in zip(rows, numbers, strict=True):
        out.append(
            {
                "id": row["id"],
                "pool": row["pool"],
                "sender": row["sender"],
                "kind": row["kind"],
                "provider": row["provider"],
                "channel": row["channel"],
                "countries": sorted(number.countries),
                "categories": sorted(number.categories),
                "region": row["region"],
                "daily_cap": row["daily_cap"],
                "daily_cap_now": daily_cap(number, pool.policy, now),
                "rate": row["rate"],
                "warmup": bool(row["warmup"]),
                "state": row["state"],
                "reason": row["state_reason"],
                "state_since": iso(row["state_since"]),
                "cooldown_until": iso(row["cooldown_until"]) if row["cooldown_until"] is not None else None,
                "checked_at": iso(row["checked_at"]) if row["checked_at"] is not None else None,
                "health": {**counts[number.id].as_dict(), "window_seconds": pool.policy.window_seconds},
                "source": row["source"],
                "created_at": iso(row["created_at"]),
                "updated_at": iso(row["updated_at"]),
            }
        )
    return out


def _pool(ctx: ApiContext) -> NumberPool:
    if ctx.numbers is None:  # pragma: no cover - every gateway has one
        raise Problem(404, "not-found", "Not Found", "number pools are not enabled here")
    return ctx.numbers


async def list_numbers(request: web.Request) -> web.Response:
    ctx = context(request)
    await ctx.auth.principal(request, "read")
    _pool(ctx)
    query, errors = NumberQuery.judge(request.query)
    if query is None:
        raise Problem(400, "invalid-query", "Invalid query", "some query parameters are not valid", errors=errors)
    rows = await ctx.store.number_rows(query.pool, query.state)
    return _json({"data": await _render(ctx, rows)})


async def _number_row(ctx: ApiContext, request: web.Request) -> dict[str, Any]:
    row = await ctx.store.number_row(request.match_info["id"])
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"no number {request.match_info['id']!r}")
    return row


async def get_number(request: web.Request) -> web.Response:
    ctx = context(request)
    await ctx.auth.principal(request, "read")
    _pool(ctx)
    row = await _number_row(ctx, request)
    [rendered] = await _render(ctx, [row])
    events = await ctx.store.number_events(row["id"], 50)
    rendered["events"] = [
        {
            "at": iso(e["at"]),
            "from": e["from_state"],
            "to": e["to_state"],
            "reason": e["reason"],
            "evidence": e["evidence"],
            "actor": e["actor"],
        }
        for e in events
    ]
    return _json(rendered)


def _unknown_provider(ctx: ApiContext, body: dict[str, Any]) -> list[FieldError]:
    """Which providers exist is this gateway's configuration, not the contract's: checked here."""
    provider = body.get("provider")
    if isinstance(provider, str) and ctx.providers.get(provider) is None:
        return [FieldError("/provider", "must name a configured provider (or be null: any)")]
    return []


async def _object_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    if optional and not request.body_exists:
        return {}
    body = await read_json(request, MAX_BODY)
    if not isinstance(body, dict):
        raise validation_problem([FieldError("/", "must be a JSON object")])
    return body


async def create_number(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "admin")
    _pool(ctx)
    body = await _object_body(request)
    number, errors = judge_new_number(body)
    errors += _unknown_provider(ctx, body)
    if number is None or errors:
        raise validation_problem(errors)
    row = number_row(
        pool=number.pool,
        sender=number.sender,
        channel=number.channel,
        kind=number.kind,
        provider=number.provider,
        countries=number.countries or (),
        categories=number.categories or (),
        region=number.region,
        daily_cap=number.daily_cap,
        rate=number.rate,
        warmup=number.warmup,
        source=f"api:{principal.key_id}",
        now=time.time(),
    )
    if not await ctx.store.add_number(row):
        raise Problem(409, "conflict", "Conflict", f"pool {number.pool!r} already has sender {number.sender!r}")
    _pool(ctx).added()
    stored = await ctx.store.number_row(row["id"])
    assert stored is not None
    [rendered] = await _render(ctx, [stored])
    return web.Response(
        status=201,
        body=orjson.dumps(rendered),
        content_type="application/json",
        headers={"Location": f"/v1/numbers/{row['id']}"},
    )


async def update_number(request: web.Request) -> web.Response:
    ctx = context(request)
    await ctx.auth.principal(request, "admin")
    _pool(ctx)
    row = await _number_row(ctx, request)
    body = await _object_body(request)
    attributes, errors = judge(NumberAttributes, body)
    errors += _unknown_provider(ctx, body)
    if attributes is None or errors:
        raise validation_problem(errors)
    updated = await ctx.store.update_number(row["id"], attributes.changes())
    if updated is None:
        raise Problem(404, "not-found", "Not Found", f"no number {row['id']!r}")
    [rendered] = await _render(ctx, [updated])
    return _json(rendered)


async def delete_number(request: web.Request) -> web.Response:
    ctx = context(request)
    await ctx.auth.principal(request, "admin")
    _pool(ctx)
    if not await ctx.store.delete_number(request.match_info["id"]):
        raise Problem(404, "not-found", "Not Found", f"no number {request.match_info['id']!r}")
    return web.Response(status=204)


async def _operate(request: web.Request, action: str) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "admin")
    pool = _pool(ctx)
    await _number_row(ctx, request)
    flagging = action == "flag"
    body = await _object_body(request, optional=not flagging)
    model: type[NumberAction] = FlagRequest if flagging else NumberAction
    judged, errors = judge(model, body)
    if judged is None:
        raise validation_problem(errors)
    reason = judged.reason or f"{ACTIONS[action]} by an operator"
    row, _ = await pool.operate(request.match_info["id"], action, reason, f"operator:{principal.key_id}")
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"no number {request.match_info['id']!r}")
    if flagging and row["state"] == NumberState.RETIRED:
        raise Problem(409, "conflict", "Conflict", "a retired number cannot be flagged; restore it first")
    [rendered] = await _render(ctx, [row])
    return _json(rendered)


async def flag_number(request: web.Request) -> web.Response:
    return await _operate(request, "flag")


async def restore_number(request: web.Request) -> web.Response:
    return await _operate(request, "restore")


async def retire_number(request: web.Request) -> web.Response:
    return await _operate(request, "retire")

"""/v1/numbers: the sender number pools, their health, and the operator's hand on them.

Numbers are shared by every tenant (they belong to the provider accounts), so changing them takes
the `admin` scope; reading them takes `read`.
"""

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
from gateway.domain.jobs import FieldError, normalise_phone
from gateway.domain.models import is_member
from gateway.domain.numbers import EDITABLE, NumberState, SenderKind, daily_cap
from gateway.number_pool import NumberPool, number_row
from gateway.store.records import to_number

MAX_BODY = 16_384
POOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
ALPHANUMERIC = re.compile(r"^[A-Za-z0-9 ]{1,11}$")
SHORT_CODE = re.compile(r"^[0-9]{3,8}$")
CHANNELS = ("sms", "voice")
CATEGORIES = ("marketing", "transactional")
MAX_DAILY_CAP = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL
CREATE_FIELDS = {"pool", "sender", *EDITABLE}
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
    query = request.query
    errors = [FieldError(n, "is not a known query parameter") for n in sorted(set(query) - {"pool", "state"})]
    state = query.get("state")
    if state is not None and state not in {s.value for s in NumberState}:
        errors.append(FieldError("state", f"must be one of {', '.join(s.value for s in NumberState)}"))
    if errors:
        raise Problem(400, "invalid-query", "Invalid query", "some query parameters are not valid", errors=errors)
    rows = await ctx.store.number_rows(query.get("pool"), state)
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


def _check_attributes(ctx: ApiContext, body: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    """The editable attributes in `body`, checked and in their stored form."""
    out: dict[str, Any] = {}
    if "kind" in body:
        if not is_member(body["kind"], SenderKind):
            errors.append(FieldError("/kind", f"must be one of {', '.join(k.value for k in SenderKind)}"))
        else:
            out["kind"] = body["kind"]
    if "channel" in body:
        if not isinstance(body["channel"], str) or body["channel"] not in CHANNELS:
            errors.append(FieldError("/channel", "must be sms or voice"))
        else:
            out["channel"] = body["channel"]
    if "provider" in body:
        provider = body["provider"]
        if provider is not None and (not isinstance(provider, str) or ctx.providers.get(provider) is None):
            errors.append(FieldError("/provider", "must name a configured provider (or be null: any)"))
        else:
            out["provider"] = provider
    for name, allowed in (("countries", None), ("categories", CATEGORIES)):
        if name not in body:
            continue
        values = body[name]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            errors.append(FieldError(f"/{name}", "must be a list of strings"))
            continue
        bad = [v for v in values if (v not in allowed if allowed else not COUNTRY.match(v.upper()))]
        if bad:
            what = "marketing or transactional" if allowed else "ISO 3166 alpha-2 country codes"
            errors.append(FieldError(f"/{name}", f"must hold {what} (not {bad[0]!r})"))
            continue
        out[name] = ",".join(sorted({v.upper() if name == "countries" else v for v in values}))
    if "region" in body:
        region = body["region"]
        if region is not None and (not isinstance(region, str) or not 1 <= len(region) <= 64):
            errors.append(FieldError("/region", "must be a string of 1-64 characters or null"))
        else:
            out["region"] = region
    if "daily_cap" in body:
        cap = body["daily_cap"]
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_DAILY_CAP):
            errors.append(FieldError("/daily_cap", f"must be a whole number from 1 to {MAX_DAILY_CAP} or null"))
        else:
            out["daily_cap"] = cap
    if "rate" in body:
        rate = body["rate"]
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0):
            errors.append(FieldError("/rate", "must be a positive number of messages per second or null"))
        else:
            out["rate"] = float(rate) if rate is not None else None
    if "warmup" in body:
        if not isinstance(body["warmup"], bool):
            errors.append(FieldError("/warmup", "must be true or false"))
        else:
            out["warmup"] = body["warmup"]
    return out


def _check_sender(kind: str, sender: Any, errors: list[FieldError]) -> str | None:
    if not isinstance(sender, str) or not sender.strip():
        errors.append(FieldError("/sender", "is required: the number, short code or alphanumeric id"))
        return None
    text = sender.strip()
    if kind == SenderKind.NUMBER:
        normal = normalise_phone(text)
        if normal is None:
            errors.append(FieldError("/sender", "must be a phone number in E.164 (+<country><number>)"))
        return normal
    if kind == SenderKind.SHORT_CODE and not SHORT_CODE.match(text):
        errors.append(FieldError("/sender", "a short code is 3-8 digits"))
    if kind == SenderKind.ALPHANUMERIC and not ALPHANUMERIC.match(text):
        errors.append(FieldError("/sender", "an alphanumeric id is 1-11 letters, digits or spaces"))
    return text


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
    errors = [FieldError(f"/{n}", "is not a known field") for n in sorted(set(body) - CREATE_FIELDS)]
    pool = body.get("pool")
    if not isinstance(pool, str) or not POOL_NAME.match(pool):
        errors.append(FieldError("/pool", "is required: 1-64 letters, digits, '.', '_' or '-'"))
    attributes = _check_attributes(ctx, body, errors)
    kind = attributes.get("kind", SenderKind.NUMBER.value)
    sender = _check_sender(kind, body.get("sender"), errors)
    if errors or sender is None:
        raise validation_problem(errors)
    row = number_row(
        pool=str(pool),
        sender=sender,
        channel=attributes.get("channel", "sms"),
        kind=kind,
        provider=attributes.get("provider"),
        region=attributes.get("region"),
        daily_cap=attributes.get("daily_cap"),
        rate=attributes.get("rate"),
        warmup=attributes.get("warmup", False),
        source=f"api:{principal.key_id}",
        now=time.time(),
    )
    row["countries"] = attributes.get("countries", "")
    row["categories"] = attributes.get("categories", "")
    if not await ctx.store.add_number(row):
        raise Problem(409, "conflict", "Conflict", f"pool {pool!r} already has sender {sender!r}")
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
    errors = [FieldError(f"/{n}", "cannot be changed") for n in sorted(set(body) & {"pool", "sender"})]
    errors += [FieldError(f"/{n}", "is not a known field") for n in sorted(set(body) - CREATE_FIELDS)]
    changes = _check_attributes(ctx, body, errors)
    if errors:
        raise validation_problem(errors)
    updated = await ctx.store.update_number(row["id"], changes)
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
    body = await _object_body(request, optional=action != "flag")
    errors = [FieldError(f"/{n}", "is not a known field") for n in sorted(set(body) - {"reason"})]
    reason = body.get("reason", f"{ACTIONS[action]} by an operator")
    if action == "flag" and "reason" not in body:
        errors.append(FieldError("/reason", "is required: why the number is flagged"))
    elif not isinstance(reason, str) or not 1 <= len(reason) <= 200:
        errors.append(FieldError("/reason", "must be a string of 1-200 characters"))
    if errors:
        raise validation_problem(errors)
    row, _ = await pool.operate(request.match_info["id"], action, reason, f"operator:{principal.key_id}")
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"no number {request.match_info['id']!r}")
    if action == "flag" and row["state"] == NumberState.RETIRED:
        raise Problem(409, "conflict", "Conflict", "a retired number cannot be flagged; restore it first")
    [rendered] = await _render(ctx, [row])
    return _json(rendered)


async def flag_number(request: web.Request) -> web.Response:
    return await _operate(request, "flag")


async def restore_number(request: web.Request) -> web.Response:
    return await _operate(request, "restore")


async def retire_number(request: web.Request) -> web.Response:
    return await _operate(request, "retire")

"""Caps, quiet hours, opt-outs and throughput, enforced at dispatch through the real pipeline."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa

from gateway.store import schema
from providers.sandbox import SIGNATURE_HEADER, sign_inbound
from tests.fakes.twilio import FakeTwilio
from tests.harness import SMS, GatewayStarter, Running
from tests.pacing import bound_for, busiest_second

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _limits(**sections: object) -> dict[str, str]:
    sections.setdefault("quiet_hours", {"marketing": "00:00-24:00"})
    return {"GATEWAY_LIMITS": json.dumps(sections)}


async def _send(gw: Running, body: dict[str, object]) -> str:
    response = await gw.post("/v1/messages", body)
    assert response.status == 202, await response.text()
    return str((await response.json())["id"])


async def test_marketing_waits_for_the_recipients_window_and_transactional_does_not(
    start_gateway: GatewayStarter,
) -> None:
    local = datetime.now(SHANGHAI)
    opens = (local + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    window = f"{opens:%H}:00-{(opens + timedelta(hours=1)):%H}:00"
    async with start_gateway(_limits(quiet_hours={"marketing": window})) as gw:
        marketing = await _send(gw, SMS)
        transactional = await _send(gw, {**SMS, "category": "transactional"})
        waiting = await gw.wait_status(marketing, {"deferred"})
        assert waiting["reason"] == "limit.quiet_hours"
        assert waiting["attempts"] == []
        assert datetime.fromisoformat(waiting["next_attempt_at"]) == opens
        await gw.wait_status(transactional, {"delivered"})


async def test_the_jobs_own_time_zone_decides_its_quiet_hours(start_gateway: GatewayStarter) -> None:
    # A +86 number, but the campaign system knows the user lives in New York now.
    new_york = ZoneInfo("America/New_York")
    opens = (datetime.now(new_york) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    window = f"{opens:%H}:00-{(opens + timedelta(hours=1)):%H}:00"
    async with start_gateway(_limits(quiet_hours={"marketing": window})) as gw:
        waiting = await gw.wait_status(await _send(gw, {**SMS, "tz": "America/New_York"}), {"deferred"})
        assert datetime.fromisoformat(waiting["next_attempt_at"]) == opens
        assert waiting["tz"] == "America/New_York"


async def test_a_cap_defers_the_next_send_across_channels_of_one_user(start_gateway: GatewayStarter) -> None:
    caps = {"marketing": {"sms": ["1/day"], "all": ["2/week"]}}
    async with start_gateway(_limits(caps=caps)) as gw:
        first = await _send(gw, {**SMS, "user_id": "u-7"})
        await gw.wait_status(first, {"delivered"})
        started = time.time()
        second = await _send(gw, {**SMS, "to": "+8613900000001", "user_id": "u-7"})
        blocked = await gw.wait_status(second, {"deferred"})
        assert blocked["reason"] == "limit.cap"
        assert blocked["attempts"] == []
        frees = datetime.fromisoformat(blocked["next_attempt_at"]).timestamp()
        assert started + 86400 - 60 < frees < started + 86400 + 60
        email = await _send(
            gw,
            {
                "channel": "email",
                "to": "u7@example.com",
                "user_id": "u-7",
                "content": {"subject": "Hi", "text": "Back soon?"},
            },
        )
        await gw.wait_status(email, {"delivered"})
        third = await _send(
            gw,
            {
                "channel": "email",
                "to": "u7@example.com",
                "user_id": "u-7",
                "content": {"subject": "Hi", "text": "Still there?"},
            },
        )
        assert (await gw.wait_status(third, {"deferred"}))["reason"] == "limit.cap"
        other_user = await _send(gw, {**SMS, "user_id": "u-8"})
        await gw.wait_status(other_user, {"delivered"})


async def test_a_drop_policy_suppresses_instead_of_deferring(start_gateway: GatewayStarter) -> None:
    env = _limits(caps={"marketing": {"sms": ["1/day"]}}, on_hit={"marketing": "drop"})
    async with start_gateway(env) as gw:
        await gw.wait_status(await _send(gw, SMS), {"delivered"})
        dropped = await gw.wait_status(await _send(gw, SMS), {"suppressed"})
        assert dropped["reason"] == "limit.cap"
        assert dropped["events"][-1]["detail"]["rule"] == "sms 1/day"
        transactional = await _send(gw, {**SMS, "category": "transactional"})
        await gw.wait_status(transactional, {"delivered"})


async def _reply(gw: Running, sender: str, text: str) -> dict[str, int]:
    secret = await gw.gateway.store.get_or_create_secret("sandbox_receipts")
    body, signature = sign_inbound(secret, [{"from": sender, "to": "+10000000000", "text": text}])
    response = await gw.session.post(
        gw.url + "/v1/inbound/sandbox",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
    )
    assert response.status == 200
    return dict(await response.json())


async def test_an_opt_out_reply_stops_the_next_job_and_an_opt_in_lifts_it(start_gateway: GatewayStarter) -> None:
    async with start_gateway(_limits()) as gw:
        await gw.wait_status(await _send(gw, SMS), {"delivered"})
        assert await _reply(gw, SMS["to"], " 退订 ") == {"opted_out": 1, "opted_in": 0, "other": 0, "unmatched": 0}
        stopped = await gw.wait_status(await _send(gw, SMS), {"suppressed"})
        assert stopped["reason"] == "suppressed.opt_out"
        assert stopped["attempts"] == []
        listed = await (await gw.get("/v1/suppressions")).json()
        assert [(s["address"], s["source"]) for s in listed["data"]] == [(SMS["to"], "inbound:sandbox")]
        assert await _reply(gw, SMS["to"], "thanks!") == {"opted_out": 0, "opted_in": 0, "other": 1, "unmatched": 0}
        assert (await _reply(gw, SMS["to"], "START"))["opted_in"] == 1
        await gw.wait_status(await _send(gw, SMS), {"delivered"})
        assert (await _reply(gw, "+8613700000000", "STOP"))["unmatched"] == 1


async def test_a_forged_reply_changes_nothing(start_gateway: GatewayStarter) -> None:
    async with start_gateway(_limits()) as gw:
        await gw.wait_status(await _send(gw, SMS), {"delivered"})
        body, signature = sign_inbound("wrong-secret", [{"from": SMS["to"], "text": "STOP"}])
        response = await gw.session.post(
            gw.url + "/v1/inbound/sandbox",
            data=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )
        assert response.status == 401
        assert await gw.count("suppressions") == 0


async def test_the_suppression_list_api(start_gateway: GatewayStarter) -> None:
    async with start_gateway(_limits()) as gw:
        created = await gw.post("/v1/suppressions", {"address": "+86 138 1234 5678", "reason": "complaint"})
        assert created.status == 201
        assert (await created.json())["address"] == "+8613812345678"
        assert (await gw.post("/v1/suppressions", {"address": "+8613812345678"})).status == 200
        by_user = await gw.post("/v1/suppressions", {"user_id": "u-9"})
        assert by_user.status == 201
        user_job = await gw.wait_status(
            await _send(gw, {**SMS, "to": "+8613900000002", "user_id": "u-9"}), {"suppressed"}
        )
        assert user_job["reason"] == "suppressed.opt_out"
        bad = await gw.post("/v1/suppressions", {"phone": "+8613812345678"})
        assert bad.status == 422
        assert [e["field"] for e in (await bad.json())["errors"]] == ["/phone", "/address"]
        assert await gw.count("suppressions") == 2
        lifted = await gw.session.delete(
            gw.url + "/v1/suppressions", params={"address": "+8613812345678"}, headers=gw.headers
        )
        assert lifted.status == 204
        again = await gw.session.delete(
            gw.url + "/v1/suppressions", params={"address": "+8613812345678"}, headers=gw.headers
        )
        assert again.status == 404
        page = await (await gw.get("/v1/suppressions?limit=1")).json()
        assert [s.get("user_id") for s in page["data"]] == ["u-9"]


async def test_a_tenant_over_its_request_rate_gets_429(start_gateway: GatewayStarter) -> None:
    env = {"GATEWAY_API__TENANT_REQUESTS_PER_SECOND": "0.5", "GATEWAY_API__TENANT_REQUEST_BURST": "2"}
    async with start_gateway(env) as gw:
        statuses = [(await gw.post("/v1/messages", SMS)).status for _ in range(2)]
        refused = await gw.post("/v1/messages", SMS)
        assert statuses == [202, 202]
        assert refused.status == 429
        assert refused.content_type == "application/problem+json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert await gw.count() == 2


async def test_a_provider_limit_is_never_exceeded_in_any_second(start_gateway: GatewayStarter, tmp_path: Path) -> None:
    env = _limits(throughput={"provider": {"sandbox": {"rate": 20, "burst": 1}}})
    async with start_gateway(env) as gw:
        batch = {"messages": [{**SMS, "to": f"+86139{n:08d}"} for n in range(50)]}
        response = await gw.post("/v1/messages/batch", batch)
        ids = [r["id"] for r in (await response.json())["results"]]
        granted = {}
        for message_id in ids:
            detail = await gw.wait_status(message_id, {"delivered"}, within=20)
            granted[message_id] = datetime.fromisoformat(detail["attempts"][0]["started_at"]).timestamp()
    ledger = [orjson.loads(line) for line in (tmp_path / "sandbox-ledger.ndjson").read_bytes().splitlines()]
    stamped = {entry["ref"]: entry["at"] for entry in ledger if "ref" in entry}
    assert sorted(stamped) == sorted(ids)
    # One send per 50 ms is granted; each reaches the sandbox a little after its grant (the attempt's
    # start, in milliseconds): tests/pacing.py bounds the busiest second by the lag measured here.
    lags = [stamped[m] - granted[m] for m in ids]
    assert busiest_second(stamped.values()) <= bound_for(20, lags)
    stamps = sorted(stamped.values())
    assert stamps[-1] - stamps[0] >= 49 / 20 - 0.1, "sends were spread out, not burst"


async def test_a_sleeping_user_is_left_alone_until_they_answer(start_gateway: GatewayStarter) -> None:
    async with start_gateway(_limits(sleeping={"after": 2, "window_days": 30})) as gw:
        for n in range(2):
            await gw.wait_status(
                await _send(gw, {**SMS, "user_id": "sleepy", "content": {"text": f"offer {n}"}}), {"delivered"}
            )
        third = await gw.wait_status(await _send(gw, {**SMS, "user_id": "sleepy"}), {"suppressed"})
        assert third["reason"] == "suppressed.sleeping"
        assert third["events"][-1]["detail"] == {"unanswered": 2, "window_days": 30.0}
        receipt = await gw.wait_status(
            await _send(gw, {**SMS, "user_id": "sleepy", "category": "transactional"}), {"delivered"}
        )
        assert receipt["category"] == "transactional", "transactional messages are not held back"
        awake = await gw.wait_status(await _send(gw, {**SMS, "user_id": "awake"}), {"delivered"})
        conversion = await gw.post("/v1/conversions", {"message_id": awake["id"], "event": "visit"})
        assert conversion.status == 201
        for n in range(3):
            await gw.wait_status(
                await _send(gw, {**SMS, "user_id": "awake", "content": {"text": f"more {n}"}}), {"delivered"}
            )


async def test_provider_sections_sharing_an_account_share_its_limit(start_gateway: GatewayStarter) -> None:
    async with FakeTwilio() as twilio:
        section = {
            "type": "twilio",
            "account_sid": twilio.account_sid,
            "auth_token": twilio.auth_token,
            "from_number": "+14155550100",
            "api_base_url": twilio.url,
        }
        env = {
            **_limits(throughput={"account": {f"twilio:{twilio.account_sid}": {"rate": 10, "burst": 1}}}),
            "GATEWAY_PROVIDERS": json.dumps({"twilio-us": section, "twilio-eu": section}),
            "GATEWAY_ROUTING": json.dumps(
                {"channels": {"sms": [{"name": "twilio-us", "weight": 1}, {"name": "twilio-eu", "weight": 1}]}}
            ),
            "GATEWAY_SANDBOX__ENABLED": "false",
        }
        async with start_gateway(env) as gw:
            batch = {"messages": [{**SMS, "to": f"+86139{n:08d}"} for n in range(30)]}
            response = await gw.post("/v1/messages/batch", batch)
            ids = [r["id"] for r in (await response.json())["results"]]
            sent = [await gw.wait_status(i, {"sent", "delivered"}, within=20) for i in ids]

            def hand_offs(conn: Any) -> list[float]:
                # When each send left the pacer (the attempt starts once every limit has granted);
                # arrival times at the fake would add the network's jitter on a loaded machine.
                return [float(t) for t in conn.execute(sa.select(schema.attempts.c.started_at)).scalars()]

            stamps = sorted(await gw.gateway.store.db.read(hand_offs))
        assert {m["provider"] for m in sent} == {"twilio-us", "twilio-eu"}, "both sections carried messages"
        assert len([r for r in twilio.requests if r.path.endswith("/Messages.json")]) == len(stamps) == 30
        busiest = max(sum(1 for t in stamps[i:] if t < start + 1.0) for i, start in enumerate(stamps))
        assert busiest <= 10, "the account's 10/s held across both sections"
        assert stamps[-1] - stamps[0] >= 29 / 10 - 0.1

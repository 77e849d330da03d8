"""Quiet hours in the recipient's local time: their profile's tz, else their phone number's zones, else the
tenant's default zone, never UTC by accident; the deferral says which one was used."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from gateway.domain.limits import parse_limits
from gateway.domain.models import Job, Status
from gateway.domain.quiet_hours import parse_quiet_hours
from gateway.domain.recipients import RecipientProfile
from gateway.gate import PolicyGate
from gateway.state.memory import MemoryState
from gateway.store.store import SqlStore
from tests.harness import GatewayStarter
from tests.integration.direct import TENANT, job_of, message_row, sqlite_store

# 02:00 in Beijing is 18:00 UTC the day before; marketing may go from 08:00 Beijing, 00:00 UTC.
TWO_AM_BEIJING = datetime(2026, 1, 14, 18, 0, tzinfo=UTC).timestamp()
EIGHT_AM_BEIJING = datetime(2026, 1, 15, 0, 0, tzinfo=UTC).timestamp()
PUSH = {"channel": "push", "to": "fcm-token-0001", "content": json.dumps({"title": "Sale", "body": "50% off"})}


def push(**fields: Any) -> Job:
    return job_of(message_row(**{**PUSH, **fields}))


def gate(store: SqlStore, tenant_zone: str | None = None) -> PolicyGate:
    return PolicyGate(
        store,
        MemoryState(),
        parse_limits({}),
        parse_quiet_hours({}),  # marketing 08:00-20:00
        clock=lambda: TWO_AM_BEIJING,
        tenant_zone=lambda _tenant: tenant_zone,
    )


async def deferrals(g: PolicyGate, jobs: list[Job]) -> dict[str, tuple[Status, float | None, str | None]]:
    result = await g.judge(jobs, {j.id: "sandbox" for j in jobs})
    return {o.message_id: (o.status, o.next_attempt_at, (o.detail or {}).get("tz_source")) for o in result.decided}


async def test_a_two_am_beijing_marketing_push_waits_for_eight_by_profile_phone_or_tenant_zone(tmp_path: Path) -> None:
    async with sqlite_store(tmp_path) as store:
        await store.put_recipients(
            TENANT,
            [RecipientProfile("u-tz", tz="Asia/Shanghai"), RecipientProfile("u-phone", phone="+8613812345678")],
        )
        by_profile, by_phone, unknown = push(user_id="u-tz"), push(user_id="u-phone"), push(user_id="u-none")
        code = push(user_id="u-tz", category="transactional")
        found = await deferrals(gate(store), [by_profile, by_phone, unknown, code])
        assert found == {
            by_profile.id: (Status.DEFERRED, EIGHT_AM_BEIJING, "recipient"),
            by_phone.id: (Status.DEFERRED, EIGHT_AM_BEIJING, "phone"),
        }, "18:00 UTC is day time in UTC: only an unknown zone would let them through"
        by_tenant = push()
        assert await deferrals(gate(store, "Asia/Shanghai"), [by_tenant]) == {
            by_tenant.id: (Status.DEFERRED, EIGHT_AM_BEIJING, "tenant_default")
        }
        own_tz = push(user_id="u-tz", tz="Europe/Berlin")  # the job's own tz wins: 19:00 in Berlin
        assert await deferrals(gate(store), [own_tz]) == {}


async def test_the_deferral_event_names_the_recipients_zone_on_both_stores(start_gateway: GatewayStarter) -> None:
    # A window open now in UTC and shut now in Beijing (eight hours later): only the profile's tz holds it.
    hour = datetime.now(UTC).hour
    window = f"{hour:02d}:00-{(hour + 2) % 24:02d}:00"
    async with start_gateway({"GATEWAY_LIMITS": json.dumps({"quiet_hours": {"marketing": window}})}) as gw:
        put = await gw.session.put(f"{gw.url}/v1/recipients/u-1", json={"tz": "Asia/Shanghai"}, headers=gw.headers)
        assert put.status == 201
        body = {"channel": "push", "to": "fcm-token-0001", "content": {"title": "Sale", "body": "50% off"}}
        held = await gw.post("/v1/messages", {**body, "user_id": "u-1"})
        sent = await gw.post("/v1/messages", body)  # no zone known anywhere: UTC
        message = await gw.wait_status((await held.json())["id"], {"deferred"})
        await gw.wait_status((await sent.json())["id"], {"delivered"})
        [deferral] = [e for e in message["events"] if e["status"] == "deferred"]
        assert (deferral["detail"]["tz_source"], deferral["detail"]["zones"]) == ("recipient", ["Asia/Shanghai"])
        opens = datetime.fromisoformat(message["next_attempt_at"].replace("Z", "+00:00"))
        local = opens.astimezone(timezone(timedelta(hours=8)))
        assert (local.hour, local.minute) == (hour, 0) and opens > datetime.now(UTC)

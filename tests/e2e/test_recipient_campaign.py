"""A campaign addressed to people (issue 19's acceptance): PostgreSQL + Redis, one API and two worker
processes, 10,000 recipients imported in bulk (NDJSON), a push/sms/email campaign by `user_id` with
preferences (a person's own and the tenant's default), a cap of one marketing message a day per person
and quiet hours in each person's time zone. The sandbox refuses some sends for good, so some jobs fall
back across channels. Every choice is checked against a model of the population written here, and
every message's channel against its events."""

from __future__ import annotations

import asyncio
import collections
import datetime
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from tests.harness import API_KEY
from tests.processes import GatewayProcess, start_together

pytestmark = pytest.mark.slow
PEOPLE = 10_000
CHANNELS = ("push", "sms", "email")
DAY_ZONE, NIGHT_ZONE = "Etc/UTC", "Etc/GMT-12"  # quiet hours allow 3 hours either side of now, in UTC
TEMPLATE = {
    "name": "recall",
    "variables": {"name": {"type": "string", "required": True, "example": "Ann"}},
    "channels": {
        "push": {"title": "We miss you", "body": "{{ name }}, your coupon is waiting"},
        "sms": {"text": "[Shop] {{ name }}, your coupon is waiting. Reply T to opt out."},
        "email": {"subject": "Your coupon", "text": "Dear {{ name }}, your coupon is waiting."},
    },
}
PERMANENT = "provider.permanent.recipient_invalid"
REFUSALS = {
    "no_address": "the recipient has no address for {channel}",
    "preference_off": "the recipient turned {channel} off for marketing messages",
    "default_off": "{channel} is off for marketing messages by the tenant's default preferences",
}


@dataclass(frozen=True)
class Person:
    """One recipient as the test builds it, and what the gateway must decide for them."""

    n: int

    @property
    def user_id(self) -> str:
        return f"p-{self.n:05d}"

    def address(self, channel: str) -> str | None:
        n = self.n
        found = {
            "push": f"tok-{n:05d}-android" if n % 4 else None,
            "sms": f"+86138{n:08d}" if n % 5 else None,
            "email": f"p{n}@example.com" if n % 3 else None,
        }
        return found[channel]

    @property
    def night(self) -> bool:
        return self.n % 10 == 9

    @property
    def own_preferences(self) -> dict[str, bool]:
        """Marketing: push or sms turned off by some; e-mail (off by the tenant's default) on by some."""
        given = {"push": False} if self.n % 47 == 0 else {}
        given |= {"sms": False} if self.n % 53 == 0 else {}
        return given | ({"email": True} if self.n % 31 == 0 else {})

    @property
    def jobs(self) -> int:
        return 2 if self.n % 8 == 0 else 1  # a reminder for some: the cap lets only one through

    def verdict(self, channel: str) -> str:
        if self.address(channel) is None:
            return "no_address"
        own = self.own_preferences.get(channel)
        if own is False:
            return "preference_off"
        return "default_off" if own is None and channel == "email" else "allowed"

    @property
    def order(self) -> list[str]:
        return [c for c in CHANNELS if self.verdict(c) == "allowed"]

    def profile(self) -> dict[str, Any]:
        line: dict[str, Any] = {"user_id": self.user_id, "tz": NIGHT_ZONE if self.night else DAY_ZONE}
        if self.address("push"):
            line["push_tokens"] = [{"token": self.address("push"), "platform": "android"}]
        if self.address("sms"):
            line["phone"] = self.address("sms")
        if self.address("email"):
            line["email"] = self.address("email")
        return line


def _allowed_now() -> str:
    hour = datetime.datetime.now(datetime.UTC).hour
    return f"{(hour - 3) % 24:02d}:00-{(hour + 3) % 24:02d}:00"


def _env(api_url: str) -> dict[str, str]:
    limits = {"caps": {"marketing": {"all": ["1/day"]}}, "quiet_hours": {"marketing": {"allowed": _allowed_now()}}}
    errors = [{"code": "SBX-21211", "kind": "recipient_invalid", "weight": 1, "message": "invalid recipient"}]
    return {
        "GATEWAY_LIMITS": json.dumps(limits),
        "GATEWAY_TENANTS": json.dumps({"default": {"preferences": {"marketing": {"email": False}}}}),
        "GATEWAY_SANDBOX__LATENCY_MS": "1",
        "GATEWAY_SANDBOX__FAILURE_RATE": "0.03",
        "GATEWAY_SANDBOX__ERRORS": json.dumps(errors),
        "GATEWAY_SANDBOX__SEED": "19",
        "GATEWAY_SANDBOX__RECEIPT_DELAY_MS": "20",
        "GATEWAY_SANDBOX__RECEIPT_URL": f"{api_url}/v1/receipts/sandbox",
        "GATEWAY_LOG_LEVEL": "warning",
    }


async def _set_up_people(session: aiohttp.ClientSession, url: str, people: list[Person]) -> None:
    lines = b"".join(orjson.dumps(p.profile()) + b"\n" for p in people)
    headers = {"Content-Type": "application/x-ndjson"}
    async with session.post(f"{url}/v1/recipients", data=lines, headers=headers) as answer:
        assert answer.status == 200, await answer.text()
        results = [orjson.loads(line) for line in (await answer.read()).splitlines() if line.strip()]
    assert collections.Counter(r["result"] for r in results) == {"created": PEOPLE}, results[:3]
    limit = asyncio.Semaphore(16)

    async def prefer(person: Person) -> None:
        async with limit:
            path = f"{url}/v1/recipients/{person.user_id}/preferences"
            async with session.put(path, json={"marketing": person.own_preferences}) as answer:
                assert answer.status == 200, await answer.text()

    await asyncio.gather(*(prefer(p) for p in people if p.own_preferences))
    for path, body in (("/v1/templates", TEMPLATE), ("/v1/templates/recall/publish", {})):
        async with session.post(url + path, json=body) as answer:
            assert answer.status == 201, await answer.text()


async def _send_campaign(
    session: aiohttp.ClientSession, url: str, people: list[Person]
) -> tuple[dict[str, Person], list[tuple[Person, dict[str, Any]]]]:
    """Every person's jobs, shuffled, in batches of 1,000: (accepted message id -> person, refusals)."""
    jobs = [(p, k) for p in people for k in range(p.jobs)]
    random.Random(19).shuffle(jobs)
    accepted: dict[str, Person] = {}
    refused: list[tuple[Person, dict[str, Any]]] = []
    for start in range(0, len(jobs), 1000):
        chunk = jobs[start : start + 1000]
        items = [
            {
                "user_id": p.user_id,
                "channels": list(CHANNELS),
                "template": "recall",
                "params": {"name": f"P{p.n}"},
                "category": "marketing",
                "campaign": "recall",
                "idempotency_key": f"{p.user_id}-{k}",
            }
            for p, k in chunk
        ]
        async with session.post(f"{url}/v1/messages/batch", json={"messages": items}) as answer:
            assert answer.status == 200, await answer.text()
            for result in (await answer.json())["results"]:
                person = chunk[result["index"]][0]
                if result["status"] == 202:
                    accepted[result["id"]] = person
                else:
                    refused.append((person, result))
    return accepted, refused


async def _wait_settled(database_url: str, within: float) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            busy = "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending', 'sent')"
            if await conn.fetchval(busy) == 0:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"messages still in flight after {within:.0f} s")
    finally:
        await conn.close()


async def _events(session: aiohttp.ClientSession, url: str) -> dict[str, list[dict[str, Any]]]:
    """Every message's channel.chosen and status events, in the order they were written (the API's export)."""
    async with session.get(f"{url}/v1/events", params={"type": "channel.chosen,status"}) as answer:
        assert answer.status == 200
        lines = [orjson.loads(line) for line in (await answer.read()).splitlines() if line.strip()]
    by_message: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in sorted(lines, key=lambda e: e["id"]):
        by_message[event["message_id"]].append(event)
    return by_message


def _explained(person: Person, message: Any, events: list[dict[str, Any]]) -> None:
    """The message's channel follows from its channel.chosen event and the fallback moves after it."""
    [chosen] = [e for e in events if e["type"] == "channel.chosen"]
    assert chosen["reason"] == "recipient.listed"
    assert chosen["detail"]["order"] == person.order
    assert chosen["detail"]["verdicts"] == {c: person.verdict(c) for c in CHANNELS}
    moves = [e for e in events if e["type"] == "status" and "from" in (e["detail"] or {})]
    assert [(e["detail"]["from"], e["detail"]["to"], e["reason"]) for e in moves] == [
        (person.order[k], person.order[k + 1], PERMANENT) for k in range(len(moves))
    ]
    assert message["channel"] == person.order[len(moves)]
    assert message["to_addr"] == person.address(message["channel"])


async def test_a_campaign_to_ten_thousand_people_honours_preferences_caps_and_quiet_hours(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    api = GatewayProcess(tmp_path, role="api")
    env = {"GATEWAY_DATABASE_URL": fresh_postgres, "GATEWAY_REDIS_URL": fresh_redis, **_env(api.url)}
    api.env.update(env)
    workers = [GatewayProcess(tmp_path, env, role="worker") for _ in range(2)]
    people = [Person(n) for n in range(PEOPLE)]
    started = time.monotonic()
    try:
        api.start()  # the schema, before the workers
        start_together(workers)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:
            await _set_up_people(session, api.url, people)
            imported = time.monotonic()
            accepted, refused = await _send_campaign(session, api.url, people)
            sent = time.monotonic()
            await _wait_settled(fresh_postgres, within=60)
            events = await _events(session, api.url)
        conn = await asyncpg.connect(fresh_postgres)
        messages = {r["id"]: r for r in await conn.fetch("SELECT id, status, reason, channel, to_addr FROM messages")}
        await conn.close()
    finally:
        for process in (api, *workers):
            process.stop_quietly()
    ledger = [orjson.loads(line) for line in (tmp_path / "sandbox-ledger.ndjson").read_bytes().splitlines() if line]
    sends = collections.Counter(str(entry["ref"]) for entry in ledger if "ref" in entry)
    statuses = collections.Counter(m["status"] for m in messages.values())
    print(
        f"\n{PEOPLE:,} people, {len(accepted):,} jobs accepted, {len(refused)} refused; setup "
        f"{imported - started:.1f} s, accept {sent - imported:.1f} s, all {time.monotonic() - started:.1f} s; "
        f"{dict(statuses)}"
    )

    # Accept: a person none of whose channels is allowed is refused, naming each channel's reason.
    assert set(messages) == set(accepted)
    assert sorted(p.n for p in accepted.values()) == sorted(p.n for p in people if p.order for _ in range(p.jobs))
    assert {p.n for p, _ in refused} == {p.n for p in people if not p.order}
    for person, result in refused:
        assert [(e["field"].split("/", 3)[3], e["message"]) for e in result["problem"]["errors"]] == [
            (f"channels/{k}", REFUSALS[person.verdict(c)].format(channel=c)) for k, c in enumerate(CHANNELS)
        ]

    # Every message's channel and address explained by its events; each delivered once.
    for message_id, person in accepted.items():
        _explained(person, messages[message_id], events[message_id])
    assert max(sends.values()) == 1, "a message reached the provider twice"
    assert set(sends) == {i for i, m in messages.items() if m["status"] == "delivered"}

    # Quiet hours: nobody in their night. The cap: one message a day per person, any other deferred
    # (exactly one delivered unless a job failed on all its channels: its cap reservation was given back).
    by_person: dict[Person, list[Any]] = collections.defaultdict(list)
    for message_id, person in accepted.items():
        by_person[person].append(messages[message_id])
    for person, theirs in by_person.items():
        outcomes = sorted((m["status"], m["reason"]) for m in theirs)
        if person.night:
            assert outcomes == [("deferred", "limit.quiet_hours")] * len(theirs), person
            continue
        delivered = [m for m in theirs if m["status"] == "delivered"]
        failed = [m for m in theirs if m["status"] == "failed"]
        assert len(delivered) == 1 or (failed and not delivered), (person, outcomes)
        rest = [m for m in theirs if m["status"] not in ("delivered", "failed")]
        assert [(m["status"], m["reason"]) for m in rest] == [("deferred", "limit.cap")] * len(rest), person
        assert all((m["channel"], m["reason"]) == (person.order[-1], PERMANENT) for m in failed), outcomes

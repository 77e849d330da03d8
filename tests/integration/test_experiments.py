"""Experiments: declaring arms and a holdout (bad declarations refused, nothing stored), and the report's
arms compared with the holdout on a simulated campaign of 20,000 people. Both stores."""

from __future__ import annotations

import asyncio
import hashlib
import random
import subprocess
import sys
import time
from typing import Any

import sqlalchemy as sa

from gateway.domain.experiments import HOLDOUT, Experiment, assign
from gateway.domain.ids import message_id
from gateway.domain.models import Status
from gateway.store import schema
from gateway.store.migrations import KEYS_OF_MESSAGES
from tests.harness import SMS, GatewayStarter, Running

TRUE_RATES = {"A": 0.05, "B": 0.06, HOLDOUT: 0.04}
PEOPLE = 20_000
ASSIGN_IN_ANOTHER_PROCESS = """
import hashlib, sys
from gateway.domain.experiments import Experiment, assign
experiment = Experiment({"A": 45, "B": 45}, 10)
arms = [assign(experiment, "default", "recall", f"u-{n}") for n in range(int(sys.argv[1]))]
print(hashlib.sha256(",".join(arms).encode()).hexdigest())
"""


async def test_declaring_and_reading_an_experiment(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        declared = await gw.session.put(
            gw.url + "/v1/campaigns/recall", json={"variants": {"A": 45, "B": 45}, "holdout": 10}, headers=gw.headers
        )
        assert declared.status == 201, await declared.text()
        body = await declared.json()
        assert (body["campaign"], body["variants"], body["holdout"]) == ("recall", {"A": 45, "B": 45}, 10)
        again = await gw.session.put(
            gw.url + "/v1/campaigns/recall", json={"variants": {"A": 50, "B": 50}}, headers=gw.headers
        )
        assert again.status == 200
        read = await (await gw.get("/v1/campaigns/recall")).json()
        assert (read["variants"], read["holdout"]) == ({"A": 50, "B": 50}, 0)
        assert (await gw.get("/v1/campaigns/nothing-here")).status == 404


async def test_a_bad_declaration_is_a_422_naming_the_field_and_stores_nothing(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        for body, field in (
            ({"variants": {"A": 45, "B": 40}, "holdout": 10}, "/variants"),
            ({"variants": {"A": 40}, "holdout": 60}, "/holdout"),
            ({"variants": {"auto": 90}, "holdout": 10}, "/variants/auto"),
            ({"variants": {"holdout": 50, "A": 50}}, "/variants/holdout"),
            ({"variants": {"A": -5, "B": 100}}, "/variants/A"),
            ({"variants": {}, "holdout": 0}, "/variants"),
            ({"variants": {"A": 100}, "colour": "red"}, "/colour"),
        ):
            answer = await gw.session.put(gw.url + "/v1/campaigns/recall", json=body, headers=gw.headers)
            assert answer.status == 422, (body, await answer.text())
            assert answer.headers["Content-Type"].startswith("application/problem+json")
            assert [e["field"] for e in (await answer.json())["errors"]] == [field], body
        too_long = await gw.session.put(
            gw.url + "/v1/campaigns/" + "c" * 129, json={"variants": {"A": 100}}, headers=gw.headers
        )
        assert too_long.status == 404 and (await too_long.json())["detail"].startswith("not a campaign name")
        assert (await gw.get("/v1/campaigns/recall")).status == 404
        assert await gw.count("experiments") == 0


def _simulate(experiment: Experiment) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """20,000 people assigned as the gateway assigns them, each converting at their arm's true rate."""
    rng = random.Random(20261205)
    now = time.time()
    rows, converted, sizes = [], [], {"A": 0, "B": 0, HOLDOUT: 0}
    for n in range(PEOPLE):
        arm = assign(experiment, "default", "recall", f"u-{n}")
        sizes[arm] += 1
        mid = message_id(now)
        status = Status.HELD_OUT if arm == HOLDOUT else Status.DELIVERED
        rows.append(
            {
                "id": mid,
                "tenant_id": "default",
                "channel": "sms",
                "to_addr": f"+86139{n:08d}",
                "content": "{}",
                "category": "marketing",
                "user_id": f"u-{n}",
                "campaign": "recall",
                "variant": arm,
                "status": status.value,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
        if rng.random() < TRUE_RATES[arm]:
            converted.append(
                {
                    "tenant_id": "default",
                    "event_id": f"order-{n}",
                    "message_id": mid,
                    "event": "purchase",
                    "value": 10.0,
                    "occurred_at": now,
                    "received_at": now,
                }
            )
    return rows, converted, sizes


def _assigned_in_another_process() -> str:
    run = [sys.executable, "-c", ASSIGN_IN_ANOTHER_PROCESS, str(PEOPLE)]
    return subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()


async def _record(gw: Running, rows: list[dict[str, Any]], converted: list[dict[str, Any]]) -> None:
    def write(conn: Any) -> None:
        conn.execute(sa.insert(schema.messages), rows)
        conn.execute(sa.text(KEYS_OF_MESSAGES))  # found by their campaign, as accepted jobs are
        conn.execute(sa.insert(schema.conversions), converted)

    await gw.gateway.store.db.write(write)


async def test_a_simulated_campaign_of_20000_people_shows_each_arm_against_the_holdout(
    start_gateway: GatewayStarter,
) -> None:
    experiment = Experiment({"A": 45, "B": 45}, 10)
    rows, converted, sizes = _simulate(experiment)
    async with start_gateway() as gw:
        declared = await gw.session.put(
            gw.url + "/v1/campaigns/recall", json={"variants": {"A": 45, "B": 45}, "holdout": 10}, headers=gw.headers
        )
        assert declared.status == 201
        await _record(gw, rows, converted)
        report = await (await gw.get("/v1/reports/campaigns/recall", params={"group_by": "metadata.rule"})).json()
    result = report["experiment"]
    assert "two-proportion z-test" in result["method"]
    arms = {arm["variant"]: arm for arm in result["arms"]}
    assert [arm["variant"] for arm in result["arms"]] == ["A", "B", HOLDOUT]
    for name, weight in (("A", 45), ("B", 45), (HOLDOUT, 10)):
        assert arms[name]["assigned"] == sizes[name]
        assert abs(arms[name]["share"] - weight) <= 1, arms[name]
    assert report["totals"]["held_out"] == sizes[HOLDOUT]
    for name in ("A", "B"):
        true_lift = (TRUE_RATES[name] - TRUE_RATES[HOLDOUT]) * 100
        assert arms[name]["lift_low"] <= true_lift <= arms[name]["lift_high"], arms[name]
        assert "two-proportion z-test" in arms[name]["verdict"]
    assert arms["B"]["significant"] is True and "is significant" in arms["B"]["verdict"]
    assert arms[HOLDOUT]["lift"] is None

    # The same people land in the same arms when another process computes them.
    here = hashlib.sha256(",".join(r["variant"] for r in rows).encode()).hexdigest()
    assert await asyncio.to_thread(_assigned_in_another_process) == here


async def test_variant_auto_assigns_the_arm_at_accept_and_the_holdout_is_never_sent(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway() as gw:
        declared = await gw.session.put(
            gw.url + "/v1/campaigns/recall", json={"variants": {"A": 50, "B": 30}, "holdout": 20}, headers=gw.headers
        )
        assert declared.status == 201
        experiment = Experiment({"A": 50, "B": 30}, 20)
        answers: dict[str, dict[str, Any]] = {}
        for n in range(40):
            job = {**SMS, "to": f"+86139{n:08d}", "user_id": f"u-{n}", "campaign": "recall", "variant": "auto"}
            answer = await gw.post("/v1/messages", job, key=f"auto-{n}")
            assert answer.status == 202, await answer.text()
            answers[f"u-{n}"] = await answer.json()
        for user, answer in answers.items():
            arm = assign(experiment, "default", "recall", user)
            assert answer["variant"] == arm
            assert answer["status"] == ("held_out" if arm == HOLDOUT else "queued")
        held = [a["id"] for a in answers.values() if a["variant"] == HOLDOUT]
        assert held, "20% of 40 people: some are held out"
        # A replay gives the first answer; the same person lands in the same arm on a later send.
        first = {**SMS, "to": "+8613900000000", "user_id": "u-0", "campaign": "recall", "variant": "auto"}
        replay = await gw.post("/v1/messages", first, key="auto-0")
        assert (await replay.json())["variant"] == answers["u-0"]["variant"]
        later = await gw.post("/v1/messages", {**SMS, "user_id": "u-0", "campaign": "recall", "variant": "auto"})
        assert (await later.json())["variant"] == answers["u-0"]["variant"]
        batch = await gw.post(
            "/v1/messages/batch",
            {"messages": [{**SMS, "user_id": "u-1", "campaign": "recall", "variant": "auto", "idempotency_key": "b1"}]},
        )
        item = (await batch.json())["results"][0]
        assert item["status"] == 202
        sent = [a["id"] for a in answers.values() if a["variant"] != HOLDOUT]
        for message_id in sent[:3]:
            await gw.wait_status(message_id, {"sent", "delivered"})
        await asyncio.sleep(0.5)
        for message_id in held:
            message = await (await gw.get(f"/v1/messages/{message_id}")).json()
            assert (message["status"], message["reason"], message["attempts"]) == ("held_out", "experiment.holdout", [])
        bought = await gw.post("/v1/conversions", {"message_id": held[0], "event": "purchase"})
        assert bought.status == 201
        report = await (await gw.get("/v1/reports/campaigns/recall")).json()
        arms = {arm["variant"]: arm for arm in report["experiment"]["arms"]}
        assert arms[HOLDOUT]["assigned"] == len(held) and arms[HOLDOUT]["converted"] == 1


async def test_variant_auto_without_an_experiment_is_a_422_naming_variant(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        for job in ({**SMS, "campaign": "none-declared", "variant": "auto"}, {**SMS, "variant": "auto"}):
            answer = await gw.post("/v1/messages", job)
            assert answer.status == 422, await answer.text()
            assert [e["field"] for e in (await answer.json())["errors"]] == ["/variant"]
        batch = await gw.post("/v1/messages/batch", {"messages": [{**SMS, "variant": "auto", "idempotency_key": "k1"}]})
        item = (await batch.json())["results"][0]
        assert item["status"] == 422 and [e["field"] for e in item["problem"]["errors"]] == ["/messages/0/variant"]
        assert await gw.count() == 0

"""/v1/numbers over HTTP and `gateway numbers` on the command line: create, read, change, delete,
flag, restore, retire; bad input refused with the field named and nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.api.auth import key_row, new_key
from tests.harness import GatewayStarter, Running, running_gateway
from tests.processes import gateway_command

NUMBER = {"pool": "us-sms", "sender": "+14155550101", "countries": ["us"], "categories": ["marketing"]}


async def _read_only_key(gw: Running) -> dict[str, str]:
    key, key_id = new_key()
    await gw.gateway.store.add_api_key(key_row(key, key_id, "default", "ro", ("read", "send")))
    return {"Authorization": f"Bearer {key}"}


async def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    return body


async def test_numbers_are_created_listed_changed_and_deleted(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        created = await gw.post("/v1/numbers", NUMBER)
        assert created.status == 201, await created.text()
        number = await created.json()
        assert created.headers["Location"] == f"/v1/numbers/{number['id']}"
        assert number["sender"] == "+14155550101" and number["state"] == "active"
        assert number["countries"] == ["US"] and number["categories"] == ["marketing"]
        assert number["health"]["sent"] == 0 and number["reason"] == "created"

        conflict = await _problem(await gw.post("/v1/numbers", NUMBER), 409)
        assert "already has sender" in conflict["detail"]

        listing = await (await gw.get("/v1/numbers", params={"pool": "us-sms"})).json()
        assert [n["id"] for n in listing["data"]] == [number["id"]]
        assert (await (await gw.get("/v1/numbers", params={"state": "retired"})).json())["data"] == []

        patched = await gw.session.patch(
            f"{gw.url}/v1/numbers/{number['id']}", json={"daily_cap": 500, "warmup": True}, headers=gw.headers
        )
        assert patched.status == 200
        changed = await patched.json()
        assert changed["daily_cap"] == 500 and changed["daily_cap_now"] == 50  # warm-up day one

        deleted = await gw.session.delete(f"{gw.url}/v1/numbers/{number['id']}", headers=gw.headers)
        assert deleted.status == 204
        await _problem(await gw.get(f"/v1/numbers/{number['id']}"), 404)
        assert await gw.count("numbers") == 0


async def test_flag_restore_and_retire_are_events_with_their_reasons(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        number = await (await gw.post("/v1/numbers", NUMBER)).json()
        path = f"/v1/numbers/{number['id']}"
        missing = await _problem(await gw.post(f"{path}/flag", {}), 422)
        assert missing["errors"] == [{"field": "/reason", "message": "is required: why the number is flagged"}]

        flagged = await (await gw.post(f"{path}/flag", {"reason": "vendor says harassment"})).json()
        assert flagged["state"] == "quarantined" and flagged["reason"] == "operator.flagged"
        assert flagged["cooldown_until"] is not None
        restored = await (await gw.session.post(gw.url + f"{path}/restore", headers=gw.headers)).json()
        assert restored["state"] == "active"
        retired = await (await gw.post(f"{path}/retire", {"reason": "number returned to the carrier"})).json()
        assert retired["state"] == "retired"
        await _problem(await gw.post(f"{path}/flag", {"reason": "again"}), 409)

        events = (await (await gw.get(path)).json())["events"]
        assert [(e["to"], e["reason"]) for e in reversed(events)] == [
            ("active", "created"),
            ("quarantined", "operator.flagged"),
            ("active", "operator.restored"),
            ("retired", "operator.retired"),
        ]
        assert events[-2]["evidence"] == {"reason": "vendor says harassment"}
        assert events[0]["actor"].startswith("operator:")


async def test_bad_numbers_are_refused_naming_the_field_and_nothing_is_written(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"sender": "+14155550101"}, "/pool"),
            ({"pool": "a b", "sender": "+14155550101"}, "/pool"),
            ({"pool": "p"}, "/sender"),
            ({"pool": "p", "sender": "12345"}, "/sender"),
            ({"pool": "p", "sender": "123456789012", "kind": "short_code"}, "/sender"),
            ({"pool": "p", "sender": "Way too long an id", "kind": "alphanumeric"}, "/sender"),
            ({"pool": "p", "sender": "+14155550101", "channel": "email"}, "/channel"),
            ({"pool": "p", "sender": "+14155550101", "channel": ["sms"]}, "/channel"),
            ({"pool": "p", "sender": "+14155550101", "kind": [["number"]]}, "/kind"),
            ({"pool": "p", "sender": "+14155550101", "kind": {"k": 1}}, "/kind"),
            ({"pool": "p", "sender": "+14155550101", "provider": "nope"}, "/provider"),
            ({"pool": "p", "sender": "+14155550101", "countries": ["USA"]}, "/countries/0"),
            ({"pool": "p", "sender": "+14155550101", "categories": ["spam"]}, "/categories/0"),
            ({"pool": "p", "sender": "+14155550101", "daily_cap": 0}, "/daily_cap"),
            ({"pool": "p", "sender": "+14155550101", "rate": -1}, "/rate"),
            ({"pool": "p", "sender": "+14155550101", "warmup": "yes"}, "/warmup"),
            ({"pool": "p", "sender": "+14155550101", "state": "active"}, "/state"),
        ]
        for body, field in cases:
            problem = await _problem(await gw.post("/v1/numbers", body), 422)
            assert field in [e["field"] for e in problem["errors"]], (body, problem)
        await _problem(await gw.post("/v1/numbers", ["not", "an", "object"]), 422)
        assert await gw.count("numbers") == 0
        assert await gw.count("number_events") == 0

        number = await (await gw.post("/v1/numbers", NUMBER)).json()
        patched = await gw.session.patch(
            f"{gw.url}/v1/numbers/{number['id']}", json={"sender": "+14155550102"}, headers=gw.headers
        )
        problem = await _problem(patched, 422)
        assert problem["errors"] == [{"field": "/sender", "message": "cannot be changed"}]
        bad_query = await _problem(await gw.get("/v1/numbers", params={"state": "asleep"}), 400)
        assert bad_query["errors"][0]["field"] == "state"
        await _problem(await gw.post("/v1/numbers/num_0000000000000000/flag", {"reason": "x"}), 404)


async def test_changing_numbers_takes_the_admin_scope(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        number = await (await gw.post("/v1/numbers", NUMBER)).json()
        headers = await _read_only_key(gw)
        readable = await gw.get("/v1/numbers", headers=headers)
        assert readable.status == 200
        for path, body in (
            ("/v1/numbers", {**NUMBER, "sender": "+14155550102"}),
            (f"/v1/numbers/{number['id']}/flag", {"reason": "x"}),
            (f"/v1/numbers/{number['id']}/restore", {}),
            (f"/v1/numbers/{number['id']}/retire", {}),
        ):
            response = await gw.post(path, body, headers=headers)
            problem = await _problem(response, 403)
            assert "admin" in problem["detail"]
        assert (await (await gw.get(f"/v1/numbers/{number['id']}")).json())["state"] == "active"
        assert await gw.count("numbers") == 1


async def test_gateway_numbers_prints_the_pool_as_a_table(tmp_path: Path) -> None:

    db = tmp_path / "gateway.db"
    async with running_gateway(tmp_path, database_url=f"sqlite:///{db}") as gw:
        number = await (await gw.post("/v1/numbers", NUMBER)).json()
        await gw.post(f"/v1/numbers/{number['id']}/flag", {"reason": "vendor report"})
    table = gateway_command(db, "numbers")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert header.split()[:4] == ["ID", "POOL", "SENDER", "STATE"]
    assert row.split()[:4] == [number["id"], "us-sms", "+14155550101", "quarantined"]
    assert row.rstrip().endswith("operator.flagged")
    as_json = json.loads(gateway_command(db, "numbers", "--json", "--state", "quarantined").stdout)
    assert [n["id"] for n in as_json] == [number["id"]]
    assert gateway_command(db, "numbers", "--state", "nope").returncode == 2

    restored = gateway_command(db, "numbers", "restore", number["id"])
    assert restored.returncode == 0 and restored.stdout.strip() == f"{number['id']} +14155550101: active"
    assert gateway_command(db, "numbers", "flag", number["id"]).returncode == 2  # a flag needs its reason
    flagged = gateway_command(db, "numbers", "flag", number["id"], "--reason", "carrier letter")
    assert flagged.stdout.strip().endswith("quarantined")
    assert gateway_command(db, "numbers", "retire", "num_0000000000000000").returncode == 1
    async with running_gateway(tmp_path, database_url=f"sqlite:///{db}") as gw:
        events = (await (await gw.get(f"/v1/numbers/{number['id']}")).json())["events"]
    assert (events[0]["actor"], events[0]["evidence"]) == ("operator:cli", {"reason": "carrier letter"})

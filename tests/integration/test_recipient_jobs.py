"""Jobs for a person (`user_id` without `to`): channels chosen at accept from the profile, preferences
and configured providers, each choice an event; a permanent refusal moves the job to the next channel
with that channel's address and template body. Real providers' fakes: FCM (push), Twilio (SMS) and a
real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import ValidationError

from tests.fakes.fcm import FakeFcm
from tests.fakes.smtp import FakeSmtp
from tests.fakes.twilio import FakeTwilio
from tests.harness import GatewayStarter, Running
from tests.integration.test_email_recipients import smtp_env
from tests.integration.test_openapi import Contract

PHONE = "+14155550123"
TOKEN = "fcm-token-gone-0001"
TEMPLATE = {
    "name": "order_shipped",
    "variables": {"name": {"type": "string", "required": True, "example": "Ann"}},
    "channels": {
        "push": {"title": "Shipped", "body": "{{ name }}, tap to track"},
        "sms": {"text": "{{ name }}, your order has shipped (SMS copy)"},
        "email": {"subject": "Your order has shipped", "text": "Dear {{ name }}, it is on its way (e-mail copy)"},
    },
}
JOB = {"user_id": "u-1", "template": "order_shipped", "params": {"name": "Ann"}, "category": "transactional"}


def providers_env(
    tmp_path: Path, twilio: FakeTwilio, fcm: FakeFcm | None = None, smtp: FakeSmtp | None = None
) -> dict[str, str]:
    providers = json.loads(twilio.gateway_env()["GATEWAY_PROVIDERS"])
    if fcm is not None:
        key = tmp_path / "fcm-key.json"
        key.write_text(json.dumps(fcm.service_account()))
        providers["fcm"] = {"service_account_file": str(key), "base_url": fcm.url, "timeout": 2.0}
    if smtp is not None:
        providers.update(json.loads(smtp_env(smtp)["GATEWAY_PROVIDERS"]))
    return {"GATEWAY_PROVIDERS": json.dumps(providers), "GATEWAY_SANDBOX__ENABLED": "false"}


async def _setup(gw: Running, profile: dict[str, Any], preferences: dict[str, Any] | None = None) -> None:
    put = await gw.session.put(f"{gw.url}/v1/recipients/u-1", json=profile, headers=gw.headers)
    assert put.status == 201, await put.text()
    if preferences is not None:
        prefs = await gw.session.put(f"{gw.url}/v1/recipients/u-1/preferences", json=preferences, headers=gw.headers)
        assert prefs.status == 200, await prefs.text()
    created = await gw.post("/v1/templates", TEMPLATE)
    assert created.status == 201, await created.text()
    assert (await gw.post("/v1/templates/order_shipped/publish", None)).status == 201


async def _listed_to(gw: Running, address: str) -> list[str]:
    """The ids of the delivery log's messages to `address` (GET /v1/messages?to=)."""
    page = await (await gw.get("/v1/messages", params={"to": address})).json()
    return [m["id"] for m in page["data"]]


async def _events(gw: Running, message_id: str) -> list[dict[str, Any]]:
    response = await gw.get("/v1/events", params={"message_id": message_id})
    return [json.loads(line) for line in (await response.text()).splitlines()]


async def test_a_push_refused_for_good_is_delivered_by_sms_with_the_sms_copy(
    start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    async with FakeTwilio() as twilio, FakeFcm() as fcm:
        fcm.unregistered.add(TOKEN)
        async with start_gateway(providers_env(tmp_path, twilio, fcm)) as gw:
            await _setup(gw, {"phone": PHONE, "push_tokens": [{"token": TOKEN, "platform": "android"}]})
            response = await gw.post("/v1/messages", {**JOB, "channels": ["push", "sms"]})
            assert response.status == 202, await response.text()
            accepted = await response.json()
            assert (accepted["channel"], accepted["to"]) == ("push", TOKEN)

            sent = await gw.wait_status(accepted["id"], {"sent", "delivered"})
            assert (sent["channel"], sent["to"]) == ("sms", PHONE)
            [sms] = [r.form for r in twilio.requests if r.form.get("To") == PHONE]
            assert sms.get("Body") == "Ann, your order has shipped (SMS copy)"
            assert [r for r in fcm.requests if TOKEN.encode() in r.body], "push was tried first"

            # The delivery log finds it by the address it went to, not the one it left.
            assert await _listed_to(gw, PHONE) == [accepted["id"]]
            assert await _listed_to(gw, TOKEN) == []

            events = await _events(gw, accepted["id"])
            [chosen] = [e for e in events if e["type"] == "channel.chosen"]
            assert chosen["reason"] == "recipient.listed"
            assert chosen["detail"]["order"] == ["push", "sms"]
            assert chosen["detail"]["verdicts"] == {"push": "allowed", "sms": "allowed"}
            [moved] = [e for e in events if e["detail"] and e["detail"].get("from") == "push"]
            assert moved["status"] == "queued" and moved["reason"].startswith("provider.permanent.")
            assert moved["detail"]["to"] == "sms"


async def test_sms_turned_off_sends_email_with_the_email_copy(start_gateway: GatewayStarter, tmp_path: Path) -> None:
    async with FakeTwilio() as twilio:
        with FakeSmtp(tmp_path) as smtp:
            async with start_gateway(providers_env(tmp_path, twilio, smtp=smtp)) as gw:
                profile = {"phone": PHONE, "email": "ann@example.com"}
                await _setup(gw, profile, {"marketing": {"sms": False}})
                job = {**JOB, "category": "marketing", "channels": ["sms", "email"]}
                response = await gw.post("/v1/messages", job)
                assert response.status == 202, await response.text()
                accepted = await response.json()
                assert (accepted["channel"], accepted["to"]) == ("email", "ann@example.com")
                await gw.wait_status(accepted["id"], {"sent", "delivered"})
                [mail] = smtp.handler.delivered
                assert mail.rcpt_tos == ["ann@example.com"]
                assert b"Subject: Your order has shipped" in mail.raw and b"(e-mail copy)" in mail.raw
                assert not [r for r in twilio.requests if r.form.get("To") == PHONE]

                [chosen] = [e for e in await _events(gw, accepted["id"]) if e["type"] == "channel.chosen"]
                assert chosen["detail"]["order"] == ["email"]
                assert chosen["detail"]["verdicts"] == {"sms": "preference_off", "email": "allowed"}
                assert PHONE not in json.dumps(chosen) and "ann@example.com" not in json.dumps(chosen)


async def test_unreachable_channels_and_unknown_people_are_refused_and_nothing_is_stored(
    start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    async with FakeTwilio() as twilio, start_gateway(providers_env(tmp_path, twilio)) as gw:
        await _setup(gw, {"email": "ann@example.com", "phone": PHONE}, {"marketing": {"sms": False}})
        email_only = await gw.session.put(
            f"{gw.url}/v1/recipients/u-2", json={"email": "bo@example.com"}, headers=gw.headers
        )
        assert email_only.status == 201
        cases = [
            (
                {**JOB, "category": "marketing", "channels": ["push", "sms"]},
                [
                    {"field": "/channels/0", "message": "no configured provider sends push"},
                    {"field": "/channels/1", "message": "the recipient turned sms off for marketing messages"},
                ],
            ),
            (
                {**JOB, "user_id": "u-2", "channel": "sms", "fallback": ["webhook"]},
                [
                    {"field": "/channel", "message": "the recipient has no address for sms"},
                    {"field": "/fallback/0", "message": "no configured provider sends webhook"},
                ],
            ),
            (
                {**JOB, "user_id": "u-404", "channels": ["sms"]},
                [{"field": "/user_id", "message": "no recipient 'u-404'"}],
            ),
            (
                {**JOB, "channel": "sms", "to": PHONE, "fallback": ["email"]},
                [
                    {
                        "field": "/fallback/0",
                        "message": "email cannot reach a phone number; the channels that can: sms, voice",
                    }
                ],
            ),
            (
                {"user_id": "u-1", "channels": ["sms", "email"], "content": {"text": "hi"}},
                [{"field": "/channels/1", "message": "email cannot send sms content: give a template"}],
            ),
            (
                {"channel": "sms", "content": {"text": "hi"}},
                [
                    {
                        "field": "/to",
                        "message": "is required (or give a user_id: the address then comes from the "
                        "recipient's profile)",
                    }
                ],
            ),
        ]
        for body, errors in cases:
            response = await gw.post("/v1/messages", body)
            assert response.status == 422, (body, await response.text())
            assert response.content_type == "application/problem+json"
            assert (await response.json())["errors"] == errors, body
        batch = await gw.post("/v1/messages/batch", {"messages": [{**JOB, "channels": ["push"]}]})
        [result] = (await batch.json())["results"]
        assert result["status"] == 422
        assert result["problem"]["errors"] == [
            {"field": "/messages/0/channels/0", "message": "no configured provider sends push"}
        ]
        assert await gw.count("messages") == 0
        response = await gw.get("/v1/events", params={"type": "channel.chosen"})
        assert (await response.text()).strip() == ""


async def test_cost_order_tries_the_cheapest_reachable_channel_first(
    start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    async with FakeTwilio() as twilio:
        with FakeSmtp(tmp_path) as smtp:
            env = {
                **providers_env(tmp_path, twilio, smtp=smtp),
                "GATEWAY_ROUTING": json.dumps({"costs": {"sms": 0.05, "email": 0.001}}),
            }
            async with start_gateway(env) as gw:
                await _setup(gw, {"phone": PHONE, "email": "ann@example.com"})
                job = {**JOB, "channels": ["push", "sms", "email"], "channel_order": "cost"}
                response = await gw.post("/v1/messages", job)
                assert response.status == 202, await response.text()
                accepted = await response.json()
                assert (accepted["channel"], accepted["to"]) == ("email", "ann@example.com")
                [chosen] = [e for e in await _events(gw, accepted["id"]) if e["type"] == "channel.chosen"]
                assert chosen["reason"] == "recipient.cost"
                assert chosen["detail"]["order"] == ["email", "sms"]
                assert chosen["detail"]["verdicts"]["push"] == "no_provider"


async def test_no_receipt_in_time_moves_a_push_to_the_persons_email(start_gateway: GatewayStarter) -> None:
    env = {
        "GATEWAY_ROUTING": json.dumps({"receipt_timeout": {"push": 1}}),
        "GATEWAY_SANDBOX__RECEIPTS": "false",  # the provider never reports delivery
        "GATEWAY_WORKER__LEASE_SECONDS": "1.5",  # the recovery loop looks every 0.5 s
    }
    async with start_gateway(env) as gw:
        await _setup(gw, {"email": "ann@example.com", "push_tokens": [{"token": TOKEN, "platform": "android"}]})
        response = await gw.post("/v1/messages", {**JOB, "channels": ["push", "email"]})
        assert response.status == 202, await response.text()
        message_id = (await response.json())["id"]

        async def on_email() -> dict[str, Any] | None:
            body: dict[str, Any] = await (await gw.get(f"/v1/messages/{message_id}")).json()
            return body if body["status"] == "sent" and body["channel"] == "email" else None

        moved = await gw.wait_for(on_email, within=15)
        assert moved["to"] == "ann@example.com"
        assert [(a["channel"], a["outcome"]) for a in moved["attempts"]] == [("push", "sent"), ("email", "sent")]
        [fallen] = [e for e in moved["events"] if e["reason"] == "fallback.no_receipt"]
        assert (fallen["detail"]["from"], fallen["detail"]["to"]) == ("push", "email")
        assert await _listed_to(gw, "ann@example.com") == [message_id]
        assert await _listed_to(gw, TOKEN) == []


async def test_with_to_a_listed_channel_that_cannot_take_that_address_is_refused_as_the_document_says(
    start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    async with FakeTwilio() as twilio, start_gateway(providers_env(tmp_path, twilio)) as gw:
        await _setup(gw, {"phone": PHONE, "email": "ann@example.com"})
        contract = Contract(await (await gw.get("/openapi.json")).json())
        by_phone = {**JOB, "channel": "sms", "to": PHONE, "channels": ["sms", "webhook"]}
        with_content = {"channel": "sms", "user_id": "u-1", "channels": ["sms", "email"], "content": {"text": "hi"}}
        for body in (by_phone, with_content):
            with pytest.raises(ValidationError):
                contract.request("/v1/messages", "post", body)
        contract.request("/v1/messages", "post", {**by_phone, "channels": ["sms", "voice"]})

        response = await gw.post("/v1/messages", by_phone)
        assert response.status == 422, await response.text()
        assert response.content_type == "application/problem+json"
        message = "webhook cannot reach a phone number; the channels that can: sms, voice"
        assert (await response.json())["errors"] == [{"field": "/channels/1", "message": message}]
        batch = await gw.post("/v1/messages/batch", {"messages": [{**by_phone, "idempotency_key": "b-1"}]})
        [result] = (await batch.json())["results"]
        assert (result["status"], result["problem"]["errors"][0]["field"]) == (422, "/messages/0/channels/1")
        assert await gw.count("messages") == 0
        written = [json.loads(line) for line in (await (await gw.get("/v1/events")).text()).splitlines()]
        assert [e for e in written if e["message_id"] is not None] == []


async def test_a_batch_reads_its_people_together_and_answers_each_item_on_its_own(
    start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    async with FakeTwilio() as twilio, start_gateway(providers_env(tmp_path, twilio)) as gw:
        await _setup(gw, {"phone": PHONE, "email": "ann@example.com"})
        items = [
            {**JOB, "channels": ["sms"]},
            {**JOB, "user_id": "u-404", "channels": ["sms"]},
            {**JOB, "user_id": "u-\u0007", "channels": ["sms"]},
            {**JOB, "channel": "sms", "fallback": ["email"]},
            {**JOB, "channel": "sms", "to": "+14155550124"},
        ]
        response = await gw.post("/v1/messages/batch", {"messages": items})
        assert response.status == 200, await response.text()
        results = (await response.json())["results"]
        assert [r["status"] for r in results] == [202, 422, 422, 202, 202]
        assert results[1]["problem"]["errors"] == [{"field": "/messages/1/user_id", "message": "no recipient 'u-404'"}]
        assert results[2]["problem"]["errors"] == [
            {"field": "/messages/2/user_id", "message": "must not contain control characters"}
        ]
        sent = [await (await gw.get(f"/v1/messages/{results[i]['id']}")).json() for i in (0, 3, 4)]
        assert [(m["channel"], m["to"]) for m in sent] == [("sms", PHONE), ("sms", PHONE), ("sms", "+14155550124")]
        assert await gw.count("messages") == 3


async def test_one_persons_addressing_read_in_one_statement_matches_the_grouped_read(
    start_gateway: GatewayStarter,
) -> None:
    from gateway.store.schema import recipients
    from gateway.store.sql.recipients import ONE_ADDRESSING, addressing, addressing_of_rows

    async with start_gateway() as gw:  # the sandbox delivers push
        profile = {"phone": PHONE, "email": "Ann <ann@example.com>", "tz": "Asia/Shanghai", "attributes": {"k": 1}}
        await _setup(
            gw, {**profile, "push_tokens": [{"token": TOKEN, "platform": "android"}]}, {"marketing": {"sms": False}}
        )
        db = gw.gateway.store.db
        [tenant] = await db.read(lambda conn: list(conn.execute(recipients.select()).mappings()))
        who = (tenant["tenant_id"], "u-1")
        rows = await db.peek(ONE_ADDRESSING, {"tenant_id": who[0], "user_id": who[1]})
        assert rows is not None, "the one-statement read failed"
        assert addressing_of_rows("u-1", rows) == (await db.read(addressing, [who]))[0]
        assert addressing_of_rows("u-1", rows)[1] == {"marketing": {"sms": False}}  # type: ignore[index]
        nobody = await db.peek(ONE_ADDRESSING, {"tenant_id": who[0], "user_id": "u-404"})
        assert nobody == [] and addressing_of_rows("u-404", nobody) is None


async def test_a_recipients_job_under_a_key_past_its_retention_is_stored_with_its_choice_event(
    database_url: str,
) -> None:
    # The accept insert takes rows as the handler built them (the choice rides along under a key that is
    # no column) and writes the choice in the status events' statement: also on the path of a key whose
    # retention has passed (its row inserted again after the old one lets go of the key).
    import time

    import sqlalchemy as sa

    from gateway.store.records import CHANNEL_CHOICE
    from gateway.store.schema import events
    from gateway.store.store import SqlStore
    from tests.integration.direct import TENANT, message_row

    store = SqlStore.open(database_url)
    await store.migrate()
    try:
        now = time.time()
        old = message_row(now - 7200, idempotency_key="k-1", request_hash="a", idempotency_expires_at=now - 3600)
        assert (await store.accept_one(old)).kind == "accepted"
        choice = {"channel": "sms", "order": ["sms"], "order_by": "listed", "verdicts": {"sms": "allowed"}}
        new = message_row(now, idempotency_key="k-1", request_hash="b", idempotency_expires_at=now + 3600)
        outcome = await store.accept_one({**new, "user_id": "u-1", CHANNEL_CHOICE: choice})
        assert outcome.kind == "accepted"
        stored = await store.get_message(TENANT, new["id"])
        assert stored is not None and stored["idempotency_key"] == "k-1" and stored["user_id"] == "u-1"
        written = await store.db.read(
            lambda conn: [
                (row.type, row.reason, json.loads(row.detail) if row.detail else None)
                for row in conn.execute(sa.select(events).where(events.c.message_id == new["id"]).order_by(events.c.id))
            ]
        )
        assert written == [("status", "accepted", None), ("channel.chosen", "recipient.listed", choice)]
    finally:
        await store.close()

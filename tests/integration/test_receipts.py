"""Receipts: accepted once, in any order, only with a valid signature."""

from __future__ import annotations

import asyncio
import time

import orjson
from sqlalchemy.engine import Connection

from providers.sandbox import SIGNATURE_HEADER, sign
from tests.harness import SMS, GatewayStarter, Running

NO_AUTO_RECEIPTS = {"GATEWAY_SANDBOX__RECEIPTS": "false"}


async def _secret(gw: Running) -> str:
    return await gw.gateway.store.get_or_create_secret("sandbox_receipts")


async def _post_receipts(gw: Running, receipts: list[dict[str, object]], secret: str, at: float | None = None):
    body = orjson.dumps({"receipts": receipts})
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, int(at or time.time()), body)}
    response = await gw.session.post(gw.url + "/v1/receipts/sandbox", data=body, headers=headers)
    await response.read()
    return response


async def _sent_message(gw: Running) -> dict[str, object]:
    r = await gw.post("/v1/messages", SMS)
    return await gw.wait_status((await r.json())["id"], {"sent"})


async def test_receipts_are_applied_once_and_never_move_status_back(start_gateway: GatewayStarter) -> None:
    async with start_gateway(NO_AUTO_RECEIPTS) as gw:
        message = await _sent_message(gw)
        secret = await _secret(gw)
        sid = message["provider_message_id"]
        delivered = {"sid": sid, "status": "delivered"}
        first = await _post_receipts(gw, [delivered], secret)
        assert first.status == 200
        assert await first.json() == {"applied": 1, "duplicate": 0, "held": 0}
        again = await _post_receipts(gw, [delivered, {"sid": sid, "status": "sent"}], secret)
        assert await again.json() == {"applied": 1, "duplicate": 1, "held": 0}
        detail = await (await gw.get(f"/v1/messages/{message['id']}")).json()
        assert detail["status"] == "delivered"
        assert [e["status"] for e in detail["events"]].count("delivered") == 1
        assert await gw.count("receipts") == 2


async def test_a_receipt_before_the_send_is_recorded_is_held_then_applied(start_gateway: GatewayStarter) -> None:
    async with start_gateway(NO_AUTO_RECEIPTS) as gw:
        secret = await _secret(gw)
        # The provider id is not known to us yet: the receipt is kept, not dropped.
        early = await _post_receipts(gw, [{"sid": "SBX-early", "status": "delivered"}], secret)
        assert await early.json() == {"applied": 0, "duplicate": 0, "held": 1}
        from gateway.store.records import Outcome
        from gateway.store.sql import outcomes as outcome_sql

        r = await gw.post("/v1/messages", {**SMS, "send_at": "2999-01-01T00:00:00Z"})
        message_id = (await r.json())["id"]
        applied = await gw.gateway.store.db.write(
            outcome_sql.record_outcomes,
            [Outcome(message_id, "default", "sent", time.time(), provider="sandbox", provider_message_id="SBX-early")],
        )
        assert [(mid, receipt.status) for mid, receipt in applied] == [(message_id, "delivered")]
        detail = await (await gw.get(f"/v1/messages/{message_id}")).json()
        assert detail["status"] == "delivered"


async def test_bad_or_stale_signatures_are_refused_and_nothing_recorded(start_gateway: GatewayStarter) -> None:
    async with start_gateway(NO_AUTO_RECEIPTS) as gw:
        message = await _sent_message(gw)
        receipt = [{"sid": message["provider_message_id"], "status": "delivered"}]
        forged = await _post_receipts(gw, receipt, "not-the-secret")
        stale = await _post_receipts(gw, receipt, await _secret(gw), at=time.time() - 3600)
        unsigned = await gw.session.post(gw.url + "/v1/receipts/sandbox", json={"receipts": receipt})
        for response in (forged, stale, unsigned):
            assert response.status == 401
            assert response.content_type == "application/problem+json"
        assert await gw.count("receipts") == 0
        detail = await (await gw.get(f"/v1/messages/{message['id']}")).json()
        assert detail["status"] == "sent"


async def test_unknown_provider_is_404(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.session.post(gw.url + "/v1/receipts/nobody", data=b"{}")
        assert response.status == 404


async def test_callbacks_that_come_together_are_each_answered_for_their_own_receipts(
    start_gateway: GatewayStarter,
) -> None:
    # Long enough a gathering that the callbacks below share commits, as they do under load.
    async with start_gateway({**NO_AUTO_RECEIPTS, "GATEWAY_API__GROUP_COMMIT_MS": "50"}) as gw:
        messages = [await _sent_message(gw) for _ in range(4)]
        secret = await _secret(gw)
        delivered = [{"sid": m["provider_message_id"], "status": "delivered"} for m in messages]
        answers = await asyncio.gather(
            *(_post_receipts(gw, [receipt], secret) for receipt in delivered),
            _post_receipts(gw, [delivered[0]], secret),  # the same receipt again, alongside the first
            _post_receipts(gw, [{"sid": "SBX-not-sent-yet", "status": "delivered"}], secret),
        )
        assert [a.status for a in answers] == [200] * 6
        bodies = [await a.json() for a in answers]
        applied = {"applied": 1, "duplicate": 0, "held": 0}
        assert bodies[1:4] == [applied] * 3
        assert sorted([bodies[0], bodies[4]], key=str) == sorted(
            [applied, {"applied": 0, "duplicate": 1, "held": 0}], key=str
        )
        assert bodies[5] == {"applied": 0, "duplicate": 0, "held": 1}
        for message in messages:
            detail = await (await gw.get(f"/v1/messages/{message['id']}")).json()
            assert detail["status"] == "delivered"
            assert [e["status"] for e in detail["events"]].count("delivered") == 1
        assert await gw.count("receipts") == 5


def _refuse_rows_of(conn: Connection, provider_message_id: str) -> None:
    """A fault in the database itself: inserting a receipt row for this id fails."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_receipt BEFORE INSERT ON receipts"
            f" WHEN NEW.provider_message_id = '{provider_message_id}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        return
    conn.exec_driver_sql(
        "CREATE FUNCTION refuse_receipt() RETURNS trigger AS $$ BEGIN"
        f" IF NEW.provider_message_id = '{provider_message_id}' THEN RAISE EXCEPTION 'refused'; END IF;"
        " RETURN NEW; END $$ LANGUAGE plpgsql"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER refuse_receipt BEFORE INSERT ON receipts FOR EACH ROW EXECUTE FUNCTION refuse_receipt()"
    )


async def test_a_callback_the_database_refuses_does_not_fail_those_committed_with_it(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway({**NO_AUTO_RECEIPTS, "GATEWAY_API__GROUP_COMMIT_MS": "50"}) as gw:
        messages = [await _sent_message(gw) for _ in range(3)]
        secret = await _secret(gw)
        await gw.gateway.store.db.write(_refuse_rows_of, "SBX-refused")
        answers = await asyncio.gather(
            *(_post_receipts(gw, [{"sid": m["provider_message_id"], "status": "delivered"}], secret) for m in messages),
            _post_receipts(gw, [{"sid": "SBX-refused", "status": "delivered"}], secret),
        )
        assert [a.status for a in answers] == [200, 200, 200, 500]
        assert answers[3].content_type == "application/problem+json"
        assert [await a.json() for a in answers[:3]] == [{"applied": 1, "duplicate": 0, "held": 0}] * 3
        for message in messages:
            assert (await (await gw.get(f"/v1/messages/{message['id']}")).json())["status"] == "delivered"
        assert await gw.count("receipts") == 3

"""The SMPP provider inside a running gateway, on both stores, against the fake SMSC: jobs end in the
right state whatever the SMSC does (throttles, drops the connection mid-window, sends receipts early,
late, twice, per segment), and MO replies go through the opt-out path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.smsc import FakeSmsc, Fate
from tests.harness import SMS, GatewayStarter, Running


@pytest.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    async with FakeSmsc({"acme": "s3cret-bind"}) as fake:
        yield fake


@pytest.fixture
def smpp_gateway(start_gateway: GatewayStarter, smsc: FakeSmsc, tmp_path: Path) -> Callable[..., Any]:
    password_file = tmp_path / "smpp_password"
    password_file.write_text("s3cret-bind\n")

    @asynccontextmanager
    async def start(**section: Any) -> AsyncIterator[Running]:
        provider = {
            "host": "127.0.0.1",
            "port": smsc.port,
            "system_id": "acme",
            "password_file": str(password_file),
            "binds": 2,
            "window": 8,
            "response_timeout": 1.0,
            "reconnect_min_seconds": 0.05,
            "throttle_backoff_seconds": 0.01,
            "source_addr": "ACME",
            **section,
        }
        env = {
            "GATEWAY_PROVIDERS": json.dumps({"smpp": provider}),
            "GATEWAY_ROUTING": json.dumps({"channels": {"sms": ["smpp"]}}),
            "GATEWAY_SANDBOX__ENABLED": "false",
            "GATEWAY_WORKER__LEASE_SECONDS": "2",
        }
        async with start_gateway(env) as gw:
            await smsc.wait_for(lambda: len(smsc.sessions) == provider["binds"])
            yield gw

    return start


async def _send(gw: Running, to: str, text: str = "Your order has shipped", **job: Any) -> str:
    response = await gw.post("/v1/messages", {**SMS, "to": to, "content": {"text": text}, **job})
    assert response.status == 202, await response.text()
    return str((await response.json())["id"])


async def _all(gw: Running, ids: list[str], statuses: set[str], within: float = 15.0) -> list[dict[str, Any]]:
    try:
        return list(await asyncio.gather(*(gw.wait_status(i, statuses, within) for i in ids)))
    except AssertionError:
        now = [await (await gw.get(f"/v1/messages/{i}")).json() for i in ids]
        stuck = [(m["id"], m["status"], m["reason"]) for m in now if m["status"] not in statuses]
        raise AssertionError(f"not {sorted(statuses)} in {within} s: {stuck}") from None


async def test_a_message_is_sent_and_delivered_by_its_receipt(smpp_gateway: Any, smsc: FakeSmsc) -> None:
    async with smpp_gateway() as gw:
        delivered = await _send(gw, "+8613812345678", category="transactional")
        smsc.set(fates={"8613800000009": Fate("UNDELIV", "011")})
        lost = await _send(gw, "+8613800000009", category="transactional")
        message = await gw.wait_status(delivered, {"delivered"})
        failed = await gw.wait_status(lost, {"undelivered"})
    assert message["provider"] == "smpp"
    # Both jobs go out together: the SMSC may take them in either order.
    taken = {submission.destination_addr: submission.message_id for submission in smsc.taken}
    assert message["provider_message_id"] == taken["8613812345678"]
    assert failed["error_code"] == "UNDELIV:11"
    assert [e["status"] for e in message["events"]] == ["queued", "sending", "sent", "delivered"]


async def test_a_long_ucs2_message_is_delivered_once_every_segment_is(smpp_gateway: Any, smsc: FakeSmsc) -> None:
    text = "您的订单已发货，请注意查收。" * 12  # 3 UCS-2 segments
    smsc.set(hold_receipts=True, duplicate_receipts=True)
    async with smpp_gateway() as gw:
        message_id = await _send(gw, "+8613812345678", text, category="transactional")
        await gw.wait_status(message_id, {"sent"})
        assert len(smsc.held) == 6  # three segments, each receipt twice
        first_two = [d for d in smsc.held if d.message_id != smsc.taken[-1].message_id]
        smsc.held = [d for d in smsc.held if d not in first_two]
        for delivery in reversed(first_two):
            smsc.owe(delivery)
        await gw.wait_for(lambda: gw.count("receipts"), 10)
        await asyncio.sleep(0.3)
        assert (await (await gw.get(f"/v1/messages/{message_id}")).json())["status"] == "sent"
        smsc.release_receipts()
        detail = await gw.wait_status(message_id, {"delivered"})
        assert await gw.count("receipts") == 3
    assert smsc.texts_to("8613812345678") == [text]
    assert {s.data_coding for s in smsc.taken} == {8}
    assert [e["status"] for e in detail["events"]].count("delivered") == 1


async def test_receipts_that_come_before_the_submit_sm_resp_are_applied(smpp_gateway: Any, smsc: FakeSmsc) -> None:
    smsc.set(receipts_before_response=True, latency=0.05)
    async with smpp_gateway() as gw:
        ids = [await _send(gw, f"+861381234{i:04d}", "Long " * 50, category="transactional") for i in range(5)]
        messages = await _all(gw, ids, {"delivered"})
    assert all(m["status"] == "delivered" for m in messages)
    assert len(smsc.taken) == 5 * 2  # two segments each, each taken once


async def test_throttling_backs_off_and_loses_nothing(smpp_gateway: Any, smsc: FakeSmsc) -> None:
    smsc.set(throttle_next=40)
    async with smpp_gateway() as gw:
        ids = [await _send(gw, f"+861381234{i:04d}", category="transactional") for i in range(40)]
        # ~1.3 s on a quiet machine; 5-11 s with the cores busy (each throttled bind pauses, doubling
        # up to 2 s, and a submit throttled past 4 s goes back to the worker): what is asserted is
        # that nothing is lost or sent twice, not how soon.
        messages = await _all(gw, ids, {"delivered"}, within=60)
    assert len(messages) == 40
    destinations = [s.destination_addr for s in smsc.taken]
    assert len(destinations) == len(set(destinations)) == 40


@pytest.mark.parametrize(("category", "taken_at_the_cut"), [("marketing", True), ("transactional", False)])
async def test_a_dropped_connection_mid_window_loses_nothing_and_sends_nothing_twice(
    smpp_gateway: Any, smsc: FakeSmsc, category: str, taken_at_the_cut: bool
) -> None:
    smsc.set(latency=0.3)
    async with smpp_gateway(binds=1, window=4) as gw:
        smsc.set(drop_after=2, drop_takes_in_flight=taken_at_the_cut)
        ids = [await _send(gw, f"+861381234{i:04d}", category=category) for i in range(12)]
        messages = await _all(gw, ids, {"delivered", "unknown"}, within=30)
    seen: dict[str, int] = {}
    for submission in smsc.taken:
        seen[submission.destination_addr] = seen.get(submission.destination_addr, 0) + 1
    outcome = {m["to"][1:]: (m["status"], seen.get(m["to"][1:], 0)) for m in messages}
    if category == "marketing":
        # At most once: a submit in flight at the cut is `unknown` (the SMSC may or may not have read
        # it); every other message was taken exactly once.
        unknown = [m for m in messages if m["status"] == "unknown"]
        assert unknown and all(m["reason"] == "unknown.handoff" for m in unknown)
        assert all(count == 1 for status, count in outcome.values() if status == "delivered")
        assert all(count <= 1 for status, count in outcome.values() if status == "unknown")
    else:
        # At least once, and here exactly once: the cut submits never reached the SMSC and went again.
        assert {status for status, _ in outcome.values()} == {"delivered"}
        assert sorted(count for _, count in outcome.values()) == [1] * 12


async def test_a_stop_reply_suppresses_the_recipient(smpp_gateway: Any, smsc: FakeSmsc) -> None:
    async with smpp_gateway() as gw:
        await gw.wait_status(await _send(gw, "+8613812345678", category="transactional"), {"delivered"})
        assert await smsc.send_mo("8613812345678", smsc.taken[0].source_addr, "退订") == 0
        listing = await (await gw.get("/v1/suppressions")).json()
        again = await _send(gw, "+8613812345678")
        suppressed = await gw.wait_status(again, {"suppressed"})
    assert [(s["address"], s["source"]) for s in listing["data"]] == [("+8613812345678", "inbound:smpp")]
    assert suppressed["reason"] == "suppressed.opt_out"


async def test_the_bind_password_comes_from_its_secret_file(smpp_gateway: Any, smsc: FakeSmsc) -> None:
    async with smpp_gateway(binds=1):
        pass
    assert smsc.binds[0] == ("acme", "trx", 0)
    assert smsc.unbinds == 1  # the gateway unbinds when it stops

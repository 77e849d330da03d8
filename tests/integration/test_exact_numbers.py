"""Integers the JSON parse would round (beyond 64 bits) are refused naming the field; the rest keep every digit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import SMS, GatewayStarter, Running

THIRTY_DIGITS = 123456789012345678901234567890
TABLES = ("messages", "events", "numbers", "conversions")


async def _problem(response: Any) -> dict[str, Any]:
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert body["type"] == "/problems/validation"
    return body


def _named(problem: dict[str, Any]) -> list[str]:
    for error in problem["errors"]:
        assert "64 bits" in error["message"] and "string" in error["message"], error
    return [e["field"] for e in problem["errors"]]


async def _nothing_written(gw: Running) -> None:
    assert {t: await gw.count(t) for t in TABLES} == dict.fromkeys(TABLES, 0)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({**SMS, "metadata": {"order_id": THIRTY_DIGITS}}, ["/metadata/order_id"], id="metadata"),
        pytest.param(
            {**SMS, "metadata": {"ids": [1, -(2**63) - 1, {"a/b": 2**64}]}},
            ["/metadata/ids/1", "/metadata/ids/2/a~1b"],
            id="nested-and-both-ends",
        ),
        pytest.param(
            {"channel": "webhook", "to": "https://example.com/hook", "content": {"payload": {"n": THIRTY_DIGITS}}},
            ["/content/payload/n"],
            id="webhook-payload",
        ),
    ],
)
async def test_an_integer_beyond_64_bits_in_a_job_is_422_naming_it(
    start_gateway: GatewayStarter, body: dict[str, Any], fields: list[str]
) -> None:
    async with start_gateway() as gw:
        assert _named(await _problem(await gw.post("/v1/messages", body))) == fields
        await _nothing_written(gw)


async def test_a_batch_item_with_such_an_integer_is_named_and_nothing_is_stored(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        batch = {"messages": [SMS, {**SMS, "metadata": {"order_id": THIRTY_DIGITS}}]}
        assert _named(await _problem(await gw.post("/v1/messages/batch", batch))) == ["/messages/1/metadata/order_id"]
        await _nothing_written(gw)


async def test_integers_up_to_64_bits_and_long_digit_strings_are_kept_exactly(start_gateway: GatewayStarter) -> None:
    metadata = {"max": 2**64 - 1, "min": -(2**63), "as_text": str(THIRTY_DIGITS), "pi": 3.14159265358979323846264}
    async with start_gateway() as gw:
        response = await gw.post("/v1/messages", {**SMS, "metadata": metadata})
        assert response.status == 202, await response.text()
        stored = await (await gw.get(f"/v1/messages/{(await response.json())['id']}")).json()
        assert stored["metadata"] == {**metadata, "pi": 3.141592653589793}


async def test_other_endpoints_refuse_such_integers_too(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        number = {"pool": "p", "sender": "+14155550101", "daily_cap": THIRTY_DIGITS}
        assert _named(await _problem(await gw.post("/v1/numbers", number))) == ["/daily_cap"]
        conversion = {"message_id": "msg_00000000000000000000000000", "event": "buy", "value": THIRTY_DIGITS}
        assert _named(await _problem(await gw.post("/v1/conversions", conversion))) == ["/value"]
        await _nothing_written(gw)


@pytest.mark.parametrize("cap", [2**31, 2**63])
async def test_a_daily_cap_beyond_its_column_is_422_not_500(start_gateway: GatewayStarter, cap: int) -> None:
    async with start_gateway() as gw:
        number = {"pool": "p", "sender": "+14155550101", "daily_cap": cap}
        problem = await _problem(await gw.post("/v1/numbers", number))
        assert problem["errors"] == [
            {"field": "/daily_cap", "message": "must be a whole number from 1 to 2147483647 or null"}
        ]
        assert await gw.count("numbers") == 0
        accepted = await gw.post("/v1/numbers", {**number, "daily_cap": 2**31 - 1})
        assert accepted.status == 201 and (await accepted.json())["daily_cap"] == 2**31 - 1

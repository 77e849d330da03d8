"""POST /v1/suppressions: an address and a user_id given together are both suppressed, each validated as a
job's `to` and `user_id` are; bad input is a 422 naming the field and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import SMS, GatewayStarter, Running

PUSH = {"channel": "push", "to": "device-token-0001", "content": {"title": "t", "body": "b"}}
EMAIL_FORMS = "must be an e-mail address, e.g. ann@example.com or 张三 <zhang@example.cn>"
ADDRESS_FORMS = (
    'must be a phone number in E.164 form, an e-mail address or an https URL (a device token with "channel": "push")'
)


async def _send(gw: Running, body: dict[str, Any]) -> str:
    response = await gw.post("/v1/messages", body)
    assert response.status == 202, await response.text()
    return str((await response.json())["id"])


async def _suppressed(gw: Running, body: dict[str, Any]) -> None:
    message = await gw.wait_status(await _send(gw, body), {"suppressed", "delivered", "sent"})
    assert (message["status"], message["reason"], message["attempts"]) == ("suppressed", "suppressed.opt_out", [])


async def test_an_address_and_a_user_id_given_together_are_both_suppressed_at_dispatch(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway() as gw:
        both = {"address": "+86 139 0000 0001", "user_id": "u-both", "reason": "complaint"}
        created = await gw.post("/v1/suppressions", both)
        assert created.status == 201, await created.text()
        answer = await created.json()
        assert (answer["address"], answer["user_id"], answer["reason"]) == ("+8613900000001", "u-both", "complaint")

        await _suppressed(gw, {**SMS, "to": "+8613900000002", "user_id": "u-both"})  # the user, elsewhere
        await _suppressed(gw, {**SMS, "to": "+8613900000001"})  # the address, with no user_id
        await gw.wait_status(await _send(gw, {**SMS, "to": "+8613900000003", "user_id": "u-other"}), {"delivered"})

        listed = (await (await gw.get("/v1/suppressions")).json())["data"]
        assert [(s.get("address"), s.get("user_id")) for s in listed] == [("+8613900000001", None), (None, "u-both")]
        assert (await gw.post("/v1/suppressions", both)).status == 200
        lifted = await gw.session.delete(
            gw.url + "/v1/suppressions", params={"address": "+8613900000001", "user_id": "u-both"}, headers=gw.headers
        )
        assert lifted.status == 204
        assert await gw.count("suppressions") == 0


async def test_a_device_token_is_suppressed_when_its_channel_is_named(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        created = await gw.post("/v1/suppressions", {"address": PUSH["to"], "channel": "push"})
        assert created.status == 201, await created.text()
        await _suppressed(gw, PUSH)
        email = await gw.post("/v1/suppressions", {"address": "Ann.Lee@Example.COM"})
        assert (await email.json())["address"] == "Ann.Lee@example.com"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param({"address": "not-a-phone-or-email"}, [("/address", ADDRESS_FORMS)], id="not-an-address"),
        pytest.param(
            {"user_id": "u" * 129},
            [("/user_id", "must be at most 128 characters")],
            id="user-id-too-long",
        ),
        pytest.param(
            {"address": "+8613812345678", "user_id": "u" * 129},
            [("/user_id", "must be at most 128 characters")],
            id="good-address-bad-user-id",
        ),
        pytest.param({"address": "not-a-phone", "user_id": "u-1"}, [("/address", ADDRESS_FORMS)], id="bad-address"),
        pytest.param(
            {"address": "+861381234"},
            [("/address", "must be a valid phone number in E.164 form, e.g. +8613812345678")],
            id="invalid-number",
        ),
        pytest.param({"address": "ann@example"}, [("/address", EMAIL_FORMS)], id="invalid-email"),
        pytest.param({"address": "http://example.com/hook"}, [("/address", "must be an https URL")], id="http-url"),
        pytest.param({"address": "https://\u00de]x#"}, [("/address", "must be an https URL")], id="url-host"),
        pytest.param(
            {"address": "+8613812345678", "channel": "email"},
            [("/address", EMAIL_FORMS)],
            id="address-not-of-its-channel",
        ),
        pytest.param(
            {"address": "device-token-0001", "channel": "fax"},
            [("/channel", "must be one of sms, voice, push, email, webhook"), ("/address", ADDRESS_FORMS)],
            id="unknown-channel",
        ),
        pytest.param(
            {"user_id": "u\n1"}, [("/user_id", "must not contain control characters")], id="user-id-control-char"
        ),
    ],
)
async def test_bad_recipients_are_422_naming_the_field_and_nothing_is_written(
    start_gateway: GatewayStarter, body: dict[str, Any], errors: list[tuple[str, str]]
) -> None:
    async with start_gateway() as gw:
        response = await gw.post("/v1/suppressions", body)
        assert response.status == 422 and response.content_type == "application/problem+json"
        problem = await response.json()
        assert [(e["field"], e["message"]) for e in problem["errors"]] == errors
        assert await gw.count("suppressions") == 0
        assert await gw.count("events") == 0


async def test_a_cursor_beyond_any_row_id_is_400_naming_it_not_a_database_error(start_gateway: GatewayStarter) -> None:
    # 19 digits is past PostgreSQL's bigint: the document and the server refuse it before the query.
    async with start_gateway() as gw:
        response = await gw.get("/v1/suppressions?cursor=9702765372935892251")
        assert response.status == 400
        assert [e["field"] for e in (await response.json())["errors"]] == ["cursor"]

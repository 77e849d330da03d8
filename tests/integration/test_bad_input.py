"""Bad input gets the right status and a problem+json body naming the field; nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import API_KEY, SMS, GatewayStarter


async def _problem(response: Any) -> dict[str, Any]:
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert body["status"] == response.status
    assert body["type"].startswith("/problems/") and body["title"] and body["detail"]
    return body


CASES = [
    pytest.param({**SMS, "channel": "fax"}, 422, ["/channel"], id="unknown-channel"),
    pytest.param({**SMS, "to": "13812345678"}, 422, ["/to"], id="sms-to-not-e164"),
    pytest.param({**SMS, "to": "+861381234"}, 422, ["/to"], id="sms-to-invalid-number"),
    pytest.param({**SMS, "channel": "voice", "to": "+1 555"}, 422, ["/to"], id="voice-to-invalid"),
    pytest.param({"channel": "sms", "content": {"text": "x"}}, 422, ["/to"], id="missing-to"),
    pytest.param({"channel": "sms", "to": "+8613812345678"}, 422, ["/content"], id="missing-content"),
    pytest.param({**SMS, "content": {}}, 422, ["/content/text"], id="missing-text"),
    pytest.param({**SMS, "content": {"text": "   "}}, 422, ["/content/text"], id="blank-text"),
    pytest.param({**SMS, "content": {"text": "x" * 1601}}, 422, ["/content/text"], id="text-too-long"),
    pytest.param({**SMS, "campaign": "c" * 129}, 422, ["/campaign"], id="campaign-too-long"),
    pytest.param({**SMS, "send_at": "2026-01-01 09:00"}, 422, ["/send_at"], id="send-at-without-zone"),
    pytest.param(
        {**SMS, "send_at": "2026-01-02T00:00:00Z", "expires_at": "2026-01-01T00:00:00Z"},
        422,
        ["/expires_at"],
        id="expires-before-send",
    ),
    pytest.param({**SMS, "expires_at": "2020-01-01T00:00:00Z"}, 422, ["/expires_at"], id="expires-already-past"),
    pytest.param(
        {**SMS, "send_at": "2020-01-01T00:00:00Z", "expires_at": "2020-01-02T00:00:00+08:00"},
        422,
        ["/expires_at"],
        id="expires-past-after-a-past-send-at",
    ),
    pytest.param(
        {**SMS, "send_at": "2999-01-02T00:00:00Z", "expires_at": "2999-01-01T00:00:00Z"},
        422,
        ["/expires_at"],
        id="expires-before-a-future-send-at",
    ),
    pytest.param({**SMS, "fallback": ["sms"]}, 422, ["/fallback/0"], id="fallback-repeats-channel"),
    pytest.param({**SMS, "fallback": ["voice", "email"]}, 422, ["/fallback/1"], id="fallback-cannot-take-a-number"),
    pytest.param(
        {"channel": "push", "to": "device-token-0001", "content": {"title": "t", "body": "b"}, "fallback": ["sms"]},
        422,
        ["/fallback/0"],
        id="push-fallback-to-sms",
    ),
    pytest.param(
        {**SMS, "channel": "voice", "fallback": ["email", "sms"], "channel_order": "cost"},
        422,
        ["/fallback/0"],
        id="cost-order-entry-cannot-take-a-number",
    ),
    pytest.param({**SMS, "metadata": {"k": "v" * 5000}}, 422, ["/metadata"], id="metadata-too-large"),
    pytest.param({**SMS, "category": "promo"}, 422, ["/category"], id="unknown-category"),
    pytest.param({**SMS, "tz": "Mars/Olympus_Mons"}, 422, ["/tz"], id="unknown-time-zone"),
    pytest.param({**SMS, "tz": "../../etc/passwd"}, 422, ["/tz"], id="time-zone-path"),
    pytest.param({**SMS, "sendAt": "x"}, 422, ["/sendAt"], id="unknown-field"),
    pytest.param(
        {"channel": "email", "to": "not-an-address", "content": {"subject": "s", "text": "t"}},
        422,
        ["/to"],
        id="email-to-invalid",
    ),
    pytest.param(
        {"channel": "email", "to": "a@example.com", "content": {"subject": "a\r\nBcc: x", "text": "t"}},
        422,
        ["/content/subject"],
        id="email-header-injection",
    ),
    pytest.param(
        {"channel": "webhook", "to": "http://example.com/hook", "content": {"payload": {}}},
        422,
        ["/to"],
        id="webhook-not-https",
    ),
    pytest.param(
        # A host no client can connect to: taken once, it broke every client that read the job back.
        {"channel": "webhook", "to": "https://\u00de\U000193a4]x#", "content": {"payload": {}}},
        422,
        ["/to"],
        id="webhook-host-not-a-name",
    ),
    pytest.param(
        {"channel": "webhook", "to": "https://[::1]:8443/hook", "content": {"payload": {}}},
        422,
        ["/to"],
        id="webhook-host-ipv6-literal",
    ),
    pytest.param(
        {"channel": "push", "to": "tok", "content": {"title": "t", "body": "b"}},
        422,
        ["/to"],
        id="push-token-too-short",
    ),
    pytest.param([SMS], 422, ["/"], id="not-an-object"),
    pytest.param(
        {"channel": "sms", "to": 8613812345678, "content": "hi"},
        422,
        ["/to", "/content"],
        id="wrong-types-all-reported",
    ),
]


@pytest.mark.parametrize(("body", "status", "fields"), CASES)
async def test_invalid_jobs_are_refused_naming_each_field(
    start_gateway: GatewayStarter, body: Any, status: int, fields: list[str]
) -> None:
    async with start_gateway() as gw:
        response = await gw.post("/v1/messages", body, key="k")
        assert response.status == status
        problem = await _problem(response)
        assert problem["type"] == "/problems/validation"
        assert [e["field"] for e in problem["errors"]] == fields
        assert await gw.count() == 0
        assert await gw.count("events") == 0


async def test_a_batch_item_already_expired_is_refused_on_its_own(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        future = {**SMS, "expires_at": "2999-01-01T00:00:00Z"}
        past = {**SMS, "expires_at": "2020-01-01T00:00:00+08:00"}
        response = await gw.post("/v1/messages/batch", {"messages": [future, past]})
        assert response.status == 200
        first, second = (await response.json())["results"]
        assert first["status"] == 202
        assert second["status"] == 422
        assert second["problem"]["errors"] == [
            {"field": "/messages/1/expires_at", "message": "is already past: the job would expire unsent"}
        ]
        assert await gw.count() == 1


async def test_a_fallback_that_cannot_reach_the_address_names_the_channels_that_can(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway() as gw:
        push = {"channel": "push", "to": "device-token-0001", "content": {"title": "t", "body": "b"}}
        items = [{**SMS, "fallback": ["voice"]}, {**push, "fallback": ["sms"]}, {**SMS, "fallback": ["email"]}]
        response = await gw.post("/v1/messages/batch", {"messages": items})
        results = (await response.json())["results"]
        assert [r["status"] for r in results] == [202, 422, 422]
        assert results[1]["problem"]["errors"] == [
            {
                "field": "/messages/1/fallback/0",
                "message": "sms cannot reach a device token; the channels that can: push",
            }
        ]
        assert results[2]["problem"]["errors"] == [
            {
                "field": "/messages/2/fallback/0",
                "message": "email cannot reach a phone number; the channels that can: sms, voice",
            }
        ]
        assert await gw.count() == 1


async def test_malformed_json_is_400(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.post(
            "/v1/messages", None, data=b'{"channel": "sms",', headers={"Content-Type": "application/json"}
        )
        assert response.status == 400
        assert (await _problem(response))["type"] == "/problems/malformed-json"
        assert await gw.count() == 0


async def test_invalid_utf8_is_400(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.post(
            "/v1/messages", None, data=b'{"channel": "\xff\xfe"}', headers={"Content-Type": "application/json"}
        )
        assert response.status == 400
        assert await gw.count() == 0


async def test_wrong_content_type_is_415(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.post(
            "/v1/messages",
            None,
            data=b"channel=sms&to=%2B8613812345678",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status == 415
        assert "application/json" in (await _problem(response))["detail"]
        assert await gw.count() == 0


async def test_a_body_over_the_limit_is_413(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_API__MAX_BODY_BYTES": "2048"}) as gw:
        body = {**SMS, "metadata": {"pad": "x" * 3000}}
        response = await gw.post("/v1/messages", body)
        assert response.status == 413
        assert (await _problem(response))["type"] == "/problems/payload-too-large"
        assert await gw.count() == 0


async def test_a_batch_over_1000_items_is_422_and_nothing_is_stored(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.post("/v1/messages/batch", {"messages": [SMS] * 1001})
        assert response.status == 422
        problem = await _problem(response)
        assert problem["errors"] == [{"field": "/messages", "message": "must hold at most 1000 items"}]
        assert await gw.count() == 0


async def test_a_batch_that_is_not_a_list_is_422(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.post("/v1/messages/batch", {"messages": SMS})
        assert response.status == 422
        assert (await _problem(response))["errors"][0]["field"] == "/messages"


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "has space"])
async def test_an_invalid_idempotency_key_is_400(start_gateway: GatewayStarter, key: str) -> None:
    async with start_gateway() as gw:
        response = await gw.session.post(
            gw.url + "/v1/messages",
            json=SMS,
            headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key},
        )
        assert response.status == 400
        assert (await _problem(response))["errors"][0]["field"] == "Idempotency-Key"
        assert await gw.count() == 0


async def test_a_missing_key_is_400_when_keys_are_required(start_gateway: GatewayStarter) -> None:
    async with start_gateway({"GATEWAY_API__REQUIRE_IDEMPOTENCY_KEY": "true"}) as gw:
        response = await gw.post("/v1/messages", SMS)
        assert response.status == 400
        assert (await _problem(response))["type"] == "/problems/missing-idempotency-key"
        batch = await gw.post("/v1/messages/batch", {"messages": [SMS]})
        result = (await batch.json())["results"][0]
        assert result["status"] == 422
        assert result["problem"]["errors"][0]["field"] == "/messages/0/idempotency_key"
        assert await gw.count() == 0


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong-key-000000000000", "Basic dXNlcjpwYXNz"])
async def test_a_missing_or_unknown_api_key_is_401(start_gateway: GatewayStarter, header: str | None) -> None:
    async with start_gateway() as gw:
        headers = {} if header is None else {"Authorization": header}
        response = await gw.session.post(gw.url + "/v1/messages", json=SMS, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        await _problem(response)
        listing = await gw.session.get(gw.url + "/v1/messages", headers=headers)
        assert listing.status == 401
        assert await gw.count() == 0


async def test_a_key_without_the_send_scope_is_403(start_gateway: GatewayStarter) -> None:
    from gateway.api.auth import key_row, new_key

    async with start_gateway() as gw:
        key, key_id = new_key()
        await gw.gateway.store.add_api_key(key_row(key, key_id, "default", "ro", ("read",)))
        response = await gw.session.post(gw.url + "/v1/messages", json=SMS, headers={"Authorization": f"Bearer {key}"})
        assert response.status == 403
        assert "send" in (await _problem(response))["detail"]
        assert await gw.count() == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("since=yesterday", "since"),
        ("cursor=!!!", "cursor"),
        ("campain=x", "campain"),
    ],
)
async def test_invalid_list_queries_are_400_naming_the_parameter(
    start_gateway: GatewayStarter, query: str, field: str
) -> None:
    async with start_gateway() as gw:
        response = await gw.get(f"/v1/messages?{query}")
        assert response.status == 400
        assert [e["field"] for e in (await _problem(response))["errors"]] == [field]


async def test_unknown_message_is_404_and_unknown_route_is_problem_json(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        missing = await gw.get("/v1/messages/msg_00000000000000000000000000")
        assert missing.status == 404
        await _problem(missing)
        nowhere = await gw.get("/v1/nowhere")
        assert nowhere.status == 404
        await _problem(nowhere)
        wrong_method = await gw.session.delete(gw.url + "/v1/messages", headers=gw.headers)
        assert wrong_method.status == 405
        await _problem(wrong_method)

"""/v1/templates on both stores: drafts, publish into immutable numbered versions, archive, preview;
every change audited; each bad input a 422/409 naming the field with nothing stored."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.harness import GatewayStarter, Running

TEMPLATE: dict[str, Any] = {
    "name": "order_shipped",
    "description": "parcel left the warehouse",
    "variables": {
        "name": {"type": "string", "required": True, "max_length": 20, "example": "张三"},
        "url": {"type": "url", "required": True, "example": "https://shop.example.com/o/1"},
    },
    "channels": {
        "sms": {"text": "【小店】{{ name }}，您的订单已发货 {{ url }} 拒收请回复R"},
        "push": {"title": "订单已发货", "body": "{{ name }}，点开查看物流"},
        "voice": {"text": "您好，{{ name }}，您的订单已经发货。", "language": "zh-CN"},
    },
    "locales": {"en": {"sms": {"text": "{{ name }}, your order has shipped {{ url }}"}}},
    "providers": {"aliyun": {"template_code": "SMS_123", "sign_name": "小店"}},
}
PARAMS = {"name": "张三", "url": "https://shop.example.com/o/1"}
CHINA_ROUTE = {"GATEWAY_CONTENT__ROUTES": json.dumps({"sandbox": {"china_marketing": True}})}


def with_(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(TEMPLATE)
    body.update(changes)
    return body


async def _nothing_stored(gw: Running) -> None:
    assert [await gw.count(t) for t in ("templates", "template_versions", "template_changes")] == [0, 0, 0]


async def test_a_template_is_drafted_published_versioned_archived_and_every_change_audited(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway() as gw:
        created = await gw.post("/v1/templates", TEMPLATE)
        assert created.status == 201, await created.text()
        assert created.headers["Location"] == "/v1/templates/order_shipped"
        draft = await created.json()
        assert (draft["latest_version"], draft["archived"], draft["findings"]) == (None, False, [])
        assert draft["channels"] == TEMPLATE["channels"]

        first = await gw.post("/v1/templates/order_shipped/publish", None)
        assert first.status == 201, await first.text()
        assert await first.json() == {"version": 1, "findings": []}
        assert first.headers["Location"] == "/v1/templates/order_shipped/versions/1"

        changed = await gw.session.patch(
            gw.url + "/v1/templates/order_shipped",
            json={"description": "shipped", "channels": {"sms": {"text": "【小店】{{ name }}发货了 拒收请回复R"}}},
            headers=gw.headers,
        )
        assert changed.status == 200, await changed.text()
        assert (await changed.json())["channels"] == {"sms": {"text": "【小店】{{ name }}发货了 拒收请回复R"}}
        assert (await (await gw.post("/v1/templates/order_shipped/publish", None)).json())["version"] == 2

        one = await (await gw.get("/v1/templates/order_shipped/versions/1")).json()
        assert one["content"]["channels"] == TEMPLATE["channels"]  # a version never changes with its draft
        assert one["created_by"] and one["version"] == 1
        versions = await (await gw.get("/v1/templates/order_shipped/versions")).json()
        assert [v["version"] for v in versions["data"]] == [2, 1]
        assert (await gw.get("/v1/templates/order_shipped/versions/3")).status == 404

        archived = await gw.post("/v1/templates/order_shipped/archive", None)
        assert (archived.status, (await archived.json())["archived"]) == (200, True)
        refused = await gw.post("/v1/templates/order_shipped/publish", None)
        assert (refused.status, (await refused.json())["type"].rsplit("/", 1)[-1]) == (409, "template-archived")
        assert (await (await gw.get("/v1/templates")).json())["data"] == []
        listed = await (await gw.get("/v1/templates", params={"archived": "true"})).json()
        assert [t["name"] for t in listed["data"]] == ["order_shipped"]

        changes = await gw.gateway.store.template_changes(listed_id := (await _row(gw))["id"])
        assert [(c["action"], c["version"]) for c in changes] == [
            ("created", None),
            ("published", 1),
            ("updated", None),
            ("published", 2),
            ("archived", None),
        ]
        assert all(c["actor"] and c["at"] for c in changes) and listed_id
        events = await (await gw.get("/v1/events", params={"since": "2020-01-01T00:00:00Z"})).text()
        assert [json.loads(line)["type"] for line in events.splitlines()].count("template.published") == 2


async def _row(gw: Running) -> dict[str, Any]:
    row = await gw.gateway.store.get_template("default", "order_shipped")
    assert row is not None
    return row


async def test_preview_renders_every_channel_with_its_check_and_the_locale_variant(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway(CHINA_ROUTE) as gw:
        assert (await gw.post("/v1/templates", TEMPLATE)).status == 201
        preview = await gw.post("/v1/templates/order_shipped/preview", {"params": PARAMS})
        assert preview.status == 200, await preview.text()
        channels = (await preview.json())["channels"]
        assert channels["sms"]["text"] == "【小店】张三，您的订单已发货 https://shop.example.com/o/1 拒收请回复R"
        assert (channels["sms"]["ok"], channels["sms"]["encoding"], channels["sms"]["segments"]) == (True, "UCS-2", 1)
        assert channels["push"]["content"] == {"title": "订单已发货", "body": "张三，点开查看物流"}
        assert channels["voice"]["content"] == {"text": "您好，张三，您的订单已经发货。", "language": "zh-CN"}

        in_english = await gw.post("/v1/templates/order_shipped/preview", {"params": PARAMS, "locale": "en"})
        english = await in_english.json()
        assert english["locale"] == "en"
        sms = english["channels"]["sms"]
        # The China route's rules apply: the English variant lacks the signature and the unsubscribe suffix.
        assert [(v["rule"], v["field"]) for v in sms["violations"]] == [
            ("signature_missing", "/locales/en/sms/text"),
            ("unsubscribe_missing", "/locales/en/sms/text"),
        ]
        # The rendered text gets the verdict the same text gets as plain content.
        plain = await (await gw.post("/v1/content/check", {"channel": "sms", "text": sms["text"]})).json()
        assert (plain["ok"], plain["segments"]) == (sms["ok"], sms["segments"])
        assert [v["rule"] for v in plain["violations"]] == [v["rule"] for v in sms["violations"]]
        wrong = await gw.post("/v1/templates/order_shipped/preview", {"params": {"name": 5, "x": "y"}})
        assert wrong.status == 200
        answer = await wrong.json()
        assert answer["params"] == [
            {"field": "/params/x", "message": "is not a declared variable of this template"},
            {"field": "/params/name", "message": "must be a string"},
            {"field": "/params/url", "message": "is required"},
        ]
        assert answer["filled"] == ["name", "url"]  # read with their examples
        assert answer["channels"]["push"]["content"]["body"] == "张三，点开查看物流"
        assert (await gw.post("/v1/templates/order_shipped/preview", {"version": 1})).status == 404


async def test_a_publish_with_a_block_finding_is_refused_naming_the_body_and_warnings_are_returned(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway(CHINA_ROUTE) as gw:
        glued = with_(channels={"sms": {"text": "【小店】{{ name }}点击{{url}}领取 拒收请回复R"}}, locales={})
        created = await gw.post("/v1/templates", glued)
        assert created.status == 201  # a draft may be wrong; its findings say so
        assert [(f["rule"], f["field"]) for f in (await created.json())["findings"]] == [
            ("link_spacing", "/channels/sms/text")
        ]
        refused = await gw.post("/v1/templates/order_shipped/publish", None)
        assert refused.status == 422
        problem = await refused.json()
        assert [e["field"] for e in problem["errors"]] == ["/channels/sms/text"]
        message = problem["errors"][0]["message"]
        assert message.startswith("link_spacing: the link https://shop.example.com/o/1 is glued")
        assert await gw.count("template_versions") == 0

        too_long = with_(
            variables={"name": {"type": "string", "max_length": 400, "example": "张三"}},
            channels={"sms": {"text": "【小店】{{ name }} 拒收请回复R"}},
            locales={},
            name="long_name",
        )
        assert (await gw.post("/v1/templates", too_long)).status == 201
        refused = await gw.post("/v1/templates/long_name/publish", None)
        assert refused.status == 422
        found = (await refused.json())["findings"]
        assert [(f["rule"], f["field"], f["sample"]) for f in found] == [
            ("too_long", "/channels/sms/text", "max_length")
        ]
        long_title = with_(
            variables={"name": {"type": "string", "max_length": 300, "example": "Ann"}},
            channels={"push": {"title": "Hi {{ name }}", "body": "b"}},
            locales={},
            name="long_title",
        )
        assert (await gw.post("/v1/templates", long_title)).status == 201
        refused = await gw.post("/v1/templates/long_title/publish", None)
        assert refused.status == 422
        assert (await refused.json())["errors"] == [
            {
                "field": "/channels/push/title",
                "message": "field_too_long: renders 303 characters; a push title takes at most 256",
            }
        ]
        assert await gw.count("template_versions") == 0


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param(
            with_(channels={"sms": {"text": "{{ ''.__class__.__mro__ }}"}}),
            [("/channels/sms/text", "reads an attribute ({{ x.y }}): only {{ name }} placeholders")],
            id="attribute-access",
        ),
        pytest.param(
            with_(channels={"push": {"title": "t", "body": "{% for i in range(10**9) %}x{% endfor %}"}}, locales={}),
            [("/channels/push/body", "has a loop ({% for %})")],
            id="loop",
        ),
        pytest.param(
            with_(locales={"en": {"sms": {"text": "{{ coupon }}"}}}),
            [("/locales/en/sms/text", "uses {{ coupon }}, which is not a declared variable (declared: name, url)")],
            id="undeclared",
        ),
        pytest.param(
            with_(channels={"sms": {"text": "{{ name.upper() }}"}}),
            [("/channels/sms/text", "calls a function")],
            id="call",
        ),
        pytest.param(
            with_(variables={"n": {"type": "integer", "example": "three"}}, channels={"sms": {"text": "{{ n }}"}}),
            [("/variables/n/example", "must be an integer")],
            id="example-of-another-type",
        ),
        pytest.param(
            with_(variables={"n": {"type": "text"}}),
            [("/variables/n/type", "must be one of string, integer, number, boolean, url, date")],
            id="unknown-type",
        ),
        pytest.param(
            with_(variables={"n": {"type": "string", "max_length": 2, "example": "abc"}}),
            [("/variables/n/example", "must be at most max_length (2) characters")],
            id="example-over-max-length",
        ),
        pytest.param(with_(name="Order Shipped"), [("/name", "must be 1-64 of a-z")], id="bad-name"),
        pytest.param(
            with_(channels={}), [("/channels", "must hold the body of at least one channel")], id="no-channel"
        ),
        pytest.param(
            with_(channels={"fax": {"text": "x"}}), [("/channels/fax", "is not a known field")], id="unknown-channel"
        ),
    ],
)
async def test_a_bad_template_is_refused_naming_the_field_and_nothing_is_stored(
    start_gateway: GatewayStarter, body: dict[str, Any], errors: list[tuple[str, str]]
) -> None:
    async with start_gateway() as gw:
        refused = await gw.post("/v1/templates", body)
        assert refused.status == 422, await refused.text()
        assert refused.content_type == "application/problem+json"
        found = [(e["field"], e["message"]) for e in (await refused.json())["errors"]]
        assert [f for f, _ in found] == [f for f, _ in errors]
        assert all(message.startswith(prefix) for (_, message), (_, prefix) in zip(found, errors, strict=True))
        await _nothing_stored(gw)


async def test_a_duplicate_name_and_an_unknown_template_are_refused(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        assert (await gw.post("/v1/templates", TEMPLATE)).status == 201
        again = await gw.post("/v1/templates", with_(description="another"))
        assert again.status == 409
        assert (await again.json())["errors"] == [{"field": "/name", "message": "is taken"}]
        assert [await gw.count(t) for t in ("templates", "template_changes")] == [1, 1]
        assert (await gw.post("/v1/templates/nope/publish", None)).status == 404
        assert (await gw.get("/v1/templates/nope")).status == 404
        archived_edit = await gw.post("/v1/templates/order_shipped/archive", None)
        assert archived_edit.status == 200
        patch = await gw.session.patch(
            gw.url + "/v1/templates/order_shipped", json={"description": "x"}, headers=gw.headers
        )
        assert patch.status == 409

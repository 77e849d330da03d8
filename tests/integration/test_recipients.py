"""/v1/recipients on both stores: profiles, the list and its filters, bulk import, erasure, bad input."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from gateway.store import schema
from tests.harness import SMS, GatewayStarter, Running

PROFILE = {
    "phone": "+8613812345678",
    "email": "li@example.com",
    "push_tokens": [{"token": "fcm-token-0001", "platform": "android"}],
    "tz": "Asia/Shanghai",
    "locale": "zh-CN",
    "attributes": {"tier": "gold", "visits": 3},
}
ANDROID_ONLY = {"GATEWAY_SANDBOX__PUSH_PLATFORMS": '["android"]'}
RECIPIENT_TABLES = ("recipients", "recipient_addresses", "recipient_attributes", "recipient_preferences")

HTTPS_URL_RULE = "must be an https URL whose host is a DNS name or an IPv4 address"


async def put(gw: Running, user_id: str, body: Any) -> Any:
    response = await gw.session.put(f"{gw.url}/v1/recipients/{user_id}", json=body, headers=gw.headers)
    await response.read()
    return response


async def patch(gw: Running, user_id: str, body: Any) -> Any:
    response = await gw.session.patch(f"{gw.url}/v1/recipients/{user_id}", json=body, headers=gw.headers)
    await response.read()
    return response


async def nothing_stored(gw: Running) -> None:
    assert [await gw.count(t) for t in RECIPIENT_TABLES] == [0, 0, 0, 0]


async def test_a_profile_is_created_replaced_patched_and_read(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        created = await put(gw, "u-1001", PROFILE)
        assert created.status == 201, await created.text()
        body = await created.json()
        assert (body["phone"], body["email"], body["email_name"], body["tz"]) == (
            "+8613812345678",
            "li@example.com",
            None,
            "Asia/Shanghai",
        )
        assert body["push_tokens"] == [{"token": "fcm-token-0001", "platform": "android", "last_seen_at": None}]
        assert body["attributes"] == {"tier": "gold", "visits": 3}

        replaced = await put(gw, "u-1001", {"phone": "+86 139 0000 0001"})
        assert replaced.status == 200
        assert (await replaced.json())["email"] is None  # PUT replaces the whole profile

        changed = await patch(gw, "u-1001", {"email": "张三 <zhang@例子.中国>", "attributes": {"tier": "silver"}})
        assert changed.status == 200, await changed.text()
        body = await changed.json()
        assert (body["phone"], body["email"], body["email_name"]) == ("+8613900000001", "zhang@例子.中国", "张三")
        cleared = await (await patch(gw, "u-1001", {"email": None, "attributes": {"tier": None}})).json()
        assert (cleared["email"], cleared["email_name"], cleared["attributes"]) == (None, None, {})

        got = await gw.get("/v1/recipients/u-1001")
        assert (await got.json())["phone"] == "+8613900000001"
        assert (await gw.get("/v1/recipients/u-none")).status == 404
        assert (await patch(gw, "u-none", {"tz": "UTC"})).status == 404


async def test_the_list_filters_by_channel_and_attribute_and_pages_with_a_cursor(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        for n in range(5):
            body: dict[str, Any] = {"phone": f"+861380000000{n}", "attributes": {"tier": "gold" if n % 2 else "basic"}}
            if n == 3:
                body["push_tokens"] = [{"token": "ios-token-0003", "platform": "ios"}]
            assert (await put(gw, f"u-{n}", body)).status == 201

        async def ids(query: str) -> tuple[list[str], str | None]:
            page = await (await gw.get("/v1/recipients" + query)).json()
            return [r["user_id"] for r in page["data"]], page["next_cursor"]

        assert await ids("?limit=2") == (["u-0", "u-1"], "u-1")
        assert await ids("?limit=2&cursor=u-1") == (["u-2", "u-3"], "u-3")
        assert await ids("?limit=2&cursor=u-3") == (["u-4"], None)
        assert await ids("?attribute=tier:gold") == (["u-1", "u-3"], None)
        assert await ids("?has_channel=push") == (["u-3"], None)
        assert await ids("?has_channel=email") == ([], None)
        bad = await gw.get("/v1/recipients?has_channel=fax")
        assert bad.status == 400 and [e["field"] for e in (await bad.json())["errors"]] == ["has_channel"]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param(
            {"phone": "+861381234"},
            [("/phone", "must be a valid phone number in E.164 form, e.g. +8613812345678")],
            id="phone",
        ),
        pytest.param(
            {"email": "ann@example"},
            [("/email", "must be an e-mail address, e.g. ann@example.com or 张三 <zhang@example.cn>")],
            id="email",
        ),
        pytest.param(
            {"push_tokens": [{"token": "apns-token-0001", "platform": "ios"}]},
            [("/push_tokens/0/platform", "no configured push provider delivers to ios")],
            id="unserved-platform",
        ),
        pytest.param(
            {"push_tokens": [{"token": "t", "platform": "android"}]},
            [("/push_tokens/0/token", "must be a device token of 8-4096 printable characters")],
            id="token",
        ),
        pytest.param({"tz": "Mars/Base"}, [("/tz", "must be an IANA time zone, e.g. Asia/Shanghai")], id="tz"),
        pytest.param({"webhook_url": "http://x.example"}, [("/webhook_url", HTTPS_URL_RULE)], id="webhook"),
        pytest.param({"fax": "+8613812345678"}, [("/fax", "is not a known field")], id="unknown-field"),
        pytest.param(
            {"attributes": {"bad name": 1}},
            [("/attributes/bad name/[key]", "must be 1-64 letters, digits, _ . or -")],
            id="attribute-name",
        ),
    ],
)
async def test_bad_profiles_are_422_naming_the_field_and_nothing_is_stored(
    start_gateway: GatewayStarter, body: dict[str, Any], errors: list[tuple[str, str]]
) -> None:
    async with start_gateway(env=ANDROID_ONLY) as gw:
        for answer in (await put(gw, "u-1", {**PROFILE, **body}), await patch(gw, "u-1", body)):
            assert answer.status in (422, 404)
        response = await put(gw, "u-1", {**PROFILE, **body})
        assert response.status == 422 and response.content_type == "application/problem+json"
        assert [(e["field"], e["message"]) for e in (await response.json())["errors"]] == errors
        await nothing_stored(gw)


async def _import(gw: Running, text: str, media: str) -> tuple[int, list[dict[str, Any]] | dict[str, Any]]:
    response = await gw.session.post(
        gw.url + "/v1/recipients", data=text.encode(), headers={**gw.headers, "Content-Type": media}
    )
    raw = await response.read()
    if response.status != 200:
        return response.status, await response.json(content_type=None)
    import orjson

    return 200, [orjson.loads(line) for line in raw.splitlines()]


async def test_an_ndjson_import_answers_every_line_and_stores_only_the_valid_ones(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway() as gw:
        text = (
            '{"user_id": "u-1", "phone": "+8613812345678", "tz": "Asia/Shanghai"}\n'
            '{"user_id": "u-2", "phone": "+861381234", "email": "b@example.com"}\n'
            "not json\n"
            "\n"
            '{"user_id": "u-1", "email": "li@example.com"}\n'
        )
        status, results = await _import(gw, text, "application/x-ndjson")
        assert status == 200
        assert results == [
            {"line": 1, "user_id": "u-1", "result": "created"},
            {
                "line": 2,
                "user_id": "u-2",
                "result": "invalid",
                "errors": [
                    {"field": "/phone", "message": "must be a valid phone number in E.164 form, e.g. +8613812345678"}
                ],
            },
            {"line": 3, "user_id": None, "result": "invalid", "errors": [{"field": "/", "message": "not valid JSON"}]},
            {"line": 5, "user_id": "u-1", "result": "updated"},
        ]
        assert (await gw.get("/v1/recipients/u-2")).status == 404  # nothing of the bad line, not even its e-mail
        assert (await (await gw.get("/v1/recipients/u-1")).json())["email"] == "li@example.com"


async def test_an_import_replaces_known_people_whole_and_creates_the_others_in_one_batch(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway() as gw:
        known = {"phone": "+8613812345678", "push_tokens": [{"token": "tok-00000001", "platform": "android"}]}
        put = await gw.session.put(
            f"{gw.url}/v1/recipients/u-1", json={**known, "attributes": {"tier": "gold"}}, headers=gw.headers
        )
        assert put.status == 201
        text = (
            '{"user_id": "u-2", "email": "b@example.com", "attributes": {"tier": "silver"}}\n'
            '{"user_id": "u-1", "email": "li@example.com", "tz": "Asia/Shanghai"}\n'
            '{"user_id": "u-3", "phone": "+8613812345679"}\n'
        )
        status, results = await _import(gw, text, "application/x-ndjson")
        assert status == 200
        assert [(r["user_id"], r["result"]) for r in results] == [
            ("u-2", "created"),
            ("u-1", "updated"),
            ("u-3", "created"),
        ]
        one = await (await gw.get("/v1/recipients/u-1")).json()
        assert (one["email"], one["tz"], one["phone"], one["push_tokens"], one["attributes"]) == (
            "li@example.com",
            "Asia/Shanghai",
            None,
            [],
            {},
        )
        gold = await (await gw.get("/v1/recipients", params={"attribute": "tier:gold"})).json()
        silver = await (await gw.get("/v1/recipients", params={"attribute": "tier:silver"})).json()
        assert ([r["user_id"] for r in gold["data"]], [r["user_id"] for r in silver["data"]]) == (
            [],
            ["u-2"],
        )
        assert (await (await gw.get("/v1/recipients/u-3")).json())["phone"] == "+8613812345679"


async def test_a_csv_import_names_the_bad_column_per_line_and_refuses_an_unknown_header(
    start_gateway: GatewayStarter,
) -> None:
    async with start_gateway() as gw:
        text = (
            "user_id,phone,push_token,push_platform,attr.tier\n"
            "u-1,+8613812345678,tok-00000001,android,gold\n"
            "u-2,12,,,\n"
        )
        status, results = await _import(gw, text, "text/csv")
        assert status == 200
        assert [(r["line"], r["result"], r.get("errors")) for r in results] == [  # type: ignore[union-attr]
            (2, "created", None),
            (
                3,
                "invalid",
                [{"field": "phone", "message": "must be a valid phone number in E.164 form, e.g. +8613812345678"}],
            ),
        ]
        one = await (await gw.get("/v1/recipients/u-1")).json()
        assert (one["push_tokens"][0]["token"], one["attributes"]) == ("tok-00000001", {"tier": "gold"})

        status, refused = await _import(gw, "user_id,fax\nu-9,1\n", "text/csv")
        assert status == 200
        assert refused[0]["errors"] == [  # type: ignore[index]
            {
                "field": "fax",
                "message": "is not a column (known: user_id, phone, email, push_token, push_platform, "
                "webhook_url, tz, locale, attr.<name>)",
            }
        ]
        assert len(refused) == 1  # nothing further is read
        assert (await gw.get("/v1/recipients/u-9")).status == 404


async def _text_holding(gw: Running, needles: list[str]) -> list[str]:
    """Every (table.column) of the store whose text holds any of `needles`."""

    def scan(conn: Any) -> list[str]:
        found = []
        for table in schema.metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, sa.String | sa.Text):
                    continue
                for value in conn.execute(sa.select(column)).scalars():
                    if isinstance(value, str) and any(n in value for n in needles):
                        found.append(f"{table.name}.{column.name}: {value[:80]}")
        return found

    return await gw.gateway.store.db.read(scan)


async def test_erasure_leaves_no_address_of_the_person_in_any_text_column(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        addresses = ["+8613812345678", "li@example.com", "fcm-token-0001"]
        assert (await put(gw, "u-1001", PROFILE)).status == 201
        for body in (
            {**SMS, "user_id": "u-1001", "metadata": {"note": "call +8613812345678"}},
            {"channel": "email", "to": "Li <li@example.com>", "content": {"subject": "Hi", "text": "li@example.com"}},
            {"channel": "push", "to": "fcm-token-0001", "user_id": "u-1001", "content": {"title": "t", "body": "b"}},
        ):
            response = await gw.post("/v1/messages", body)
            assert response.status == 202, await response.text()
            await gw.wait_status((await response.json())["id"], {"delivered"})
        assert (await gw.post("/v1/suppressions", {"address": "li@example.com"})).status == 201
        assert (await gw.post("/v1/messages", {**SMS, "to": "+8613900000009"})).status == 202  # someone else
        assert await _text_holding(gw, addresses)  # the scan sees them before

        erased = await gw.session.delete(gw.url + "/v1/recipients/u-1001", headers=gw.headers)
        assert erased.status == 204
        assert await _text_holding(gw, addresses) == []
        assert await _text_holding(gw, ["+8613900000009"])  # others' history is untouched
        assert (await gw.get("/v1/recipients/u-1001")).status == 404
        events = await (await gw.get("/v1/events", params={"since": "2000-01-01T00:00:00Z"})).text()
        assert '"recipient.erased"' in events
        again = await gw.session.delete(gw.url + "/v1/recipients/u-1001", headers=gw.headers)
        assert again.status == 404
        # The opt-out outlives the erasure, kept as the address's keyed digest: the address coming back is still held.
        [kept] = (await (await gw.get("/v1/suppressions")).json())["data"]
        assert kept["address"].startswith("erased:") and kept["scope"] == "all"
        back = {"channel": "email", "to": "li@example.com", "content": {"subject": "Hi", "text": "again"}}
        response = await gw.post("/v1/messages", back)
        held = await gw.wait_status((await response.json())["id"], {"suppressed", "delivered"})
        assert (held["status"], held["reason"]) == ("suppressed", "suppressed.opt_out")


async def test_preferences_are_kept_per_category_and_channel_and_unknown_names_refused(
    start_gateway: GatewayStarter,
) -> None:
    env = {"GATEWAY_TENANTS": '{"default": {"preferences": {"marketing": {"voice": false}}}}'}
    async with start_gateway(env=env) as gw:
        url = gw.url + "/v1/recipients/u-1/preferences"
        missing = await gw.session.put(url, json={"marketing": {"sms": False}}, headers=gw.headers)
        assert missing.status == 404
        assert (await put(gw, "u-1", PROFILE)).status == 201
        for body, field in (
            ({"promotions": {"sms": False}}, "/promotions"),
            ({"marketing": {"fax": False}}, "/marketing/fax"),
        ):
            bad = await gw.session.put(url, json=body, headers=gw.headers)
            assert bad.status == 422
            assert [(e["field"], e["message"]) for e in (await bad.json())["errors"]] == [
                (field, "is not a known field")
            ]
        assert await gw.count("recipient_preferences") == 0
        done = await gw.session.put(url, json={"marketing": {"sms": False}}, headers=gw.headers)
        assert done.status == 200
        body = await done.json()
        assert body["preferences"] == {"marketing": {"sms": False}}
        assert body["effective"]["marketing"] == {
            "sms": False,
            "voice": False,
            "push": True,
            "email": True,
            "webhook": True,
        }
        assert body["effective"]["transactional"]["sms"] is True
        assert (await (await gw.session.get(url, headers=gw.headers)).json())["preferences"] == body["preferences"]


async def test_the_console_recipient_page_masks_addresses_and_shows_preferences_messages_and_suppressions(
    start_gateway: GatewayStarter,
) -> None:
    from tests.console import Console

    async with start_gateway() as gw, Console(gw) as console:
        assert (await put(gw, "u-1001", PROFILE)).status == 201
        prefs = await gw.session.put(
            gw.url + "/v1/recipients/u-1001/preferences", json={"marketing": {"sms": False}}, headers=gw.headers
        )
        assert prefs.status == 200
        sent = await gw.post("/v1/messages", {**SMS, "user_id": "u-1001"})
        await gw.wait_status((await sent.json())["id"], {"delivered"})
        assert (await gw.post("/v1/suppressions", {"address": "li@example.com"})).status == 201
        token = {"address": "fcm-token-0001", "channel": "push"}
        assert (await gw.post("/v1/suppressions", token)).status == 201
        await console.sign_in()
        status, page = await console.get("/ui/recipients/u-1001")
        assert status == 200
        for address in ("+8613812345678", "li@example.com", "fcm-token-0001"):
            assert address not in page, f"{address} shown unmasked"
        assert "+86138****5678" in page and "l***@example.com" in page and "fcm-…01" in page
        assert 'data-pref="marketing/sms">off *<' in page and 'data-pref="transactional/sms">on<' in page
        assert (await sent.json())["id"] in page
        assert "Asia/Shanghai" in page and "tier=gold" in page
        status, _ = await console.get("/ui/recipients/u-none")
        assert status == 404

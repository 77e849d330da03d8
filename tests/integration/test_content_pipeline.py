"""The content policy in the running gateway: preflight, refusal at accept, re-check at dispatch,
tenant word lists managed over the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness import SMS, GatewayStarter, Running

MOBILE = "+8613812345678"  # China Mobile: its carrier list applies
UNICOM = "+8618612345678"


async def _check(gw: Running, **body: Any) -> tuple[int, dict[str, Any]]:
    response = await gw.post("/v1/content/check", {"channel": "sms", **body})
    return response.status, await response.json()


async def test_preflight_explains_a_glued_link_and_offers_the_fix(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        text = "【好店】春季上新，点击https://t.cn/A6x进入，回T退订"
        status, report = await _check(gw, text=text, to=MOBILE)
        assert status == 200
        assert report["ok"] is False
        assert report["encoding"] == "UCS-2" and report["segments"] == 1
        [glued] = [v for v in report["violations"] if v["rule"] == "link_spacing"]
        assert text[glued["start"] : glued["end"]] == glued["match"] == "https://t.cn/A6x"
        assert glued["severity"] == "block"
        assert report["fixed_text"] == "【好店】春季上新，点击 https://t.cn/A6x 进入，回T退订"
        fixed_status, fixed = await _check(gw, text=report["fixed_text"], to=MOBILE)
        assert fixed_status == 200 and fixed["ok"] is True


async def test_blocked_words_are_found_through_evasion_and_per_carrier(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        _, evasive = await _check(gw, text="详情请加 微\u200b信 abc123")
        [word] = evasive["violations"]
        assert word["rule"] == "blocked_word" and word["match"] == "加 微\u200b信"
        _, mobile = await _check(gw, text="您的积分清零提醒", to=MOBILE)
        _, unicom = await _check(gw, text="您的积分清零提醒", to=UNICOM)
        assert mobile["ok"] is False
        assert unicom["ok"] is True, "China Mobile's list must not apply to a Unicom number"


async def test_bad_preflight_input_is_422_naming_the_field(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        for body, field in [
            ({"text": ""}, "/text"),
            ({"text": "x" * 1601}, "/text"),
            ({"text": "hi", "channel": "fax"}, "/channel"),
            ({"text": "hi", "to": "+1"}, "/to"),
            ({"text": "hi", "provider": "nobody"}, "/provider"),
            ({"text": "hi", "lang": "en"}, "/lang"),
        ]:
            status, problem = await _check(gw, **body)
            assert status == 422, body
            assert [e["field"] for e in problem["errors"]] == [field]


async def test_a_blocked_job_is_refused_at_accept_and_nothing_is_stored(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.post("/v1/messages", {**SMS, "content": {"text": "低息贷款，秒批到账"}})
        assert response.status == 422
        problem = await response.json()
        assert problem["type"] == "/problems/content-policy"
        assert {v["match"] for v in problem["violations"]} == {"低息贷款", "秒批"}
        assert problem["errors"][0]["field"] == "/content/text"
        batch = await gw.post("/v1/messages/batch", {"messages": [SMS, {**SMS, "content": {"text": "加微信领红包"}}]})
        results = (await batch.json())["results"]
        assert [r["status"] for r in results] == [202, 422]
        assert results[1]["problem"]["errors"][0]["field"] == "/messages/1/content/text"
        assert await gw.count() == 1


async def test_a_list_added_after_accept_rejects_the_job_at_dispatch(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        send_at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        job = await gw.post("/v1/messages", {**SMS, "content": {"text": "本周暗号：春风"}, "send_at": send_at})
        assert job.status == 202
        added = await gw.session.put(
            gw.url + "/v1/blocklists/promo-codes", json={"words": ["暗号"]}, headers=gw.headers
        )
        assert added.status == 201
        rejected = await gw.wait_status((await job.json())["id"], {"rejected"})
        assert rejected["reason"] == "content.blocked_word"
        assert rejected["attempts"] == []
        assert rejected["events"][-1]["detail"]["violations"][0]["match"] == "暗号"


async def test_tenant_lists_crud_audited_and_scoped(start_gateway: GatewayStarter) -> None:
    from gateway.api.auth import key_row, new_key

    async with start_gateway() as gw:
        url = gw.url + "/v1/blocklists/brand"
        created = await gw.session.put(
            url, json={"words": ["竞品A", "rival b"], "severity": "warn"}, headers=gw.headers
        )
        assert created.status == 201
        replaced = await gw.session.put(url, json={"words": ["竞品A"]}, headers=gw.headers)
        assert replaced.status == 200
        shown = await (await gw.get("/v1/blocklists/brand")).json()
        assert shown["words"] == ["竞品A"] and shown["severity"] == "block"
        _, report = await _check(gw, text="比竞品A便宜")
        assert report["ok"] is False
        other_key, key_id = new_key()
        await gw.gateway.store.add_api_key(key_row(other_key, key_id, "acme", "t", ("send",)))
        other = await gw.session.post(
            gw.url + "/v1/content/check",
            json={"channel": "sms", "text": "比竞品A便宜"},
            headers={"Authorization": f"Bearer {other_key}"},
        )
        assert (await other.json())["ok"] is True, "another tenant's list must not apply"
        for bad, field in [
            ({"words": ["ok", " "]}, "/words/1"),
            ({"words": ["a", "b", "A"]}, "/words/2"),
            ({"words": ["x"], "severity": "loud"}, "/severity"),
            ({"words": "x"}, "/words"),
        ]:
            refused = await gw.session.put(url, json=bad, headers=gw.headers)
            assert refused.status == 422, bad
            assert field in [e["field"] for e in (await refused.json())["errors"]], bad
        assert (await (await gw.get("/v1/blocklists/brand")).json())["words"] == ["竞品A"]
        assert (
            await gw.session.put(gw.url + "/v1/blocklists/Bad Name", json={"words": ["x"]}, headers=gw.headers)
        ).status == 404
        assert (await gw.session.delete(url, headers=gw.headers)).status == 204
        assert (await gw.session.delete(url, headers=gw.headers)).status == 404
        _, after = await _check(gw, text="比竞品A便宜")
        assert after["ok"] is True
        assert await gw.count("events") == 3  # created, updated, deleted


async def test_a_china_marketing_route_requires_signature_and_unsubscribe(start_gateway: GatewayStarter) -> None:
    env = {"GATEWAY_CONTENT__ROUTES": '{"sandbox": {"china_marketing": true}}'}
    async with start_gateway(env) as gw:
        _, bare = await _check(gw, text="春季上新，全场五折", provider="sandbox")
        assert {v["rule"] for v in bare["violations"]} >= {"signature_missing", "unsubscribe_missing"}
        _, proper = await _check(gw, text="【好店】春季上新，全场五折，拒收请回复R", provider="sandbox")
        assert proper["ok"] is True
        assert (proper["route"], proper["china_marketing"]) == ("sandbox", True)
        # Without a provider, the rules of the route the channel goes by (the sandbox): as at accept.
        _, unnamed = await _check(gw, text="春季上新，全场五折")
        assert {v["rule"] for v in unnamed["violations"]} == {"signature_missing", "unsubscribe_missing"}
        assert (unnamed["ok"], unnamed["route"], unnamed["china_marketing"]) == (False, "sandbox", True)
        _, transactional = await _check(gw, text="您的验证码是 1234", category="transactional")
        assert {v["rule"] for v in transactional["violations"]} == {"signature_missing"}


async def test_the_china_rules_of_the_route_refuse_a_job_at_accept_plain_or_templated(
    start_gateway: GatewayStarter,
) -> None:
    routes = '{"sandbox": {"china_marketing": true}, "other": {"china_marketing": false}}'
    async with start_gateway({"GATEWAY_CONTENT__ROUTES": routes}) as gw:
        refused = await gw.post("/v1/messages", {**SMS, "to": MOBILE, "content": {"text": "春季上新，全场五折"}})
        assert refused.status == 422
        assert [(e["field"], e["message"].split(":")[0]) for e in (await refused.json())["errors"]] == [
            ("/content/text", "signature_missing"),
            ("/content/text", "unsubscribe_missing"),
        ]
        template = {
            "name": "sale",
            "variables": {"pct": {"type": "integer", "required": True, "example": 5}},
            "channels": {"sms": {"text": "春季上新，全场{{ pct }}折"}},
        }
        assert (await gw.post("/v1/templates", template)).status == 201
        lint = await gw.post("/v1/templates/sale/publish", None)
        assert lint.status == 422
        assert {(f["rule"], f["route"]) for f in (await lint.json())["findings"]} == {
            ("signature_missing", "sandbox"),
            ("unsubscribe_missing", "sandbox"),
        }
        await gw.session.patch(
            gw.url + "/v1/templates/sale",
            json={"channels": {"sms": {"text": "【好店】春季上新，全场{{ pct }}折，拒收请回复R"}}},
            headers=gw.headers,
        )
        assert (await gw.post("/v1/templates/sale/publish", None)).status == 201
        job = {"channel": "sms", "to": MOBILE, "template": "sale", "params": {"pct": 5}}
        accepted = await gw.post("/v1/messages", job)
        assert accepted.status == 202, await accepted.text()
        proper = {**SMS, "to": MOBILE, "content": {"text": "【好店】春季上新，全场五折，拒收请回复R"}}
        assert (await gw.post("/v1/messages", proper)).status == 202
        assert await gw.count("messages") == 2

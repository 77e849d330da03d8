"""A message with several texts (an e-mail's subject and text, a push's title and body) is checked
field by field: each violation names its own field, and each field gets its own fixed text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness import SMS, GatewayStarter

EMAIL = {"channel": "email", "to": "reader@example.com", "content": {"subject": "Hello", "text": "See you"}}
PUSH = {"channel": "push", "to": "device-token-1", "content": {"title": "Hi", "body": "New in store"}}


def _fields(problem: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(v["field"], v["rule"], v["match"]) for v in problem["violations"]]


async def test_an_email_is_refused_naming_the_subject_and_the_text_each_with_its_fix(
    start_gateway: GatewayStarter,
) -> None:
    content = {"subject": "加微信领红包", "text": "详情见https://t.cn/A6x，欢迎"}
    async with start_gateway() as gw:
        response = await gw.post("/v1/messages", {**EMAIL, "content": content})
        assert response.status == 422
        problem = await response.json()
        assert [e["field"] for e in problem["errors"]] == ["/content/subject", "/content/text"]
        assert _fields(problem) == [
            ("/content/subject", "blocked_word", "加微信"),
            ("/content/text", "link_spacing", "https://t.cn/A6x"),
        ]
        subject_word, text_link = problem["violations"]
        assert content["subject"][subject_word["start"] : subject_word["end"]] == "加微信"
        assert content["text"][text_link["start"] : text_link["end"]] == "https://t.cn/A6x"
        assert problem["fixed"] == {"subject": "加微信领红包", "text": "详情见 https://t.cn/A6x ，欢迎"}
        assert problem["fixed_text"] == "详情见 https://t.cn/A6x ，欢迎"
        assert await gw.count() == 0


async def test_a_push_title_violation_is_reported_at_the_title(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.post("/v1/messages", {**PUSH, "content": {"title": "低息贷款", "body": "点击查看"}})
        assert response.status == 422
        problem = await response.json()
        assert _fields(problem) == [("/content/title", "blocked_word", "低息贷款")]
        assert problem["fixed"] == {"title": "低息贷款", "body": "点击查看"}
        batch = await gw.post(
            "/v1/messages/batch", {"messages": [SMS, {**EMAIL, "content": {"subject": "贷款", "text": "hi"}}]}
        )
        results = (await batch.json())["results"]
        assert [r["status"] for r in results] == [202, 422]
        assert [e["field"] for e in results[1]["problem"]["errors"]] == ["/messages/1/content/subject"]
        assert await gw.count() == 1


async def test_preflight_checks_a_jobs_content_field_by_field(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        response = await gw.post(
            "/v1/content/check",
            {"channel": "email", "content": {"subject": "春季上新t.cn/x", "text": "全场五折，加 微 信"}},
        )
        assert response.status == 200
        report = await response.json()
        assert report["ok"] is False
        assert _fields(report) == [
            ("/content/subject", "link_spacing", "t.cn/x"),
            ("/content/text", "blocked_word", "加 微 信"),
        ]
        assert report["fixed"] == {"subject": "春季上新 t.cn/x", "text": "全场五折，加 微 信"}
        assert report["fixed_text"] == "全场五折，加 微 信"
        # One text, as before: its violations are at /text, and `fixed` has that one field.
        single = await (await gw.post("/v1/content/check", {"channel": "sms", "text": "点击t.cn/x"})).json()
        assert [v["field"] for v in single["violations"]] == ["/text"]
        assert single["fixed"] == {"text": single["fixed_text"]} == {"text": "点击 t.cn/x"}


async def test_preflight_refuses_content_it_cannot_check_naming_the_field(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        for body, field in [
            ({"channel": "email", "text": "hi", "content": {"subject": "a", "text": "b"}}, "/content"),
            ({"channel": "email", "content": {"subject": "a", "html": "<p>b</p>"}}, "/content/html"),
            ({"channel": "push", "content": {"title": 3}}, "/content/title"),
            ({"channel": "push", "content": {"title": " ", "body": ""}}, "/content"),
            ({"channel": "webhook", "content": {"payload": "x"}}, "/content"),
            ({"channel": "sms", "content": "hi"}, "/content"),
        ]:
            response = await gw.post("/v1/content/check", body)
            assert response.status == 422, body
            assert [e["field"] for e in (await response.json())["errors"]] == [field], body


async def test_a_list_added_after_accept_rejects_an_email_naming_its_subject(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        send_at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        content = {"subject": "本周暗号", "text": "春风"}
        job = await gw.post("/v1/messages", {**EMAIL, "content": content, "send_at": send_at})
        assert job.status == 202
        added = await gw.session.put(gw.url + "/v1/blocklists/codes", json={"words": ["暗号"]}, headers=gw.headers)
        assert added.status == 201
        rejected = await gw.wait_status((await job.json())["id"], {"rejected"})
        assert rejected["reason"] == "content.blocked_word"
        [violation] = rejected["events"][-1]["detail"]["violations"]
        assert (violation["field"], violation["start"], violation["end"]) == ("/content/subject", 2, 4)


async def test_a_push_body_or_an_email_longer_than_an_sms_is_taken_up_to_its_own_limit(
    start_gateway: GatewayStarter,
) -> None:
    # The content policy's hard maximum (1,600) is the SMS one; a push body may be 4,096 characters
    # and an e-mail's text 200,000, as the document says.
    async with start_gateway() as gw:
        push = await gw.post("/v1/messages", {**PUSH, "content": {"title": "Hi", "body": "a" * 4096}})
        email = await gw.post("/v1/messages", {**EMAIL, "content": {"subject": "Hi", "text": "b" * 20_000}})
        assert (push.status, email.status) == (202, 202)
        too_long = await gw.post("/v1/messages", {**PUSH, "content": {"title": "Hi", "body": "a" * 4097}})
        assert too_long.status == 422
        assert [e["field"] for e in (await too_long.json())["errors"]] == ["/content/body"]

"""Preflight and accept flag hidden bidi and C1 control characters as warnings, with their spans."""

from __future__ import annotations

from tests.harness import SMS, GatewayStarter


async def test_preflight_flags_a_bidi_override_in_a_link_and_a_c1_control(start_gateway: GatewayStarter) -> None:
    text = "订单已发货\u2067TS123\u2069，详情 https://t.cn/A6x 查询\x85"
    async with start_gateway() as gw:
        response = await gw.post("/v1/content/check", {"channel": "sms", "text": text})
        assert response.status == 200
        report = await response.json()
        assert report["ok"] is True
        assert [(v["rule"], v["severity"], v["start"], v["end"], v["match"]) for v in report["violations"]] == [
            ("hidden_control", "warn", 5, 6, "\u2067"),
            ("hidden_control", "warn", 11, 12, "\u2069"),
            ("hidden_control", "warn", 35, 36, "\x85"),
        ]
        assert "U+2067 RIGHT-TO-LEFT ISOLATE" in report["violations"][0]["message"]
        assert report["fixed_text"] == "订单已发货TS123，详情 https://t.cn/A6x 查询"
        # A warning does not refuse the job.
        accepted = await gw.post("/v1/messages", {**SMS, "content": {"text": text}})
        assert accepted.status == 202

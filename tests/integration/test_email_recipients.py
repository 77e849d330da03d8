"""E-mail recipients with a display name or an internationalised address, accepted through the API and
delivered by the SMTP adapter to a real SMTP server (aiosmtpd) with the To header correctly encoded."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.smtp import FakeSmtp
from tests.harness import GatewayStarter

EMAIL = {"subject": "您好", "text": "欢迎回来"}


def smtp_env(server: FakeSmtp) -> dict[str, str]:
    account = {
        "host": "127.0.0.1",
        "port": server.port,
        "from_address": "news@shop.example",
        "username": server.username,
        "password": server.password,
        "ca_file": str(server.cert),
        "timeout": 3.0,
    }
    return {"GATEWAY_PROVIDERS": json.dumps({"smtp": account}), "GATEWAY_SANDBOX__ENABLED": "false"}


async def test_a_display_name_and_an_idn_domain_reach_the_mailbox(
    start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    with FakeSmtp(tmp_path) as server:
        async with start_gateway(smtp_env(server)) as gw:
            job = {"channel": "email", "to": "张三 <Zhang@例子.中国>", "content": EMAIL, "category": "transactional"}
            response = await gw.post("/v1/messages", job)
            assert response.status == 202, await response.text()
            accepted = await response.json()
            assert accepted["to"] == "Zhang@例子.中国"
            sent = await gw.wait_status(accepted["id"], {"sent"})
            assert sent["content"]["to_name"] == "张三"
            [mail] = server.handler.delivered
            assert mail.rcpt_tos == ["Zhang@xn--fsqu00a.xn--fiqs8s"]
            assert b"\r\nTo: =?utf-8?b?5byg5LiJ?= <Zhang@xn--fsqu00a.xn--fiqs8s>\r\n" in mail.raw

            punycode = await gw.post("/v1/messages", {**job, "to": "Zhang@XN--FSQU00A.xn--fiqs8s"})
            assert (await punycode.json())["to"] == "Zhang@例子.中国", "one stored form however it is written"
            listed = await (await gw.get("/v1/messages", params={"to": "Zhang@例子.中国"})).json()
            assert len(listed["data"]) == 2


async def test_a_non_ascii_mailbox_fails_for_good_where_the_relay_lacks_smtputf8(
    start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    with FakeSmtp(tmp_path) as server:
        async with start_gateway(smtp_env(server)) as gw:
            job = {"channel": "email", "to": "用户@例子.中国", "content": EMAIL, "category": "transactional"}
            response = await gw.post("/v1/messages", job)
            assert response.status == 202, await response.text()
            failed = await gw.wait_status((await response.json())["id"], {"failed"})
            assert failed["reason"] == "provider.permanent.smtputf8_unsupported"
            assert "SMTPUTF8" in failed["error_message"]
            assert server.handler.delivered == []

"""Jobs rendered from a template with provider ids, dispatched by a `Worker` on a real SQLite store to
the Tencent Cloud and Alibaba Cloud adapters, against fakes that check their signatures."""

from __future__ import annotations

from pathlib import Path

import orjson

from gateway.domain.models import DISPATCHABLE, Status
from gateway.link_tracking import LinkTracker
from gateway.state.memory import MemoryState
from providers.aliyun import AliyunSettings, AliyunSmsProvider
from providers.base import Provider
from providers.tencent import TencentSettings, TencentSmsProvider
from tests.fakes.aliyun import FakeAliyunSms
from tests.fakes.tencent import FakeTencentSms
from tests.integration.direct import build_worker, message_row, running, sqlite_store, wait_for_status

MOBILE = "+8613800138000"
TEXT = "【腾讯云】张三，您的验证码是 1234，5 分钟内有效"


def handed_over(status: str) -> bool:
    return status not in DISPATCHABLE and status != Status.SENDING


def tencent_for(fake: FakeTencentSms) -> TencentSmsProvider:
    return TencentSmsProvider(
        TencentSettings(
            secret_id=fake.secret_id,
            secret_key=fake.secret_key,
            sms_sdk_app_id=fake.sdk_app_id,
            sign_name="腾讯云",
            endpoint=fake.url,
            timeout=2.0,
        )
    )


async def dispatched(
    tmp_path: Path, provider: Provider, content: dict[str, object], links: LinkTracker | None = None
) -> dict[str, object]:
    await provider.start()
    try:
        async with sqlite_store(tmp_path) as store:
            row = message_row(to_addr=MOBILE, category="transactional", content=orjson.dumps(content).decode())
            await store.accept([row])
            async with running(build_worker(store, MemoryState(), [provider], links=links)):
                stored = await wait_for_status(store, row["id"], handed_over)
                return {**stored, "links": await store.message_links(row["id"])}
    finally:
        await provider.close()


def aliyun_for(fake: FakeAliyunSms) -> AliyunSmsProvider:
    fake.templates["SMS_465000001"] = ("name", "url")
    fake.sign_names.add("小店")
    settings = AliyunSettings(
        access_key_id=fake.access_key_id,
        access_key_secret=fake.access_key_secret,
        sign_name="阿里云短信测试",
        endpoint=fake.url,
        timeout=2.0,
    )
    return AliyunSmsProvider(settings)


SHIPPED = {
    "text": "【小店】张三，您的订单已发货 https://shop.example.com/o/1",
    "template_params": {"name": "张三", "url": "https://shop.example.com/o/1"},
    "provider_templates": {"aliyun": {"template_code": "SMS_465000001", "sign_name": "小店"}},
}


async def test_a_rendered_job_reaches_the_tencent_fake_correctly_signed(tmp_path: Path) -> None:
    content = {
        "text": TEXT,
        "template_params": {"code": "1234", "minutes": "5"},
        "provider_templates": {"tencent": {"template_id": "449739"}},
    }
    async with FakeTencentSms() as fake:
        stored = await dispatched(tmp_path, tencent_for(fake), content)
        assert stored["status"] == Status.SENT, stored.get("reason")
        assert stored["provider"] == "tencent" and stored["provider_message_id"] in fake.sent
        assert fake.sent[str(stored["provider_message_id"])]["TemplateParamSet"] == ["1234", "5"]
        assert len(fake.requests) == 1, "one request, and the fake's signature check let it through"


async def test_a_free_text_job_for_tencent_fails_for_good_without_a_call(tmp_path: Path) -> None:
    async with FakeTencentSms() as fake:
        stored = await dispatched(tmp_path, tencent_for(fake), {"text": TEXT})
        assert stored["status"] == Status.FAILED
        assert stored["error_code"] == "template_required"
        assert fake.requests == []


async def test_a_rendered_job_sends_its_aliyun_template_code_and_params(tmp_path: Path) -> None:
    async with FakeAliyunSms() as fake:
        stored = await dispatched(tmp_path, aliyun_for(fake), SHIPPED)
        assert stored["status"] == Status.SENT, stored.get("reason")
        params = fake.sent[str(stored["provider_message_id"])]
        assert (params["TemplateCode"], params["SignName"]) == ("SMS_465000001", "小店")
        assert orjson.loads(params["TemplateParam"]) == {"name": "张三", "url": "https://shop.example.com/o/1"}


async def test_a_link_given_as_a_template_variable_is_tracked_like_one_in_the_text(tmp_path: Path) -> None:
    tracker = LinkTracker("https://go.example", "per_message", {}, b"k" * 32)
    async with FakeAliyunSms() as fake:
        stored = await dispatched(tmp_path, aliyun_for(fake), SHIPPED, links=tracker)
        assert stored["status"] == Status.SENT, stored.get("reason")
        sent = orjson.loads(fake.sent[str(stored["provider_message_id"])]["TemplateParam"])
        assert sent["name"] == "张三"
        assert sent["url"].startswith("https://go.example/c/"), sent
        links = stored["links"]
        assert isinstance(links, list)
        # The text and the variable carry the same link: one row, clicked through either.
        assert [(f"https://go.example/c/{link['token']}", link["url"]) for link in links] == [
            (sent["url"], "https://shop.example.com/o/1")
        ]

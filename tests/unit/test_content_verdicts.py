"""The content service keeps verdicts for copy it has seen; a kept verdict must never outlive the
lists, tenant, category or field it was given for."""

from __future__ import annotations

from gateway.content_service import VERDICTS_KEPT, ContentService
from gateway.domain.content import WordLists
from gateway.settings import ContentSettings

SALE = {"text": "Flash sale: 50% off everything until Sunday"}


def service(lists: dict[str, tuple[list[str], str]] | None = None) -> ContentService:
    content = ContentService(ContentSettings(blocklist_dir=""), store=None)
    content.words = WordLists.build(lists or {})  # type: ignore[arg-type]
    return content


def verdict(content: ContentService, body: dict[str, object], tenant: str = "acme", category: str = "marketing"):  # type: ignore[no-untyped-def]
    return content.check_message(channel="sms", content=body, tenant_id=tenant, category=category)


def test_lists_swapped_in_change_the_verdict_on_copy_seen_before() -> None:
    content = service()
    assert verdict(content, SALE).ok
    content.words = WordLists.build({"global": (["flash sale"], "block")})
    report = verdict(content, SALE)
    assert not report.ok and [v.match for v in report.violations] == ["Flash sale"]


def test_a_tenants_list_applies_to_that_tenant_only_with_verdicts_kept() -> None:
    content = service({"tenant:acme": (["sunday"], "block")})
    assert not verdict(content, SALE, tenant="acme").ok
    assert verdict(content, SALE, tenant="globex").ok
    assert not verdict(content, SALE, tenant="acme").ok


def test_the_verdict_follows_the_text_and_the_field() -> None:
    content = service({"global": (["casino"], "block")})
    assert verdict(content, SALE).ok
    assert not verdict(content, {"text": "Casino night: 50% off"}).ok
    push = content.check_message(channel="push", content={"title": "Casino", "body": "Tonight"}, tenant_id="acme")
    assert push is not None and [v.field for v in push.violations] == ["title"]
    swapped = content.check_message(channel="push", content={"title": "Tonight", "body": "Casino"}, tenant_id="acme")
    assert swapped is not None and [v.field for v in swapped.violations] == ["body"]


def test_kept_verdicts_are_bounded() -> None:
    content = service({"global": (["casino"], "block")})
    for n in range(VERDICTS_KEPT + 100):
        assert verdict(content, {"text": f"Your code is {n}"}).ok
    assert not verdict(content, {"text": "casino"}).ok
    assert 0 < len(content._verdicts) <= VERDICTS_KEPT


MOBILE, UNICOM = "+8613812345678", "+8613012345678"  # China Mobile's and China Unicom's blocks


def sms_verdict(content: ContentService, text: str, to: str):  # type: ignore[no-untyped-def]
    return content.check_message(channel="sms", content={"text": text}, tenant_id="acme", to=to)


def test_a_carriers_list_applies_to_its_numbers_only_and_a_list_swapped_in_reaches_copy_seen_before() -> None:
    content = service({"carrier:china_mobile": (["中奖"], "block")})
    assert not sms_verdict(content, "恭喜中奖", MOBILE).ok
    assert sms_verdict(content, "恭喜中奖", UNICOM).ok
    # Copy without a carrier's word is judged without the carrier: the same for both.
    assert sms_verdict(content, "积分清零提醒", MOBILE).ok and sms_verdict(content, "积分清零提醒", UNICOM).ok
    content.words = WordLists.build({"carrier:china_mobile": (["中奖", "积分清零"], "block")})
    blocked = sms_verdict(content, "积分清零提醒", MOBILE)
    assert not blocked.ok and [v.match for v in blocked.violations] == ["积分清零"]
    assert sms_verdict(content, "积分清零提醒", UNICOM).ok

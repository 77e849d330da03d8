"""What a job must carry for a provider that sends registered templates only (providers/templates.py)."""

from __future__ import annotations

from providers.base import Capabilities
from providers.templates import has_template_for, sendable_by, template_ids, template_params

SMS = frozenset({"sms"})
TEMPLATES_ONLY = Capabilities(SMS, requires_registered_template=True, template_id_keys=frozenset({"template_id"}))
FREE_TEXT = Capabilities(SMS, template_id_keys=frozenset({"template_code"}))
RENDERED = {
    "text": "张三，您的订单已发货",
    "template_params": {"name": "张三", "count": 3, "note": None},
    "provider_templates": {"tencent": {"template_id": "449739", "sign_name": ""}, "aliyun": "SMS_1"},
}


def test_ids_are_read_for_the_named_provider_only_and_blank_ids_dropped() -> None:
    assert template_ids(RENDERED, "tencent") == {"template_id": "449739"}
    assert template_ids(RENDERED, "tencent_marketing") == {}
    assert template_ids(RENDERED, "aliyun") == {}, "an entry that is not a table of ids is none"
    assert template_ids({"text": "hi"}, "tencent") == {}


def test_params_are_strings_in_the_declared_order() -> None:
    assert list(template_params(RENDERED).items()) == [("name", "张三"), ("count", "3"), ("note", "")]
    assert template_params({"text": "hi"}) == {}


def test_a_templates_only_provider_can_send_a_job_only_with_its_ids() -> None:
    assert sendable_by(TEMPLATES_ONLY, RENDERED, "tencent")
    assert not sendable_by(TEMPLATES_ONLY, RENDERED, "tencent_marketing")
    assert not sendable_by(TEMPLATES_ONLY, {"text": "您的订单已发货"}, "tencent")
    missing_id = {"provider_templates": {"tencent": {"sign_name": "小店"}}}
    assert not sendable_by(TEMPLATES_ONLY, missing_id, "tencent"), "ids without the template id itself"


def test_a_free_text_provider_can_send_anything_and_says_whether_a_template_is_named() -> None:
    assert sendable_by(FREE_TEXT, {"text": "hi"}, "aliyun")
    assert not has_template_for(FREE_TEXT, {"text": "hi"}, "aliyun")
    assert has_template_for(FREE_TEXT, {"provider_templates": {"aliyun": {"template_code": "SMS_1"}}}, "aliyun")

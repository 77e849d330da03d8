"""Template files and the version diff, without the store: what a pulled file reads back as, what
TOML cannot hold, and how two versions' bodies are compared."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.domain.template_diff import diff_contents
from gateway.template_files import TemplateFileError, read_template_file, template_toml

DRAFT = {
    "description": "",
    "category": "transactional",
    "variables": {"code": {"type": "string", "required": True, "max_length": 8, "example": "1234"}},
    "channels": {
        "sms": {"text": "Your code is {{ code }}\nValid 5 minutes"},
        "webhook": {"json": {"code": "{{ code }}", "tries": [1, 2], "ok": True}},
    },
    "locales": {"zh-CN": {"sms": {"text": "验证码 {{ code }}"}}},
    "providers": {},
}


def test_a_written_file_reads_back_as_the_same_draft(tmp_path: Path) -> None:
    path = tmp_path / "login_code.toml"
    path.write_text(template_toml(DRAFT), encoding="utf-8")
    read = read_template_file(path)
    assert read.name == "login_code"
    assert read.draft == {k: v for k, v in DRAFT.items() if k != "providers"} | {"providers": {}}
    assert "providers" not in path.read_text(encoding="utf-8")  # empty fields are left out


def test_a_webhook_body_holding_null_cannot_be_written() -> None:
    draft = {**DRAFT, "channels": {"webhook": {"json": {"coupon": None}}}}
    with pytest.raises(ValueError) as refused:
        template_toml(draft)
    assert str(refused.value) == "/channels/webhook/json/coupon: is null, which TOML cannot hold"


def test_a_field_of_the_wrong_type_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "login_code.toml"
    path.write_text(template_toml(DRAFT).replace("max_length = 8", 'max_length = "eight"'), encoding="utf-8")
    with pytest.raises(TemplateFileError) as refused:
        read_template_file(path)
    assert [field for field, _ in refused.value.problems] == ["/variables/code/max_length"]
    assert str(refused.value).startswith(f"{path}: /variables/code/max_length: ")


def test_the_diff_marks_each_changed_line_per_body() -> None:
    newer = {**DRAFT, "channels": {**DRAFT["channels"], "sms": {"text": "Your code is {{ code }}\nValid 10 minutes"}}}
    diffs = {d.section: d for d in diff_contents(DRAFT, newer)}
    assert list(diffs) == ["variables", "sms", "webhook", "zh-CN/sms"]
    assert diffs["sms"].lines == (
        (" ", "text: Your code is {{ code }}"),
        ("-", "  Valid 5 minutes"),
        ("+", "  Valid 10 minutes"),
    )
    assert not diffs["webhook"].changed and not diffs["zh-CN/sms"].changed
    removed = {d.section: d for d in diff_contents(DRAFT, {**DRAFT, "locales": {}})}["zh-CN/sms"]
    assert removed.lines == (("-", "text: 验证码 {{ code }}"),)

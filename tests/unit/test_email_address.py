"""E-mail recipients: display names, internationalised addresses, one stored form (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.email_address import Mailbox, _checked, parse_mailbox


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ann@example.com", Mailbox("ann@example.com")),
        ("Ann.Lee@Example.COM", Mailbox("Ann.Lee@example.com")),
        ("张三 <a@b.cn>", Mailbox("a@b.cn", "张三")),
        ('"Lee, Ann" <ann@Example.com>', Mailbox("ann@example.com", "Lee, Ann")),
        ("J. Smith <j@x.com>", Mailbox("j@x.com", "J. Smith")),
        ("<a@b.cn>", Mailbox("a@b.cn")),
        ("用户@例子.中国", Mailbox("用户@例子.中国")),
        ("a@XN--FSQU00A.xn--fiqs8s", Mailbox("a@例子.中国")),
        ("a@例子。中国", Mailbox("a@例子.中国")),
    ],
)
def test_recipients_people_write_are_taken_in_one_stored_form(raw: str, expected: Mailbox) -> None:
    assert parse_mailbox(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "not-an-address",
        "a..b@example.com",
        "a@localhost",
        "a@example.test",
        "a@b.cn, c@d.cn",
        "x <a@b.cn> y",
        "x\n <a@b.cn>",
        "a@[127.0.0.1]",
        "a@exa_mple.com",
        "a@ab--cd.com",
        "x" * 300 + " <a@b.cn>",
    ],
)
def test_what_is_not_one_mailbox_is_refused(raw: str) -> None:
    assert parse_mailbox(raw) is None


ADDRESSES = st.from_regex(
    r"\A[A-Za-z0-9.!#%+_~-]{1,12}@(?:[A-Za-z0-9-]{1,8}\.){1,3}(?:[A-Za-z]{1,6}|[0-9]{2}|test|local|xn--fiqs8s)\Z"
)


@settings(max_examples=400)
@given(st.one_of(ADDRESSES, st.text(max_size=40)))
def test_the_fast_path_answers_as_email_validator_does(raw: str) -> None:
    assert parse_mailbox(raw) == _checked(raw)

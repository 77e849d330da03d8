"""SMTP adapter against a real SMTP server (aiosmtpd) with AUTH and TLS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from providers.base import ErrorKind
from providers.smtp import SmtpProvider, SmtpSettings, reply_kind
from tests.fakes.smtp import FakeSmtp
from tests.integration.providers.conftest import outbound
from tests.servers import free_port

EMAIL = {"subject": "We miss you", "text": "Come back for 10% off", "html": "<p>Come back for <b>10%</b> off</p>"}


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[FakeSmtp]:
    with FakeSmtp(tmp_path) as server:
        yield server


def settings_for(server: FakeSmtp, **overrides: object) -> SmtpSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "from_address": "news@shop.example",
        "username": server.username,
        "password": server.password,
        "ca_file": str(server.cert),
        "timeout": 3.0,
        "unsubscribe_url": "https://shop.example/unsubscribe?m={reference}",
        "unsubscribe_mailto": "unsubscribe@shop.example",
        **overrides,
    }
    return SmtpSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def provider(smtp: FakeSmtp) -> AsyncIterator[SmtpProvider]:
    adapter = SmtpProvider(settings_for(smtp))
    await adapter.start()
    yield adapter
    await adapter.close()


async def test_marketing_mail_goes_over_starttls_with_auth_and_one_click_unsubscribe(
    provider: SmtpProvider, smtp: FakeSmtp
) -> None:
    result = await provider.send(outbound("email", "ana@example.org", EMAIL, category="marketing"))
    assert result.accepted and result.provider_message_id == "<msg_01HZX3@shop.example>"
    [mail] = smtp.handler.delivered
    assert mail.tls and mail.authenticated_as == "relay"
    assert (mail.mail_from, mail.rcpt_tos) == ("news@shop.example", ["ana@example.org"])
    message = mail.message
    assert message["Message-ID"] == "<msg_01HZX3@shop.example>"
    assert message["List-Unsubscribe"] == (
        "<https://shop.example/unsubscribe?m=msg_01HZX3>, "
        "<mailto:unsubscribe@shop.example?subject=unsubscribe%20msg_01HZX3>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    parts = {part.get_content_type(): part.get_payload(decode=True) for part in message.walk()}
    assert b"Come back for 10% off" in parts["text/plain"] and b"<b>10%</b>" in parts["text/html"]


async def test_transactional_mail_has_no_unsubscribe_headers(provider: SmtpProvider, smtp: FakeSmtp) -> None:
    assert (await provider.send(outbound("email", "ana@example.org", EMAIL, category="transactional"))).accepted
    message = smtp.handler.delivered[0].message
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None


# aiosmtpd cannot tell that an implicit-TLS session is encrypted, so it warns about AUTH without TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_implicit_tls(tmp_path: Path) -> None:
    with FakeSmtp(tmp_path, mode="tls") as server:
        adapter = SmtpProvider(settings_for(server, security="tls"))
        await adapter.start()
        assert (await adapter.send(outbound("email", "ana@example.org", EMAIL))).accepted
    assert server.handler.delivered[0].tls


async def test_an_untrusted_certificate_is_not_accepted(smtp: FakeSmtp) -> None:
    adapter = SmtpProvider(settings_for(smtp, ca_file=None))
    await adapter.start()
    result = await adapter.send(outbound("email", "ana@example.org", EMAIL))
    assert result.error is not None and (result.error.kind, result.error.code) == (ErrorKind.TRANSIENT, "tls_failed")
    assert smtp.handler.delivered == []


async def test_wrong_credentials_are_transient(smtp: FakeSmtp) -> None:
    adapter = SmtpProvider(settings_for(smtp, password="nope"))
    await adapter.start()
    result = await adapter.send(outbound("email", "ana@example.org", EMAIL))
    assert result.error is not None and (result.error.kind, result.error.code) == (ErrorKind.TRANSIENT, "535 5.7.8")
    assert smtp.handler.delivered == []


@pytest.mark.parametrize(
    ("reply", "kind", "code"),
    [
        (
            "550 5.1.1 <x@example.org>: Recipient address rejected: User unknown",
            ErrorKind.RECIPIENT_INVALID,
            "550 5.1.1",
        ),
        ("450 4.2.1 Mailbox busy, try later", ErrorKind.TRANSIENT, "450 4.2.1"),
        ("554 5.7.1 Relay access denied", ErrorKind.PERMANENT, "554 5.7.1"),
        ("553 mailbox name not allowed", ErrorKind.RECIPIENT_INVALID, "553"),
    ],
)
async def test_recipient_refusals_are_classed(
    provider: SmtpProvider, smtp: FakeSmtp, reply: str, kind: ErrorKind, code: str
) -> None:
    smtp.handler.refused["x@example.org"] = reply
    result = await provider.send(outbound("email", "x@example.org", EMAIL))
    assert result.error is not None and (result.error.kind, result.error.code) == (kind, code)


@pytest.mark.parametrize(
    ("reply", "kind"),
    [("451 4.3.0 Temporary failure", ErrorKind.TRANSIENT), ("552 5.3.4 Message too big", ErrorKind.PERMANENT)],
)
async def test_data_refusals_are_classed(provider: SmtpProvider, smtp: FakeSmtp, reply: str, kind: ErrorKind) -> None:
    smtp.handler.data_replies.append(reply)
    result = await provider.send(outbound("email", "ana@example.org", EMAIL))
    assert result.error is not None and result.error.kind == kind


async def test_an_unreachable_relay_is_transient() -> None:
    adapter = SmtpProvider(SmtpSettings(host="127.0.0.1", port=free_port(), from_address="a@b.example", timeout=1.0))
    await adapter.start()
    result = await adapter.send(outbound("email", "ana@example.org", EMAIL))
    assert result.error is not None and (result.error.kind, result.error.code) == (
        ErrorKind.TRANSIENT,
        "connect_failed",
    )


def test_reply_codes_without_enhanced_status() -> None:
    assert reply_kind(421, "Service not available") == (ErrorKind.TRANSIENT, "421")
    assert reply_kind(550, "No such user") == (ErrorKind.PERMANENT, "550")
    assert reply_kind(599, "odd") == (ErrorKind.PERMANENT, "599")


def test_the_password_stays_out_of_repr() -> None:
    settings = SmtpSettings(host="h", from_address="a@b.example", password="hunter2")
    assert "hunter2" not in repr(settings) and "hunter2" not in repr(SmtpProvider(settings))


async def test_a_display_name_and_an_idn_domain_are_encoded_in_the_to_header(
    provider: SmtpProvider, smtp: FakeSmtp
) -> None:
    content = {**EMAIL, "to_name": "张三"}
    assert (await provider.send(outbound("email", "zhang@例子.中国", content))).accepted
    [mail] = smtp.handler.delivered
    assert mail.rcpt_tos == ["zhang@xn--fsqu00a.xn--fiqs8s"]
    assert not any(option.upper() == "SMTPUTF8" for option in mail.mail_options), "an ASCII mailbox needs no SMTPUTF8"
    assert b"\r\nTo: =?utf-8?b?5byg5LiJ?= <zhang@xn--fsqu00a.xn--fiqs8s>\r\n" in mail.raw
    assert mail.raw.isascii()
    assert (mail.message["To"].addresses[0].display_name, mail.message["To"].addresses[0].domain) == (
        "张三",
        "xn--fsqu00a.xn--fiqs8s",
    )


async def test_a_non_ascii_mailbox_goes_with_smtputf8_where_the_relay_offers_it(tmp_path: Path) -> None:
    with FakeSmtp(tmp_path, smtputf8=True) as server:
        adapter = SmtpProvider(settings_for(server))
        await adapter.start()
        result = await adapter.send(outbound("email", "用户@例子.中国", {**EMAIL, "to_name": "张三"}))
        assert result.accepted, result.error
        [mail] = server.handler.delivered
        assert "SMTPUTF8" in [option.upper() for option in mail.mail_options]
        assert mail.rcpt_tos == ["用户@例子.中国"]
        assert "\r\nTo: 张三 <用户@例子.中国>\r\n".encode() in mail.raw


async def test_a_non_ascii_mailbox_fails_for_good_with_a_clear_reason_where_the_relay_lacks_smtputf8(
    provider: SmtpProvider, smtp: FakeSmtp
) -> None:
    result = await provider.send(outbound("email", "用户@例子.中国", EMAIL))
    assert result.error is not None
    assert (result.error.kind, result.error.code) == (ErrorKind.PERMANENT, "smtputf8_unsupported")
    assert "not ASCII" in result.error.message and "SMTPUTF8" in result.error.message
    assert smtp.handler.delivered == []

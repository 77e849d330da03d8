"""E-mail over an SMTP relay (aiosmtplib): implicit TLS or STARTTLS, AUTH, one-click unsubscribe.

Marketing mail carries `List-Unsubscribe` (an HTTPS link and/or a mailto) and, with an HTTPS link,
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), which large mailbox providers
require of bulk senders. RFC 8058 also wants those headers covered by a DKIM signature: the relay
(or the sending domain's MTA) signs; this adapter does not.

The Message-ID is derived from our message id and stays the same across retries, so a mailbox
that already got the message can recognise a resend as a duplicate.

SMTP replies are classed by their enhanced status code (RFC 3463) when the server gives one, else
by the reply code: 4xx is transient, 5xx permanent, a bad mailbox (5.1.1 and kin) means the
recipient address is invalid.
"""

from __future__ import annotations

import re
import ssl
import time
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal
from urllib.parse import quote

import aiosmtplib
from email_validator import EmailNotValidError, validate_email

from providers.base import (
    Capabilities,
    ErrorKind,
    InboundMessage,
    InboundRequest,
    JsonCallbackAnswers,
    Lookup,
    Outbound,
    ProviderError,
    ProviderType,
    Receipt,
    SendResult,
    SignatureError,
    setting,
)
from providers.http import HandoffUnknown

# Enhanced status codes (RFC 3463 / IANA registry) that say more than the reply code.
ENHANCED_KINDS: dict[str, ErrorKind] = {
    "5.1.1": ErrorKind.RECIPIENT_INVALID,  # bad destination mailbox
    "5.1.2": ErrorKind.RECIPIENT_INVALID,  # bad destination system (no such domain)
    "5.1.3": ErrorKind.RECIPIENT_INVALID,  # bad destination mailbox address syntax
    "5.1.6": ErrorKind.RECIPIENT_INVALID,  # mailbox has moved
    "5.1.10": ErrorKind.RECIPIENT_INVALID,  # null MX: the domain takes no mail
    "5.2.1": ErrorKind.RECIPIENT_INVALID,  # mailbox disabled
    "4.2.2": ErrorKind.TRANSIENT,  # mailbox full, for now
    "4.7.28": ErrorKind.RATE_LIMITED,  # receiving provider throttles our volume
    "4.7.0": ErrorKind.TRANSIENT,
    "5.7.1": ErrorKind.PERMANENT,  # refused by policy
}
# Reply codes (RFC 5321) for servers that give no enhanced code.
REPLY_KINDS: dict[int, ErrorKind] = {
    421: ErrorKind.TRANSIENT,  # service not available, closing
    450: ErrorKind.TRANSIENT,  # mailbox unavailable (busy)
    451: ErrorKind.TRANSIENT,  # local error
    452: ErrorKind.TRANSIENT,  # insufficient storage / too many recipients
    454: ErrorKind.TRANSIENT,  # TLS not available now
    535: ErrorKind.TRANSIENT,  # our credentials refused: the relay account's problem, not the message's
    550: ErrorKind.PERMANENT,
    551: ErrorKind.RECIPIENT_INVALID,  # user not local
    552: ErrorKind.PERMANENT,
    553: ErrorKind.RECIPIENT_INVALID,  # mailbox name not allowed
    554: ErrorKind.PERMANENT,
}
ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
SMTPUTF8_REFUSAL = (
    "the recipient's mailbox name is not ASCII and the relay does not offer SMTPUTF8 (RFC 6531), "
    "so it cannot take this address"
)


def mailbox_address(to: str) -> tuple[str, bool]:
    """The recipient as the envelope and the To header carry it, and whether that takes SMTPUTF8
    (RFC 6531): an internationalised domain goes as Punycode, which any relay takes; a local part
    that is not ASCII has no such form."""
    if to.isascii():
        return to, False
    try:
        checked = validate_email(to, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return to, True
    return (checked.ascii_email, False) if checked.ascii_email else (checked.normalized, True)


def reply_kind(code: int, message: str) -> tuple[ErrorKind, str]:
    """Our class of an SMTP reply, and the code we record (`550 5.1.1` style)."""
    match = ENHANCED.match(message)
    enhanced = match.group(1) if match else None
    recorded = f"{code} {enhanced}" if enhanced else str(code)
    if enhanced and enhanced in ENHANCED_KINDS:
        return ENHANCED_KINDS[enhanced], recorded
    if code in REPLY_KINDS:
        return REPLY_KINDS[code], recorded
    return (ErrorKind.TRANSIENT if 400 <= code < 500 else ErrorKind.PERMANENT), recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    host: str = setting(doc="the SMTP relay", example="smtp.example.com")
    from_address: str = setting(doc="the From address", example="Shop <noreply@example.com>")
    port: int | None = setting(None, doc="default: 465 for tls, 587 for starttls, 25 for none", example=587)
    security: Literal["starttls", "tls", "none"] = setting("starttls", doc="starttls | tls | none")
    username: str | None = setting(None, doc="the relay login", example="gateway")
    password: str | None = setting(
        None, doc="the relay password; or password_file", secret=True, example="/run/secrets/smtp_password"
    )
    validate_certs: bool = setting(True, doc="check the relay's TLS certificate")
    ca_file: str | None = setting(
        None, doc="a private CA bundle for the relay's certificate", example="/etc/ssl/private-ca.pem"
    )
    timeout: float = setting(8.0, doc="seconds for the whole conversation")
    unsubscribe_url: str | None = setting(
        None,
        doc="marketing mail's List-Unsubscribe URL, e.g. https://example.com/unsubscribe?m={reference}",
        example="https://example.com/unsubscribe?m={reference}",
    )
    unsubscribe_mailto: str | None = setting(
        None, doc="marketing mail's List-Unsubscribe address", example="unsubscribe@example.com"
    )
    message_id_domain: str | None = setting(
        None, doc="the Message-ID domain; default the from address's", example="example.com"
    )
    local_hostname: str | None = setting(None, doc="the name given in EHLO", example="gw.example.com")
    max_per_second: float | None = setting(
        None, doc="the relay's send rate, used as its default throughput", example=20.0
    )


class SmtpProvider(JsonCallbackAnswers):
    def __init__(self, settings: SmtpSettings, *, name: str = "smtp") -> None:
        self.name = name
        self.settings = settings
        # Bounces arrive later as mail to the envelope sender, not as callbacks: no receipts here.
        self.capabilities = Capabilities(
            channels=frozenset({"email"}), receipts=False, lookup=False, max_per_second=settings.max_per_second
        )
        self._tls_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"SmtpProvider(name={self.name!r}, settings={self.settings!r})"

    async def start(self) -> None:
        if self.settings.security != "none":
            context = ssl.create_default_context(cafile=self.settings.ca_file)
            if not self.settings.validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls_context = context

    async def close(self) -> None:
        self._tls_context = None

    async def lookup(self, reference: str) -> Lookup | None:
        return None

    def parse_receipts(self, request: InboundRequest) -> list[Receipt]:
        raise SignatureError(f"{self.name} takes no receipt callbacks")

    def parse_inbound(self, request: InboundRequest) -> list[InboundMessage]:
        raise SignatureError(f"{self.name} takes no inbound callbacks")

    def message_id(self, reference: str) -> str:
        domain = self.settings.message_id_domain or self.settings.from_address.rpartition("@")[2] or "localhost"
        return f"<{reference}@{domain}>"

    def build(self, message: Outbound) -> EmailMessage:
        content = message.content
        mail = EmailMessage()
        sender = message.sender if message.sender and "@" in message.sender else self.settings.from_address
        mail["From"] = sender
        address, _ = mailbox_address(message.to)
        local, _, domain = address.rpartition("@")
        # The display name of `张三 <a@b.cn>` travels as content.to_name; the header policy encodes it
        # (RFC 2047, or UTF-8 as it is when the message goes with SMTPUTF8).
        mail["To"] = Address(display_name=str(content.get("to_name") or ""), username=local, domain=domain)
        mail["Subject"] = str(content.get("subject", ""))
        mail["Date"] = formatdate(time.time(), localtime=False, usegmt=True)
        mail["Message-ID"] = self.message_id(message.reference)
        if message.category == "marketing":
            links = []
            if self.settings.unsubscribe_url:
                links.append(f"<{self.settings.unsubscribe_url.format(reference=quote(message.reference, safe=''))}>")
            if self.settings.unsubscribe_mailto:
                links.append(f"<mailto:{self.settings.unsubscribe_mailto}?subject=unsubscribe%20{message.reference}>")
            if links:
                mail["List-Unsubscribe"] = ", ".join(links)
            # One-click needs an HTTPS target that takes a POST without any page in between.
            if self.settings.unsubscribe_url and self.settings.unsubscribe_url.startswith("https://"):
                mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(str(content.get("text", "")))
        if content.get("html"):
            mail.add_alternative(str(content["html"]), subtype="html")
        return mail

    async def send(self, message: Outbound) -> SendResult:
        if message.channel != "email":
            return SendResult(error=ProviderError(ErrorKind.PERMANENT, "unsupported_channel", message.channel))
        mail = self.build(message)
        recipient, needs_smtputf8 = mailbox_address(message.to)
        security = self.settings.security
        port = self.settings.port or {"tls": 465, "starttls": 587, "none": 25}[security]
        try:
            await aiosmtplib.send(
                mail,
                recipients=[recipient],
                hostname=self.settings.host,
                port=port,
                username=self.settings.username,
                password=self.settings.password,
                use_tls=security == "tls",
                start_tls=security == "starttls",
                tls_context=self._tls_context if security != "none" else None,
                timeout=self.settings.timeout,
                local_hostname=self.settings.local_hostname,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            kind, code = reply_kind(refused.code, refused.message)
            return SendResult(error=ProviderError(kind, code, refused.message))
        except aiosmtplib.SMTPSenderRefused as exc:
            # Our envelope sender refused: every message would be; the relay account's problem.
            return SendResult(error=ProviderError(ErrorKind.TRANSIENT, f"sender {exc.code}", exc.message))
        except aiosmtplib.SMTPNotSupported as exc:
            if needs_smtputf8 and "SMTPUTF8" in str(exc):
                # The relay would have to pass a mailbox name that is not ASCII: no retry changes that.
                return SendResult(error=ProviderError(ErrorKind.PERMANENT, "smtputf8_unsupported", SMTPUTF8_REFUSAL))
            return SendResult(error=ProviderError(ErrorKind.TRANSIENT, "connect_failed", str(exc)))
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPHeloError) as exc:
            return SendResult(error=ProviderError(ErrorKind.TRANSIENT, "connect_failed", str(exc)))
        except ssl.SSLError as exc:
            # The TLS handshake comes before any mail is handed over: safe to retry, likely elsewhere.
            return SendResult(error=ProviderError(ErrorKind.TRANSIENT, "tls_failed", str(exc)))
        except (aiosmtplib.SMTPReadTimeoutError, aiosmtplib.SMTPServerDisconnected) as exc:
            # The relay may have queued the message before the connection went quiet.
            raise HandoffUnknown(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            kind, code = reply_kind(exc.code, exc.message)
            return SendResult(error=ProviderError(kind, code, exc.message))
        return SendResult(provider_message_id=mail["Message-ID"])


PROVIDER_TYPE = ProviderType(
    name="smtp",
    settings=SmtpSettings,
    build=lambda settings, name: SmtpProvider(settings, name=name),
    account_key="host",
)

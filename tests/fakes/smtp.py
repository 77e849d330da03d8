"""A real SMTP server (aiosmtpd) on loopback: AUTH, STARTTLS or implicit TLS with a throwaway
certificate, per-recipient refusals and scripted replies to DATA."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import free_port


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    authenticated_as: str | None
    tls: bool
    mail_options: list[str] = field(default_factory=list)
    raw: bytes = b""


@dataclass
class Handler:
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> full reply, e.g. "550 5.1.1 ..."
    data_replies: deque[str] = field(default_factory=deque)  # scripted replies to DATA
    delivered: list[Delivered] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any) -> str:
        if address in self.refused:
            return self.refused[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_replies:
            return self.data_replies.popleft()
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        self.delivered.append(
            Delivered(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                message_from_bytes(raw, policy=policy.default),
                login,
                session.ssl is not None
                or (server.transport is not None and server.transport.get_extra_info("ssl_object") is not None),
                list(envelope.mail_options),
                raw,
            )
        )
        return "250 2.0.0 Ok: queued as 4F2A1"


class FakeSmtp:
    """`mode` "starttls" (port offers STARTTLS and requires it before AUTH) or "tls" (implicit TLS)."""

    def __init__(
        self,
        directory: Path,
        mode: str = "starttls",
        username: str = "relay",
        password: str = "pw",
        *,
        smtputf8: bool = False,
    ) -> None:
        self.cert, self.key = self_signed(directory)
        self.username, self.password = username, password
        self.handler = Handler()
        self.port = free_port()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        kwargs: dict[str, Any] = {
            "authenticator": self._authenticate,
            "auth_required": True,
            "enable_SMTPUTF8": smtputf8,  # whether EHLO advertises SMTPUTF8 (RFC 6531)
        }
        if mode == "tls":
            kwargs["ssl_context"] = context
            kwargs["auth_require_tls"] = False  # the whole session is TLS already
        else:
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = True
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            self.username,
            self.password,
        )
        return AuthResult(success=ok, handled=False, auth_data=data)

    def __enter__(self) -> FakeSmtp:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

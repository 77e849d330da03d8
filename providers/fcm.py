"""Firebase Cloud Messaging, HTTP v1 API: push to one registration token with a service account.

Wire format:
- Token: a JWT signed RS256 with the service account's private key, claims `iss` = client_email,
  `scope` = firebase.messaging, `aud` = token_uri, `iat`, `exp` (at most an hour later), posted to
  `token_uri` as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`; the
  answer `{access_token, expires_in, token_type}` is kept until shortly before it expires.
- Send: `POST {base}/v1/projects/{project_id}/messages:send` with `Authorization: Bearer <token>`
  and `{"message": {"token", "notification": {title, body}, "data": {str: str}}}`; 200 with
  `{"name": "projects/.../messages/..."}`.
- Errors: `{"error": {code, message, status, details: [{"@type": ...FcmError, "errorCode"}]}}`;
  the FcmError code is the precise one, `status` the fallback.

FCM has no delivery receipts and cannot be asked about a message after the fact.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers.base import (
    Capabilities,
    ErrorKind,
    ExtraKey,
    InboundMessage,
    InboundRequest,
    Outbound,
    ProviderError,
    ProviderType,
    Receipt,
    SendResult,
    SignatureError,
    setting,
)
from providers.http import (
    HttpAdapter,
    ProviderNotStarted,
    http_status_kind,
    json_or_none,
    retry_after,
    transport_failure,
)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME = 3600
DEFAULT_RETRY_AFTER = 1.0

# FcmError errorCode (or the google.rpc status when FCM names none) -> our error class.
ERROR_KINDS: dict[str, ErrorKind] = {
    "UNREGISTERED": ErrorKind.RECIPIENT_INVALID,  # the app was uninstalled or the token expired
    "INVALID_ARGUMENT": ErrorKind.RECIPIENT_INVALID,  # as an FcmError: the token is malformed
    "SENDER_ID_MISMATCH": ErrorKind.RECIPIENT_INVALID,  # the token belongs to another project
    "NOT_FOUND": ErrorKind.RECIPIENT_INVALID,
    "QUOTA_EXCEEDED": ErrorKind.RATE_LIMITED,
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMITED,
    "UNAVAILABLE": ErrorKind.TRANSIENT,
    "INTERNAL": ErrorKind.TRANSIENT,
    "THIRD_PARTY_AUTH_ERROR": ErrorKind.TRANSIENT,  # our APNs/web-push credentials, not the message
    "UNAUTHENTICATED": ErrorKind.TRANSIENT,
    "PERMISSION_DENIED": ErrorKind.TRANSIENT,
    "UNSPECIFIED_ERROR": ErrorKind.TRANSIENT,
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_jwt(claims: Mapping[str, Any], private_key: rsa.RSAPrivateKey, key_id: str | None = None) -> str:
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if key_id:
        header["kid"] = key_id
    signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(dict(claims)))}"
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FcmSettings:
    project_id: str = setting(doc="the Firebase project", from_key_file=True)
    client_email: str = setting(doc="the service account", from_key_file=True)
    private_key: str = setting(doc="its PEM key", secret=True, from_key_file=True)
    private_key_id: str | None = setting(None, doc="its key id", from_key_file=True)
    token_uri: str = setting(
        "https://oauth2.googleapis.com/token", doc="where access tokens are obtained", from_key_file=True
    )
    base_url: str = setting("https://fcm.googleapis.com", doc="the FCM API origin")
    token_margin: float = setting(300.0, doc="renew an access token this many seconds before it expires")
    connect_timeout: float = setting(3.0, doc="seconds to connect")
    timeout: float = setting(8.0, doc="seconds for the whole request")
    max_per_second: float | None = setting(
        None, doc="the project's send rate, used as its default throughput", example=500.0
    )

    @classmethod
    def from_service_account(cls, info: Mapping[str, Any] | str | Path, **overrides: Any) -> FcmSettings:
        """Settings from a service-account key: its JSON text, a path to it, or the parsed object."""
        if isinstance(info, Path) or (isinstance(info, str) and not info.lstrip().startswith("{")):
            info = Path(info).read_text(encoding="utf-8")
        data: Mapping[str, Any] = orjson.loads(info) if isinstance(info, str) else info
        missing = [key for key in ("project_id", "client_email", "private_key") if not data.get(key)]
        if missing:
            raise ValueError(f"service account lacks {', '.join(missing)}")
        values: dict[str, Any] = {
            "project_id": data["project_id"],
            "client_email": data["client_email"],
            "private_key": data["private_key"],
            "private_key_id": data.get("private_key_id"),
        }
        if data.get("token_uri"):
            values["token_uri"] = data["token_uri"]
        values.update(overrides)
        return cls(**values)


FCM_PLATFORMS = ("android", "ios", "web")


class FcmProvider(HttpAdapter):
    settings: FcmSettings

    def __init__(self, settings: FcmSettings, *, name: str = "fcm") -> None:
        self.name = name
        self.settings = settings
        self.capabilities = Capabilities(
            channels=frozenset({"push"}),
            receipts=False,
            lookup=False,
            max_per_second=settings.max_per_second,
            # FCM reaches Android, Apple devices (through APNs) and browsers; Huawei devices without
            # Google services need Push Kit, a provider of their own.
            extra={"push_platforms": FCM_PLATFORMS},
        )
        key = serialization.load_pem_private_key(settings.private_key.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the service account's private key is not an RSA key")
        self._key = key
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self._send_url = (
            f"{settings.base_url.rstrip('/')}/v1/projects/{quote(settings.project_id, safe='')}/messages:send"
        )
        self.token_fetches = 0

    def __repr__(self) -> str:
        return f"FcmProvider(name={self.name!r}, settings={self.settings!r})"

    async def close(self) -> None:
        await super().close()
        self._token = None

    def parse_receipts(self, request: InboundRequest) -> list[Receipt]:
        raise SignatureError(f"{self.name} takes no receipt callbacks")

    def parse_inbound(self, request: InboundRequest) -> list[InboundMessage]:
        raise SignatureError(f"{self.name} takes no inbound callbacks")

    def assertion(self, now: float) -> str:
        issued = int(now)
        claims = {
            "iss": self.settings.client_email,
            "scope": SCOPE,
            "aud": self.settings.token_uri,
            "iat": issued,
            "exp": issued + TOKEN_LIFETIME,
        }
        return signed_jwt(claims, self._key, self.settings.private_key_id)

    async def _access_token(self, session: aiohttp.ClientSession) -> str | ProviderError:
        async with self._token_lock:
            # One exchange for all the sends that found the token stale at once.
            now = time.time()
            if self._token is not None and now < self._token_expires:
                return self._token
            form = {"grant_type": JWT_BEARER, "assertion": self.assertion(now)}
            try:
                async with session.post(self.settings.token_uri, data=form) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Nothing was sent to FCM yet: a lost token exchange is always safe to retry.
                return ProviderError(ErrorKind.TRANSIENT, "oauth_unreachable", f"{type(exc).__name__}: {exc}")
            answer = json_or_none(body)
            if status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
                error = answer.get("error") if isinstance(answer, dict) else None
                error = error if isinstance(error, str) else f"HTTP{status}"
                # Our service account is refused: every push would be; another provider may still serve.
                return ProviderError(ErrorKind.TRANSIENT, f"oauth_{error}", "service-account token refused")
            self.token_fetches += 1
            lifetime = float(answer.get("expires_in", TOKEN_LIFETIME))
            self._token = str(answer["access_token"])
            self._token_expires = now + max(0.0, lifetime - self.settings.token_margin)
            return self._token

    def payload(self, message: Outbound) -> dict[str, Any]:
        content = message.content
        body: dict[str, Any] = {"token": message.to}
        notification = {k: str(content[k]) for k in ("title", "body") if content.get(k) is not None}
        if notification:
            body["notification"] = notification
        data = content.get("data")
        if data:
            # FCM data values must be strings; anything else travels as its JSON text.
            body["data"] = {
                str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in dict(data).items()
            }
        return {"message": body}

    async def send(self, message: Outbound) -> SendResult:
        if message.channel != "push":
            return SendResult(error=ProviderError(ErrorKind.PERMANENT, "unsupported_channel", message.channel))
        session = self._session
        if session is None:
            raise ProviderNotStarted(f"{self.name} provider used before start()")
        body = orjson.dumps(self.payload(message))
        for attempt in range(2):
            token = await self._access_token(session)
            if isinstance(token, ProviderError):
                return SendResult(error=token)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            try:
                async with session.post(self._send_url, data=body, headers=headers) as response:
                    answer_body = await response.read()
                    status, response_headers = response.status, response.headers
            except (aiohttp.ClientError, TimeoutError) as exc:
                return SendResult(error=transport_failure(exc, self.name))
            answer = json_or_none(answer_body)
            if status == 200 and isinstance(answer, dict) and answer.get("name"):
                return SendResult(provider_message_id=str(answer["name"]))
            if status == 401 and attempt == 0:
                # A revoked or early-expired token: FCM took nothing, so fetch a new one and try again.
                self._token = None
                continue
            return SendResult(error=self._error(status, answer, response_headers))
        raise AssertionError("unreachable")

    def _error(self, status: int, answer: Any, headers: Mapping[str, str]) -> ProviderError:
        error = answer.get("error") if isinstance(answer, dict) else None
        error = error if isinstance(error, dict) else {}
        raw_details = error.get("details")
        details: list[Any] = raw_details if isinstance(raw_details, list) else []
        fcm_code = next(
            (
                str(d.get("errorCode"))
                for d in details
                if isinstance(d, dict) and str(d.get("@type", "")).endswith("FcmError") and d.get("errorCode")
            ),
            None,
        )
        code = fcm_code or str(error.get("status") or f"HTTP{status}")
        kind = ERROR_KINDS.get(code, http_status_kind(status))
        if code == "INVALID_ARGUMENT" and fcm_code is None and not _names_token(details):
            # A plain INVALID_ARGUMENT names a bad field of our payload, not the device token.
            kind = ErrorKind.PERMANENT
        wait = retry_after(headers)
        if kind == ErrorKind.RATE_LIMITED and wait is None:
            wait = DEFAULT_RETRY_AFTER
        return ProviderError(kind, code, str(error.get("message", "")), wait if kind.retryable else None)


def _names_token(details: list[Any]) -> bool:
    for detail in details:
        if not isinstance(detail, dict):
            continue
        for violation in detail.get("fieldViolations") or ():
            if isinstance(violation, dict) and str(violation.get("field", "")) == "message.token":
                return True
    return False


def _fcm_section(section: dict[str, Any], public_url: str) -> dict[str, Any]:
    """The service-account key (read from service_account_file by the settings) into its fields."""
    account = section.pop("service_account_json", None)
    if account is None:
        raise ValueError("service_account_file: is required (the service-account key JSON)")
    try:
        return dataclasses.asdict(FcmSettings.from_service_account(account, **section))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"service_account_file: {exc}") from None


PROVIDER_TYPE = ProviderType(
    name="fcm",
    settings=FcmSettings,
    build=lambda settings, name: FcmProvider(settings, name=name),
    account_key="project_id",
    prepare=_fcm_section,
    extra_keys=(
        ExtraKey(
            "service_account_file",
            "/run/secrets/fcm-service-account.json",
            "the service-account key JSON; project_id, client_email and private_key come from it",
        ),
    ),
    secret_extras={"service_account_file": "service_account_json"},
)

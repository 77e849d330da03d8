"""Tencent Cloud SMS (TencentCloud API 3.0, `SendSms` 2021-01-11): TC3-HMAC-SHA256 signed JSON calls,
status and reply callbacks.

Wire format:
- `POST https://sms.tencentcloudapi.com/` with a JSON body: PhoneNumberSet (E.164 strings),
  SmsSdkAppId, TemplateId, SignName, TemplateParamSet (the template's variables {1}, {2}, ... as an
  ordered list of strings), SessionContext (our message id). Headers: X-TC-Action: SendSms,
  X-TC-Version: 2021-01-11, X-TC-Region, X-TC-Timestamp (Unix seconds), Authorization.
- Signature (TC3-HMAC-SHA256, "Signature v3"): the canonical request is
  `POST\n/\n\n` + each signed header as `name:value\n` (name and value lower-cased and trimmed,
  names sorted) + `\n` + the signed names joined by `;` + `\n` + hex SHA-256 of the body; the
  string to sign is `TC3-HMAC-SHA256\n<timestamp>\n<UTC date>/sms/tc3_request\n` + hex SHA-256 of
  the canonical request; the key is HMAC-SHA256 chained over `"TC3" + SecretKey`, the date, the
  service and `tc3_request`; the signature is the hex HMAC-SHA256 of the string to sign under it.
  `Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<date>/sms/tc3_request,
  SignedHeaders=content-type;host;x-tc-action, Signature=<hex>`.
- Answer, always HTTP 200: `{"Response": {"SendStatusSet": [{SerialNo, PhoneNumber, Fee,
  SessionContext, Code, Message, IsoCode}], "RequestId"}}`, `Code == "Ok"` per number; a refused
  request instead carries `{"Response": {"Error": {Code, Message}, "RequestId"}}`.
- Status callbacks (configured in the SMS console): a JSON array of `{user_receive_time,
  nationcode, mobile, report_status (SUCCESS / FAIL), errmsg (DELIVRD or the carrier's code),
  description, sid (the SerialNo)}`, times in China Standard Time. Replies: one JSON object
  `{extend, mobile, nationcode, sign, text, time (Unix seconds)}`. Both are answered
  `{"result": 0, "errmsg": "OK"}`.

Tencent Cloud sends only templates approved in its console: a job is sent only when it names a
template for this provider (content `provider_templates[<this section's name>]`: `template_id`,
optional `sign_name`); any other job is refused as `template_required` without a call.

Tencent does not sign its callbacks. As for Aliyun, the URL registered in the console carries a
secret of ours, `...?token=<callback_token>`, compared in constant time; keep it on HTTPS.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from providers.base import (
    CallbackAnswer,
    CallbackFormatError,
    CallbackKind,
    Capabilities,
    ErrorKind,
    InboundMessage,
    InboundRequest,
    Outbound,
    ProviderError,
    ProviderType,
    Receipt,
    SendResult,
    setting,
)
from providers.http import (
    HttpAdapter,
    ProviderNotStarted,
    check_url_token,
    china_time,
    http_status_kind,
    json_or_none,
    transport_failure,
)
from providers.templates import template_ids, template_params

API_VERSION = "2021-01-11"
SERVICE = "sms"
ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json; charset=utf-8"

# A refusal's Code -> our error class: exact codes first, then their group (the part before the
# first dot, as "Group."). Account, credential and platform troubles are transient: another
# provider can deliver meanwhile.
ERROR_KINDS: dict[str, ErrorKind] = {
    "FailedOperation.PhoneNumberInBlacklist": ErrorKind.RECIPIENT_OPTED_OUT,  # unsubscribed or carrier blocklist
    "FailedOperation.PhoneNumberOnBlacklist": ErrorKind.RECIPIENT_OPTED_OUT,
    "FailedOperation.InsufficientBalanceInSmsPackage": ErrorKind.TRANSIENT,  # our package: top up
    "FailedOperation.MarketingSendTimeConstraint": ErrorKind.RATE_LIMITED,  # marketing only 08:00-22:00
    "FailedOperation.ContainSensitiveWord": ErrorKind.PERMANENT,
    "FailedOperation.SignatureIncorrectOrUnapproved": ErrorKind.PERMANENT,
    "FailedOperation.TemplateIncorrectOrUnapproved": ErrorKind.PERMANENT,
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": ErrorKind.PERMANENT,
    "FailedOperation.TemplateUnapprovedOrNotExist": ErrorKind.PERMANENT,
    "FailedOperation.": ErrorKind.PERMANENT,
    "InvalidParameterValue.IncorrectPhoneNumber": ErrorKind.RECIPIENT_INVALID,
    "InvalidParameterValue.SdkAppIdNotExist": ErrorKind.TRANSIENT,  # our configuration
    "InvalidParameterValue.": ErrorKind.PERMANENT,  # content length, URL in a variable, variable format
    "InvalidParameter.": ErrorKind.PERMANENT,  # DirtyWordFound, ...
    "MissingParameter.": ErrorKind.PERMANENT,
    "MissingParameter": ErrorKind.PERMANENT,
    "LimitExceeded.PhoneNumberCountLimit": ErrorKind.PERMANENT,  # over 200 numbers in one call
    "LimitExceeded.": ErrorKind.RATE_LIMITED,  # per number (30 s, hour, day, same content) and per app
    "RequestLimitExceeded": ErrorKind.RATE_LIMITED,  # API calls per second
    "RequestLimitExceeded.": ErrorKind.RATE_LIMITED,
    "UnsupportedOperation.": ErrorKind.PERMANENT,  # region not served, mixed domestic/international
    "AuthFailure.": ErrorKind.TRANSIENT,  # our SecretId/SecretKey or clock
    "UnauthorizedOperation.": ErrorKind.TRANSIENT,  # app disabled, arrears, IP allow-list
    "InternalError": ErrorKind.TRANSIENT,
    "InternalError.": ErrorKind.TRANSIENT,
    "ResourceUnavailable.": ErrorKind.TRANSIENT,
    "ServiceUnavailable": ErrorKind.TRANSIENT,
}
# How long a rate-limited code asks us to wait: the windows Tencent counts in.
RETRY_AFTER: dict[str, float] = {
    "LimitExceeded.PhoneNumberThirtySecondLimit": 30.0,
    "LimitExceeded.PhoneNumberOneHourLimit": 3600.0,
    "LimitExceeded.PhoneNumberDailyLimit": 3600.0,
    "LimitExceeded.PhoneNumberSameContentDailyLimit": 3600.0,
    "LimitExceeded.AppDailyLimit": 3600.0,
    "LimitExceeded.DailyLimit": 3600.0,
    "LimitExceeded.DeliveryFrequencyLimit": 60.0,
    "FailedOperation.MarketingSendTimeConstraint": 3600.0,
}
DEFAULT_RATE_LIMIT_WAIT = 1.0

TEMPLATE_REQUIRED = ProviderError(
    ErrorKind.PERMANENT, "template_required", "Tencent Cloud sends registered templates only; the job names none for it"
)


def error_kind(code: str) -> ErrorKind:
    """Our class of a Tencent Cloud error code (ERROR_KINDS: the code, else its group)."""
    known = ERROR_KINDS.get(code)
    if known is None and "." in code:
        known = ERROR_KINDS.get(code.split(".", 1)[0] + ".")
    return known if known is not None else ErrorKind.PERMANENT


def retry_wait(code: str) -> float | None:
    if error_kind(code) != ErrorKind.RATE_LIMITED:
        return None
    return RETRY_AFTER.get(code, DEFAULT_RATE_LIMIT_WAIT)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str], payload: bytes) -> str:
    """The canonical request over the signed headers (name -> value as sent)."""
    signed = {name.strip().lower(): value.strip().lower() for name, value in headers.items()}
    names = sorted(signed)
    lines = "".join(f"{name}:{signed[name]}\n" for name in names)
    return f"{method.upper()}\n{path}\n{query}\n{lines}\n{';'.join(names)}\n{_sha256_hex(payload)}"


def credential_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def tc3_signature(secret_key: str, service: str, timestamp: int, canonical: str) -> str:
    date = credential_date(timestamp)
    to_sign = f"{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{_sha256_hex(canonical.encode())}"
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(
    secret_id: str, secret_key: str, service: str, timestamp: int, headers: Mapping[str, str], payload: bytes
) -> str:
    """The Authorization header of a POST to `/` signing these headers and this body."""
    canonical = canonical_request("POST", "/", "", headers, payload)
    signature = tc3_signature(secret_key, service, timestamp, canonical)
    names = ";".join(sorted(name.lower() for name in headers))
    scope = f"{credential_date(timestamp)}/{service}/tc3_request"
    return f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={names}, Signature={signature}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TencentSettings:
    secret_id: str = setting(doc="the API SecretId", example="AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE")
    secret_key: str = setting(
        doc="the API SecretKey; or secret_key_file", secret=True, example="/run/secrets/tencent_secret_key"
    )
    sms_sdk_app_id: str = setting(doc="the SMS application's SdkAppId", example="1400006666")
    sign_name: str | None = setting(
        None,
        doc="the approved 签名 (SignName) when the job's template names none; mainland numbers need one",
        example="腾讯云",
    )
    region: str = setting("ap-guangzhou", doc="the API region (X-TC-Region)")
    endpoint: str = setting("https://sms.tencentcloudapi.com", doc="the API endpoint")
    callback_token: str | None = setting(
        None,
        doc="the secret in the status and reply callback URLs (?token=); unset refuses every callback",
        secret=True,
        example="/run/secrets/tencent_callback_token",
    )
    connect_timeout: float = setting(3.0, doc="seconds to connect")
    timeout: float = setting(8.0, doc="seconds for the whole request")
    max_per_second: float | None = setting(
        None, doc="the account's send rate, used as its default throughput", example=100.0
    )
    filtered_codes: tuple[str, ...] = setting(
        (), doc="status callback errmsg codes that mean the carrier filtered the message as spam (sender flagged)"
    )


class TencentSmsProvider(HttpAdapter):
    settings: TencentSettings

    def __init__(self, settings: TencentSettings, *, name: str = "tencent") -> None:
        self.name = name
        self.settings = settings
        self.capabilities = Capabilities(
            channels=frozenset({"sms"}),
            receipts=settings.callback_token is not None,
            lookup=False,  # PullSmsSendStatus drains a queue; it cannot be asked about one reference
            max_per_second=settings.max_per_second,
            requires_registered_template=True,
            template_id_keys=frozenset({"template_id"}),
        )
        self._session: aiohttp.ClientSession | None = None
        self._host = urlsplit(settings.endpoint).netloc

    def __repr__(self) -> str:
        return f"TencentSmsProvider(name={self.name!r}, settings={self.settings!r})"

    def payload(self, message: Outbound) -> dict[str, Any] | None:
        """The SendSms body for this message; None when it names no template for this provider."""
        ids = template_ids(message.content, self.name)
        if not ids.get("template_id"):
            return None
        body: dict[str, Any] = {
            "PhoneNumberSet": [message.to],
            "SmsSdkAppId": self.settings.sms_sdk_app_id,
            "TemplateId": ids["template_id"],
            "TemplateParamSet": list(template_params(message.content).values()),
            "SessionContext": message.reference,
        }
        sign_name = ids.get("sign_name") or self.settings.sign_name
        if sign_name:
            body["SignName"] = sign_name
        return body

    def signed_headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = int(time.time()) if timestamp is None else timestamp
        signed = {"Content-Type": CONTENT_TYPE, "Host": self._host, "X-TC-Action": "SendSms"}
        auth = authorization(self.settings.secret_id, self.settings.secret_key, SERVICE, stamp, signed, body)
        return {
            **signed,
            "X-TC-Version": API_VERSION,
            "X-TC-Region": self.settings.region,
            "X-TC-Timestamp": str(stamp),
            "Authorization": auth,
        }

    async def send(self, message: Outbound) -> SendResult:
        if message.channel != "sms":
            return SendResult(error=ProviderError(ErrorKind.PERMANENT, "unsupported_channel", message.channel))
        if self._session is None:
            raise ProviderNotStarted(f"{self.name} provider used before start()")
        payload = self.payload(message)
        if payload is None:
            return SendResult(error=TEMPLATE_REQUIRED)
        body = orjson.dumps(payload)
        try:
            async with self._session.post(
                self.settings.endpoint.rstrip("/") + "/", data=body, headers=self.signed_headers(body)
            ) as response:
                answer_body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult(error=transport_failure(exc, self.name))
        return send_result(status, json_or_none(answer_body))

    # -- callbacks ---------------------------------------------------------------------------------

    def _checked_body(self, request: InboundRequest) -> Any:
        check_url_token(request.url, self.settings.callback_token)
        return json_or_none(request.body)

    def parse_receipts(self, request: InboundRequest) -> list[Receipt]:
        items = self._checked_body(request)
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise CallbackFormatError("a Tencent status callback is a JSON array of objects")
        return [self._receipt(item) for item in items]

    def _receipt(self, item: Mapping[str, Any]) -> Receipt:
        try:
            serial, report = str(item["sid"]), str(item["report_status"]).upper()
        except KeyError as exc:
            raise CallbackFormatError(f"status callback item without {exc}") from None
        if report not in ("SUCCESS", "FAIL"):
            raise CallbackFormatError(f"unknown report_status {report!r}")
        delivered = report == "SUCCESS"
        code = str(item["errmsg"]) if item.get("errmsg") and not delivered else None
        return Receipt(
            provider_message_id=serial,
            status="delivered" if delivered else "undelivered",
            error_code=code,
            occurred_at=china_time(item.get("user_receive_time")),
            raw=orjson.dumps(item).decode(),
            error_kind=ErrorKind.SENDER_FLAGGED if code and code in self.settings.filtered_codes else None,
        )

    def parse_inbound(self, request: InboundRequest) -> list[InboundMessage]:
        item = self._checked_body(request)
        if not isinstance(item, dict) or not item.get("mobile"):
            raise CallbackFormatError("a Tencent reply callback is a JSON object with mobile")
        country = str(item.get("nationcode") or "86")
        received = item.get("time")
        return [
            InboundMessage(
                sender=f"+{country}{item['mobile']}",
                to=str(item["extend"]) if item.get("extend") else None,
                text=str(item.get("text", "")),
                received_at=float(received) if isinstance(received, int | float) else None,
            )
        ]

    def acknowledge(self, kind: CallbackKind, summary: Mapping[str, int]) -> CallbackAnswer:
        """Status and reply callbacks expect `{"result": 0, "errmsg": "OK"}`."""
        return CallbackAnswer(200, CALLBACK_TAKEN, "application/json")


CALLBACK_TAKEN = orjson.dumps({"result": 0, "errmsg": "OK"})


def send_result(status: int, answer: Any) -> SendResult:
    """What a SendSms answer for one number means."""
    response = answer.get("Response") if isinstance(answer, dict) else None
    if not isinstance(response, dict):
        kind = http_status_kind(status) if status >= 300 else ErrorKind.TRANSIENT
        return SendResult(error=ProviderError(kind, f"HTTP{status}", "answer is not TencentCloud API JSON"))
    error = response.get("Error")
    statuses = response.get("SendStatusSet")
    if isinstance(error, dict):
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    elif isinstance(statuses, list) and statuses and isinstance(statuses[0], dict):
        first = statuses[0]
        code, message = str(first.get("Code", "")), str(first.get("Message", ""))
        if code == "Ok" and first.get("SerialNo"):
            return SendResult(provider_message_id=str(first["SerialNo"]))
    else:
        return SendResult(error=ProviderError(ErrorKind.TRANSIENT, "no_status", "answer has no SendStatusSet"))
    return SendResult(error=ProviderError(error_kind(code), code, message, retry_wait(code)))


PROVIDER_TYPE = ProviderType(
    name="tencent",
    settings=TencentSettings,
    build=lambda settings, name: TencentSmsProvider(settings, name=name),
    account_key="sms_sdk_app_id",
)

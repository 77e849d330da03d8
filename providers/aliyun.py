"""Alibaba Cloud SMS (Dysmsapi 2017-05-25 `SendSms`): signed RPC requests, SmsReport receipt pushes.

Wire format:
- `POST https://dysmsapi.aliyuncs.com/`, form-encoded, with the common RPC parameters (Action,
  Version, Format=JSON, AccessKeyId, SignatureMethod=HMAC-SHA1, SignatureVersion=1.0,
  SignatureNonce, Timestamp in UTC ISO 8601) and PhoneNumbers, SignName, TemplateCode,
  TemplateParam (a JSON object of strings), OutId (our message id).
- Signature (RPC signature V1): sort all parameters but Signature by name, percent-encode names and
  values per RFC 3986 (space as %20, `~` kept), join as `k=v&...`; the string to sign is
  `POST&%2F&` + percentEncode(that); Signature = base64(HMAC-SHA1(AccessKeySecret + "&", it)).
- Answer: `{Code, Message, BizId, RequestId}`; `Code == "OK"` is acceptance. Business refusals come
  with HTTP 200 and a code (`isv.*` our fault, `isp.*` theirs); auth refusals with HTTP 4xx.
- Receipts: the console's "HTTP batch push" posts `SmsReport`, a JSON array of
  `{phone_number, send_time, report_time, success, err_code, err_msg, sms_size, biz_id, out_id}`
  with times in China Standard Time, and replies (`SmsUp`) as `{phone_number, send_time, content,
  sign_name, dest_code, sequence_id}`. Both expect the answer `{"code": 0, "msg": "接收成功"}`;
  any other answer makes Aliyun push the batch again.

Templates: Aliyun sends only templates approved in its console. A job rendered from a template
version with ids for this provider (content `provider_templates[<this section's name>]`:
`template_code`, optional `sign_name`; or the older `content.template_code`) goes with that
TemplateCode and its `template_params` as TemplateParam. Any other job goes through
`free_text_template`, a template whose whole text is one variable (`text_param`), when the account
has one; without it the provider declares `requires_registered_template` and refuses such a job
(`template_required`, permanent) without calling Aliyun.

Aliyun does not sign its pushes. The push URL registered in the console therefore carries a secret
of ours, `...?token=<callback_token>`, compared in constant time; a push without it is refused as
a bad signature. Keep the URL HTTPS so the token is not seen on the way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

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

API_VERSION = "2017-05-25"

# `Code` of a SendSms answer -> our error class. Account and platform troubles are transient:
# another provider can deliver meanwhile.
ERROR_KINDS: dict[str, ErrorKind] = {
    "isv.BUSINESS_LIMIT_CONTROL": ErrorKind.RATE_LIMITED,  # per-number frequency limit (minute/hour/day)
    "isv.DAY_LIMIT_CONTROL": ErrorKind.RATE_LIMITED,
    "Throttling.User": ErrorKind.RATE_LIMITED,
    "Throttling": ErrorKind.RATE_LIMITED,
    "isv.MOBILE_NUMBER_ILLEGAL": ErrorKind.RECIPIENT_INVALID,
    "isv.MOBILE_COUNT_OVER_LIMIT": ErrorKind.PERMANENT,
    "isv.BLACK_KEY_CONTROL_LIMIT": ErrorKind.PERMANENT,  # a blocklisted word in the variables
    "isv.PARAM_NOT_SUPPORT_URL": ErrorKind.PERMANENT,
    "isv.PARAM_LENGTH_LIMIT": ErrorKind.PERMANENT,
    "isv.INVALID_JSON_PARAM": ErrorKind.PERMANENT,
    "isv.INVALID_PARAMETERS": ErrorKind.PERMANENT,
    "isv.TEMPLATE_MISSING_PARAMETERS": ErrorKind.PERMANENT,
    "isv.SMS_TEMPLATE_ILLEGAL": ErrorKind.PERMANENT,
    "isv.SMS_SIGNATURE_ILLEGAL": ErrorKind.PERMANENT,
    "isv.SMS_SIGN_ILLEGAL": ErrorKind.PERMANENT,
    "isv.EXTEND_CODE_ERROR": ErrorKind.PERMANENT,
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": ErrorKind.PERMANENT,
    "isv.NOT_SUPPORTED_COUNTRY": ErrorKind.PERMANENT,
    "isv.AMOUNT_NOT_ENOUGH": ErrorKind.TRANSIENT,  # our balance: top up, or another provider
    "isv.OUT_OF_SERVICE": ErrorKind.TRANSIENT,
    "isv.PRODUCT_UN_SUBSCRIPT": ErrorKind.TRANSIENT,
    "isv.PRODUCT_UNSUBSCRIBE": ErrorKind.TRANSIENT,
    "isv.ACCOUNT_NOT_EXISTS": ErrorKind.TRANSIENT,
    "isv.ACCOUNT_ABNORMAL": ErrorKind.TRANSIENT,
    "isp.RAM_PERMISSION_DENY": ErrorKind.TRANSIENT,
    "isp.SYSTEM_ERROR": ErrorKind.TRANSIENT,
    "isp.GATEWAY_ERROR": ErrorKind.TRANSIENT,
    "SignatureDoesNotMatch": ErrorKind.TRANSIENT,
    "InvalidAccessKeyId.NotFound": ErrorKind.TRANSIENT,
    "InvalidAccessKeyId.Inactive": ErrorKind.TRANSIENT,
    "SignatureNonceUsed": ErrorKind.TRANSIENT,
    "InvalidTimeStamp.Expired": ErrorKind.TRANSIENT,
    "ServiceUnavailable": ErrorKind.TRANSIENT,
}
# How long a rate-limited code asks us to wait: the per-number limits count per minute and per day.
RETRY_AFTER: dict[str, float] = {
    "isv.BUSINESS_LIMIT_CONTROL": 60.0,
    "isv.DAY_LIMIT_CONTROL": 3600.0,
    "Throttling.User": 1.0,
    "Throttling": 1.0,
}


# A job naming no registered template, on an account without a free-text template: Aliyun would
# refuse it anyway, so it is not sent; another provider of the route may take free text.
TEMPLATE_REQUIRED = ProviderError(
    ErrorKind.PERMANENT, "template_required", "this account sends registered templates only; the job names none for it"
)


def error_kind(code: str, http_status: int = 200) -> ErrorKind:
    known = ERROR_KINDS.get(code)
    if known is not None:
        return known
    if code.startswith("isp."):
        return ErrorKind.TRANSIENT
    if code.startswith("isv."):
        return ErrorKind.PERMANENT
    return http_status_kind(http_status) if http_status >= 300 else ErrorKind.PERMANENT


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Alibaba Cloud's RPC signature wants it (space %20, `*` %2A, `~` kept)."""
    return quote(value, safe="-_.~")


def rpc_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(params[k])}" for k in sorted(params))
    to_sign = f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def phone_number(e164: str) -> str:
    # Dysmsapi takes mainland numbers bare (13800138000) and others with the country code, no '+'.
    digits = e164.removeprefix("+")
    return digits[2:] if e164.startswith("+86") else digits


@dataclass(frozen=True, slots=True, kw_only=True)
class AliyunSettings:
    access_key_id: str = setting(doc="the AccessKey ID", example="LTAI5t0000000000")
    access_key_secret: str = setting(
        doc="the AccessKey secret; or access_key_secret_file", secret=True, example="/run/secrets/aliyun_secret"
    )
    sign_name: str = setting(doc="the approved 签名 (SignName) when the job's template names none", example="小店")
    free_text_template: str | None = setting(
        None,
        doc="a TemplateCode whose whole text is one variable (${content}), for jobs that name no registered"
        " template; unset: the account sends registered templates only (older name: template_code)",
        example="SMS_123456789",
    )
    text_param: str = setting("content", doc="the variable of free_text_template that carries a job's text")
    callback_token: str | None = setting(
        None,
        doc="the secret in the receipt push URL (?token=); unset refuses every push",
        secret=True,
        example="/run/secrets/aliyun_callback_token",
    )
    endpoint: str = setting("https://dysmsapi.aliyuncs.com", doc="the API endpoint")
    region_id: str = setting("cn-hangzhou", doc="the API region")
    connect_timeout: float = setting(3.0, doc="seconds to connect")
    timeout: float = setting(8.0, doc="seconds for the whole request")
    max_per_second: float | None = setting(
        None, doc="the account's send rate, used as its default throughput", example=100.0
    )
    filtered_codes: tuple[str, ...] = setting(
        (), doc="SmsReport err_codes that mean the carrier filtered the message as spam (the sender is flagged)"
    )


FILTERED_WORDS = ("拦截", "spam")


def report_error_kind(settings: AliyunSettings, err_code: str | None, err_msg: str | None) -> ErrorKind | None:
    """The class of an SmsReport failure, as far as number health needs it."""
    if err_code and err_code in settings.filtered_codes:
        return ErrorKind.SENDER_FLAGGED
    if err_msg and any(word in err_msg.lower() for word in FILTERED_WORDS):
        return ErrorKind.SENDER_FLAGGED
    return None


class AliyunSmsProvider(HttpAdapter):
    settings: AliyunSettings

    def __init__(self, settings: AliyunSettings, *, name: str = "aliyun") -> None:
        self.name = name
        self.settings = settings
        self.capabilities = Capabilities(
            channels=frozenset({"sms"}),
            receipts=settings.callback_token is not None,
            # QuerySendDetails needs the phone number and the day, not our reference.
            lookup=False,
            max_per_second=settings.max_per_second,
            requires_registered_template=settings.free_text_template is None,
            template_id_keys=frozenset({"template_code"}),
        )
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"AliyunSmsProvider(name={self.name!r}, settings={self.settings!r})"

    def template_call(self, content: Mapping[str, Any]) -> dict[str, str] | None:
        """SignName, TemplateCode and TemplateParam of this job: its registered template for this
        provider (or the older content.template_code), else its text through free_text_template;
        None when it names no template and the account has no free-text one."""
        ids = template_ids(content, self.name)
        code = ids.get("template_code") or str(content.get("template_code") or "")
        sign_name = ids.get("sign_name") or str(content.get("sign_name") or "") or self.settings.sign_name
        if code:
            params = template_params(content)
        elif self.settings.free_text_template:
            code, params = self.settings.free_text_template, {self.settings.text_param: str(content.get("text", ""))}
        else:
            return None
        return {"SignName": sign_name, "TemplateCode": code, "TemplateParam": orjson.dumps(params).decode()}

    def request_params(
        self, message: Outbound, template: Mapping[str, str], *, now: float | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        """The signed form of a SendSms call for this message and its template call."""
        params = {
            "Action": "SendSms",
            "Version": API_VERSION,
            "Format": "JSON",
            "RegionId": self.settings.region_id,
            "AccessKeyId": self.settings.access_key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": nonce or uuid.uuid4().hex,
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "PhoneNumbers": phone_number(message.to),
            **template,
            "OutId": message.reference,
        }
        params["Signature"] = rpc_signature(self.settings.access_key_secret, "POST", params)
        return params

    async def send(self, message: Outbound) -> SendResult:
        if message.channel != "sms":
            return SendResult(error=ProviderError(ErrorKind.PERMANENT, "unsupported_channel", message.channel))
        if self._session is None:
            raise ProviderNotStarted(f"{self.name} provider used before start()")
        template = self.template_call(message.content)
        if template is None:
            return SendResult(error=TEMPLATE_REQUIRED)
        form = self.request_params(message, template)
        try:
            async with self._session.post(self.settings.endpoint.rstrip("/") + "/", data=form) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult(error=transport_failure(exc, self.name))
        answer = json_or_none(body)
        if not isinstance(answer, dict):
            kind = http_status_kind(status) if status >= 300 else ErrorKind.TRANSIENT
            return SendResult(error=ProviderError(kind, f"HTTP{status}", "answer is not JSON"))
        code = str(answer.get("Code", f"HTTP{status}"))
        if code == "OK" and status < 300 and answer.get("BizId"):
            return SendResult(provider_message_id=str(answer["BizId"]))
        kind = error_kind(code, status)
        wait = RETRY_AFTER.get(code) if kind == ErrorKind.RATE_LIMITED else None
        return SendResult(error=ProviderError(kind, code, str(answer.get("Message", "")), wait))

    # -- pushes ------------------------------------------------------------------------------------

    def _check_token(self, request: InboundRequest) -> list[dict[str, Any]]:
        check_url_token(request.url, self.settings.callback_token)
        items = json_or_none(request.body)
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise CallbackFormatError("an Aliyun push is a JSON array of objects")
        return items

    def parse_receipts(self, request: InboundRequest) -> list[Receipt]:
        receipts = []
        for item in self._check_token(request):
            try:
                success = item["success"]
                biz_id = str(item["biz_id"])
            except KeyError as exc:
                raise CallbackFormatError(f"SmsReport item without {exc}") from None
            if isinstance(success, str):
                success = success.lower() == "true"
            err_code = item.get("err_code")
            receipts.append(
                Receipt(
                    provider_message_id=biz_id,
                    status="delivered" if success else "undelivered",
                    reference=str(item["out_id"]) if item.get("out_id") else None,
                    error_code=None if success or not err_code else str(err_code),
                    occurred_at=china_time(item.get("report_time")),
                    raw=orjson.dumps(item).decode(),
                    error_kind=None
                    if success
                    else report_error_kind(
                        self.settings,
                        str(err_code) if err_code else None,
                        str(item["err_msg"]) if item.get("err_msg") else None,
                    ),
                )
            )
        return receipts

    def parse_inbound(self, request: InboundRequest) -> list[InboundMessage]:
        replies = []
        for item in self._check_token(request):
            try:
                number = str(item["phone_number"])
            except KeyError:
                raise CallbackFormatError("SmsUp item without phone_number") from None
            sender = number if number.startswith("+") else "+86" + number if len(number) == 11 else "+" + number
            replies.append(
                InboundMessage(
                    sender=sender,
                    to=str(item["dest_code"]) if item.get("dest_code") else None,
                    text=str(item.get("content", "")),
                    received_at=china_time(item.get("send_time")),
                )
            )
        return replies

    def acknowledge(self, kind: CallbackKind, summary: Mapping[str, int]) -> CallbackAnswer:
        """SmsReport and SmsUp pushes expect `{"code": 0, "msg": "接收成功"}`; any other answer
        counts as a failed push and Aliyun pushes the batch again."""
        return CallbackAnswer(200, PUSH_RECEIVED, "application/json")


PUSH_RECEIVED = orjson.dumps({"code": 0, "msg": "接收成功"})


def _aliyun_section(section: dict[str, Any], public_url: str) -> dict[str, Any]:
    # `template_code` was this setting's first name; a section may still give it.
    if "template_code" in section:
        if "free_text_template" in section:
            raise ValueError("template_code: give free_text_template or template_code (its older name), not both")
        section = dict(section)
        section["free_text_template"] = section.pop("template_code")
    return section


PROVIDER_TYPE = ProviderType(
    name="aliyun",
    settings=AliyunSettings,
    build=lambda settings, name: AliyunSmsProvider(settings, name=name),
    account_key="access_key_id",
    prepare=_aliyun_section,
)

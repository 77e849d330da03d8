"""Twilio: SMS over the Messages API, voice over the Calls API with TwiML <Say>, signed status callbacks.

Wire format (Twilio REST API 2010-04-01):
- `POST {api}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP basic auth
  (AccountSid, AuthToken): To, Body, From or MessagingServiceSid, StatusCallback. 201 with `{sid, status}`.
  A Content API template instead of Body: ContentSid and ContentVariables, a JSON object of
  strings (the job's ids for this provider: `content_sid`, and `variables` = "numbered" (default:
  the params in declared order as "1", "2", ...) or "named" (keyed by the params' own names)).
- `POST .../Calls.json`: To, From, Twiml, StatusCallback, StatusCallbackEvent (repeated).
- Errors: `{code, message, more_info, status}` with the HTTP status; 429 carries code 20429.
- Callbacks (status and incoming SMS) are form posts signed with `X-Twilio-Signature`: base64
  HMAC-SHA1, keyed by the auth token, of the full URL Twilio called followed by every POST
  parameter sorted by name, each name immediately followed by its value.

Answers: an incoming message is answered with empty TwiML (`<Response/>`, text/xml: no reply is
sent); a status callback with 204.

Our StatusCallback carries `?ref=<our message id>`, so a receipt names its message even when it
arrives before the send was recorded; the signature covers the query, so it cannot be forged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit, urlunsplit
from xml.sax.saxutils import escape, quoteattr

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
    SignatureError,
    setting,
)
from providers.http import (
    HttpAdapter,
    ProviderNotStarted,
    header,
    http_status_kind,
    json_or_none,
    retry_after,
    transport_failure,
)
from providers.templates import template_ids, template_params

SIGNATURE_HEADER = "X-Twilio-Signature"
API_VERSION = "2010-04-01"
DEFAULT_RATE_LIMIT_WAIT = 1.0

# Twilio error codes (REST answers and the ErrorCode of status callbacks) -> our error classes.
# Codes that concern our account rather than the message are transient: another provider (or the
# same one after the operator fixes the account) can still deliver it.
ERROR_KINDS: dict[int, ErrorKind] = {
    20003: ErrorKind.TRANSIENT,  # authentication failed (our credentials)
    20005: ErrorKind.TRANSIENT,  # account not active
    20429: ErrorKind.RATE_LIMITED,  # too many requests
    20500: ErrorKind.TRANSIENT,  # internal server error
    20503: ErrorKind.TRANSIENT,  # service unavailable
    21211: ErrorKind.RECIPIENT_INVALID,  # invalid 'To' phone number
    21214: ErrorKind.RECIPIENT_INVALID,  # 'To' phone number cannot be reached
    21217: ErrorKind.RECIPIENT_INVALID,  # phone number does not appear to be valid
    21401: ErrorKind.RECIPIENT_INVALID,  # invalid phone number
    21614: ErrorKind.RECIPIENT_INVALID,  # 'To' number is not a valid mobile number
    21610: ErrorKind.RECIPIENT_OPTED_OUT,  # recipient replied STOP
    21212: ErrorKind.SENDER_FLAGGED,  # invalid 'From' number: another number from the pool may work
    21606: ErrorKind.SENDER_FLAGGED,  # 'From' number is not SMS-capable on this account
    21611: ErrorKind.RATE_LIMITED,  # 'From' number has too many queued messages
    21215: ErrorKind.PERMANENT,  # geo permissions do not allow calls to this number
    21408: ErrorKind.PERMANENT,  # SMS to this region not enabled
    21407: ErrorKind.PERMANENT,  # number type does not support SMS
    21612: ErrorKind.PERMANENT,  # cannot route to this number
    21602: ErrorKind.PERMANENT,  # message body required
    21617: ErrorKind.PERMANENT,  # body exceeds 1600 characters
    21654: ErrorKind.PERMANENT,  # ContentVariables without a ContentSid
    21655: ErrorKind.PERMANENT,  # the ContentSid is invalid (no such Content template)
    21656: ErrorKind.PERMANENT,  # ContentVariables is not a JSON object of non-empty strings
    30001: ErrorKind.TRANSIENT,  # queue overflow
    30002: ErrorKind.TRANSIENT,  # account suspended
    30003: ErrorKind.TRANSIENT,  # unreachable handset (switched off, out of coverage)
    30004: ErrorKind.RECIPIENT_OPTED_OUT,  # message blocked by the recipient (or a STOP)
    30005: ErrorKind.RECIPIENT_INVALID,  # unknown destination handset
    30006: ErrorKind.RECIPIENT_INVALID,  # landline or unreachable carrier
    30007: ErrorKind.SENDER_FLAGGED,  # carrier filtered the message as spam
    30008: ErrorKind.TRANSIENT,  # unknown error
    30032: ErrorKind.SENDER_FLAGGED,  # toll-free number not verified
    30034: ErrorKind.SENDER_FLAGGED,  # unregistered A2P 10DLC number
}

# MessageStatus of a status callback -> our receipt status; None: a step we do not record.
MESSAGE_STATUSES: dict[str, str | None] = {
    "accepted": None,
    "scheduled": None,
    "queued": None,
    "sending": None,
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "partially_delivered": "undelivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}

# CallStatus of a call status callback -> our receipt status. An answered call has reached the
# recipient: for a voice notice that is delivery.
CALL_STATUSES: dict[str, str | None] = {
    "queued": None,
    "initiated": "sent",
    "ringing": "sent",
    "in-progress": "delivered",
    "answered": "delivered",
    "completed": "delivered",
    "busy": "undelivered",
    "no-answer": "undelivered",
    "canceled": "failed",
    "failed": "failed",
}
CALL_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")


def error_kind(code: int | str | None, http_status: int = 400) -> ErrorKind:
    """Our class of a Twilio error code; the HTTP status decides for codes not in the table."""
    known = ERROR_KINDS.get(int(code)) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else None
    return known if known is not None else http_status_kind(http_status)


def receipt_error_kind(code: str | None) -> ErrorKind | None:
    """The class of a status callback's ErrorCode, for codes in the table only (30007: the carrier
    filtered the message as spam, i.e. the sender is flagged)."""
    if not code or not code.isdigit():
        return None
    return ERROR_KINDS.get(int(code))


def content_variables(params: Mapping[str, str], naming: str) -> str | None:
    """ContentVariables for a Content API template: the job's params in their declared order as
    "1", "2", ... ("numbered", what every channel's templates take, WhatsApp's included), or under
    their own names ("named", for templates written with {{name}}). None when there are none."""
    if not params:
        return None
    keyed = dict(params) if naming == "named" else {str(i): v for i, v in enumerate(params.values(), 1)}
    return orjson.dumps(keyed).decode()


@dataclass(frozen=True, slots=True, kw_only=True)
class TwilioSettings:
    account_sid: str = setting(doc="the account SID (AC...)", example="AC0123456789abcdef0123456789abcdef")
    auth_token: str = setting(
        doc="the auth token; or auth_token_file, a mounted secret",
        secret=True,
        example="/run/secrets/twilio_auth_token",
    )
    from_number: str | None = setting(
        None, doc="the From number when the job has no sender from a number pool", example="+14155550100"
    )
    messaging_service_sid: str | None = setting(
        None,
        doc="a Messaging Service SID instead of a From number, for SMS",
        example="MG0123456789abcdef0123456789abcdef",
    )
    public_base_url: str | None = setting(
        None,
        doc="our public origin as Twilio reaches it (behind a proxy: the proxy's), for receipts and their"
        " signatures; default public_url",
        example="https://gw.example.com",
    )
    api_base_url: str = setting("https://api.twilio.com", doc="the REST API origin")
    voice_language: str = setting("en-US", doc="the language calls are read in")
    voice: str | None = setting(
        None, doc="the TTS voice, e.g. Polly.Joanna; unset lets Twilio choose for the language", example="Polly.Joanna"
    )
    connect_timeout: float = setting(3.0, doc="seconds to connect")
    timeout: float = setting(8.0, doc="seconds for the whole request")
    max_per_second: float | None = setting(
        None, doc="the account's documented send rate, used as its default throughput", example=10.0
    )


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature of a request to `url` with these POST parameters."""
    grouped: dict[str, set[str]] = {}
    for name, value in params:
        grouped.setdefault(name, set()).add(value)
    # Names sorted; a repeated name contributes each distinct value in sorted order, as Twilio's
    # own helper libraries sign it.
    data = url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _with_and_without_port(url: str) -> tuple[str, str]:
    # Twilio has signed some requests with the default port spelt out and some without; both forms
    # of the one URL are accepted, nothing else.
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    without = urlunsplit(parts._replace(netloc=prefix + host))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port}"))
    return with_port, without


def validate_signature(
    auth_token: str, url: str, params: Sequence[tuple[str, str]] | str, signature: str | None
) -> bool:
    """True when `signature` is Twilio's for this URL and these POST parameters (or this JSON body)."""
    if not signature:
        return False
    body_ok = True
    pairs: Sequence[tuple[str, str]]
    if isinstance(params, str):
        # JSON-bodied webhooks sign the URL only and put the body's SHA-256 in its query.
        claimed = parse_qs(urlsplit(url).query).get("bodySHA256", [""])[0]
        body_ok = hmac.compare_digest(hashlib.sha256(params.encode()).hexdigest(), claimed)
        pairs = ()
    else:
        pairs = params
    matches = [
        hmac.compare_digest(compute_signature(auth_token, candidate, pairs), signature)
        for candidate in _with_and_without_port(url)
    ]
    return body_ok and any(matches)


class TwilioProvider(HttpAdapter):
    settings: TwilioSettings

    def __init__(self, settings: TwilioSettings, *, name: str = "twilio") -> None:
        self.name = name
        self.settings = settings
        self.capabilities = Capabilities(
            channels=frozenset({"sms", "voice"}),
            receipts=settings.public_base_url is not None,
            lookup=False,  # Twilio cannot be asked about our reference
            max_per_second=settings.max_per_second,
            template_id_keys=frozenset({"content_sid"}),
        )
        self._session: aiohttp.ClientSession | None = None
        credentials = f"{settings.account_sid}:{settings.auth_token}".encode()
        self._authorization = "Basic " + base64.b64encode(credentials).decode()
        self._accounts_url = (
            f"{settings.api_base_url.rstrip('/')}/{API_VERSION}/Accounts/{quote(settings.account_sid, safe='')}"
        )

    def __repr__(self) -> str:
        return f"TwilioProvider(name={self.name!r}, settings={self.settings!r})"

    async def send(self, message: Outbound) -> SendResult:
        if message.channel == "sms":
            return await self._post("Messages.json", self._sms_form(message))
        if message.channel == "voice":
            sender = message.sender or self.settings.from_number
            if not sender:
                return SendResult(error=ProviderError(ErrorKind.PERMANENT, "no_sender", "voice needs a From number"))
            return await self._post("Calls.json", self._call_form(message, sender))
        return SendResult(error=ProviderError(ErrorKind.PERMANENT, "unsupported_channel", message.channel))

    def status_callback_url(self, reference: str) -> str | None:
        base = self.settings.public_base_url
        if base is None:
            return None
        return f"{base.rstrip('/')}/v1/receipts/{self.name}?ref={quote(reference, safe='')}"

    def _sms_form(self, message: Outbound) -> list[tuple[str, str]]:
        form = [("To", message.to), *self.message_content(message.content)]
        sender = message.sender or self.settings.from_number
        if sender:
            form.append(("From", sender))
        elif self.settings.messaging_service_sid:
            form.append(("MessagingServiceSid", self.settings.messaging_service_sid))
        callback = self.status_callback_url(message.reference)
        if callback:
            form.append(("StatusCallback", callback))
        return form

    def message_content(self, content: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Body, or a Content API template: ContentSid and its ContentVariables."""
        ids = template_ids(content, self.name)
        sid = ids.get("content_sid")
        if not sid:
            return [("Body", str(content.get("text", "")))]
        variables = content_variables(template_params(content), ids.get("variables", "numbered"))
        return [("ContentSid", sid), *([("ContentVariables", variables)] if variables else [])]

    def _call_form(self, message: Outbound, sender: str) -> list[tuple[str, str]]:
        form = [("To", message.to), ("From", sender), ("Twiml", self.twiml(message.content))]
        callback = self.status_callback_url(message.reference)
        if callback:
            form += [("StatusCallback", callback), ("StatusCallbackMethod", "POST")]
            form += [("StatusCallbackEvent", event) for event in CALL_STATUS_EVENTS]
        return form

    def twiml(self, content: Mapping[str, Any]) -> str:
        language = str(content.get("language") or self.settings.voice_language)
        attributes = f" language={quoteattr(language)}"
        if self.settings.voice:
            attributes += f" voice={quoteattr(self.settings.voice)}"
        text = escape(str(content.get("text", "")))
        return f'<?xml version="1.0" encoding="UTF-8"?><Response><Say{attributes}>{text}</Say></Response>'

    async def _post(self, resource: str, form: list[tuple[str, str]]) -> SendResult:
        if self._session is None:
            raise ProviderNotStarted(f"{self.name} provider used before start()")
        try:
            async with self._session.post(
                f"{self._accounts_url}/{resource}", data=form, headers={"Authorization": self._authorization}
            ) as response:
                body = await response.read()
                status, headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult(error=transport_failure(exc, self.name))
        answer = json_or_none(body)
        if 200 <= status < 300 and isinstance(answer, dict) and answer.get("sid"):
            return SendResult(provider_message_id=str(answer["sid"]))
        return SendResult(error=self._error(status, answer, headers))

    def _error(self, status: int, answer: Any, headers: Mapping[str, str]) -> ProviderError:
        code: Any = answer.get("code") if isinstance(answer, dict) else None
        message = str(answer.get("message", "")) if isinstance(answer, dict) else ""
        if code in (None, ""):
            code = 20429 if status == 429 else status
        kind = error_kind(code, status)
        wait = retry_after(headers)
        if kind == ErrorKind.RATE_LIMITED and wait is None:
            wait = DEFAULT_RATE_LIMIT_WAIT
        return ProviderError(kind, str(code), message or f"HTTP {status}", wait if kind.retryable else None)

    # -- callbacks ---------------------------------------------------------------------------------

    def _verified_params(self, request: InboundRequest) -> list[tuple[str, str]]:
        url = self._public_url(request.url)
        signature = header(request.headers, SIGNATURE_HEADER)
        if not signature:
            raise SignatureError(f"missing {SIGNATURE_HEADER} header")
        try:
            text = request.body.decode()
        except UnicodeDecodeError:
            raise SignatureError("callback body is not UTF-8") from None
        content_type = header(request.headers, "Content-Type") or ""
        if "bodySHA256" in parse_qs(urlsplit(url).query) and "json" in content_type:
            if not validate_signature(self.settings.auth_token, url, text, signature):
                raise SignatureError("signature does not match")
            return []
        params = parse_qsl(text, keep_blank_values=True)
        if not validate_signature(self.settings.auth_token, url, params, signature):
            raise SignatureError("signature does not match")
        return params

    def _public_url(self, url: str) -> str:
        base = self.settings.public_base_url
        if base is None:
            return url
        # Behind a proxy the URL we see is not the one Twilio signed: keep our path and query, put
        # them on the configured public origin.
        parts = urlsplit(url)
        path_qs = parts.path + (f"?{parts.query}" if parts.query else "")
        return base.rstrip("/") + path_qs

    def parse_receipts(self, request: InboundRequest) -> list[Receipt]:
        params = self._verified_params(request)
        values = dict(params)
        reference = parse_qs(urlsplit(request.url).query).get("ref", [None])[0]
        raw = orjson.dumps(values).decode()
        if "MessageSid" in values and "MessageStatus" in values:
            twilio_status = values["MessageStatus"]
            if twilio_status not in MESSAGE_STATUSES:
                raise CallbackFormatError(f"unknown MessageStatus {twilio_status!r}")
            ours = MESSAGE_STATUSES[twilio_status]
            if ours is None:
                return []
            error_code = values.get("ErrorCode") or None
            kind = receipt_error_kind(error_code) if ours in ("undelivered", "failed") else None
            return [Receipt(values["MessageSid"], ours, reference, error_code, None, raw, kind)]
        if "CallSid" in values and "CallStatus" in values:
            twilio_status = values["CallStatus"]
            if twilio_status not in CALL_STATUSES:
                raise CallbackFormatError(f"unknown CallStatus {twilio_status!r}")
            ours = CALL_STATUSES[twilio_status]
            if ours is None:
                return []
            error_code = values.get("ErrorCode") or (twilio_status if ours in ("undelivered", "failed") else None)
            occurred = _rfc2822(values.get("Timestamp"))
            kind = receipt_error_kind(values.get("ErrorCode")) if ours in ("undelivered", "failed") else None
            return [Receipt(values["CallSid"], ours, reference, error_code, occurred, raw, kind)]
        raise CallbackFormatError("neither a message nor a call status callback")

    def parse_inbound(self, request: InboundRequest) -> list[InboundMessage]:
        values = dict(self._verified_params(request))
        try:
            return [InboundMessage(sender=values["From"], to=values.get("To"), text=values.get("Body", ""))]
        except KeyError:
            raise CallbackFormatError("incoming message without From") from None

    def acknowledge(self, kind: CallbackKind, summary: Mapping[str, int]) -> CallbackAnswer:
        """Twilio reads the answer to an incoming message as TwiML, what to do next: an empty
        <Response/> sends no reply (anything else is logged as error 11200 or 12300 in the console).
        A status callback's answer is not read; 204 says it was taken."""
        if kind == "inbound":
            return CallbackAnswer(200, EMPTY_TWIML, "text/xml")
        return CallbackAnswer(204)


EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _rfc2822(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _twilio_section(section: dict[str, Any], public_url: str) -> dict[str, Any]:
    # Receipts and signature checks need our public origin as Twilio reaches it.
    return {"public_base_url": public_url, **section}


PROVIDER_TYPE = ProviderType(
    name="twilio",
    settings=TwilioSettings,
    build=lambda settings, name: TwilioProvider(settings, name=name),
    account_key="account_sid",
    prepare=_twilio_section,
)

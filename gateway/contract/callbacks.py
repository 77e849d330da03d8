"""Provider callbacks: delivery receipts and recipients' replies, each in its provider's own wire format.

The gateway does not judge these bodies with a model: each provider parses and signature-checks its
own (providers/*.py). The models here say, for the document, what each provider sends and what it is
answered, so a reader knows which media type and fields belong to which provider. A callback
without a valid signature (or, for aliyun and tencent, the callback URL's token) is 401 whatever its body.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel, TypeAdapter

from gateway.contract.base import NO_NUL, Reply
from gateway.contract.operations import Answer, Operation, Query, problem
from gateway.domain.models import Status
from providers.twilio import CALL_STATUSES, MESSAGE_STATUSES

FORM = "application/x-www-form-urlencoded"
MESSAGE_EXAMPLE = "msg_01JD5ZQ8W1X2Y3Z4A5B6C7D8E9"
TWIML = "text/xml"


class Wire(BaseModel):
    """A provider's own format: the fields the gateway reads; the provider may send more."""

    model_config = ConfigDict(extra="allow", frozen=True)


def _text(max_chars: int, description: str | None = None) -> Any:
    return Annotated[str, Field(min_length=1, max_length=max_chars, pattern=NO_NUL, description=description)]


# -- sandbox: JSON, signed with Sandbox-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t." + body> -------


class SandboxReceipt(Wire):
    sid: _text(128, "the id the sandbox gave the message")  # type: ignore[valid-type]
    status: Literal[Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.FAILED]
    reference: _text(40, "our message id") | None = None  # type: ignore[valid-type]
    error_code: _text(64) | None = None  # type: ignore[valid-type]
    occurred_at: float | None = Field(None, description="seconds since the epoch")
    part: Annotated[int, Field(ge=1, le=255)] | None = Field(None, description="this segment, with parts")
    parts: Annotated[int, Field(ge=1, le=255)] | None = None


class SandboxReceipts(Wire):
    """sandbox: a batch of receipts."""

    receipts: list[SandboxReceipt]


class SandboxReply(Wire):
    sender: str = Field(alias="from", description="the recipient who replied")
    to: str | None = Field(None, description="our number they replied to")
    text: str
    received_at: float | None = None


class SandboxReplies(Wire):
    """sandbox: a batch of replies."""

    messages: list[SandboxReply]


# -- aliyun: JSON arrays from the console's HTTP batch push; the push URL carries ?token=<callback_token> ---


class AliyunSmsReportItem(Wire):
    phone_number: str = Field(examples=["13812345678"])
    success: bool | Literal["true", "false"]
    biz_id: str = Field(description="the BizId SendSms answered")
    out_id: str | None = Field(None, description="our message id")
    err_code: str | None = None
    err_msg: str | None = None
    report_time: str | None = Field(None, description="China Standard Time", examples=["2026-01-31 09:00:05"])
    send_time: str | None = None


class AliyunSmsReport(RootModel[list[AliyunSmsReportItem]]):
    """aliyun: SmsReport, a batch of delivery reports."""


class AliyunSmsUpItem(Wire):
    phone_number: str
    content: str = ""
    dest_code: str | None = Field(None, description="the extension of our number they replied to")
    send_time: str | None = Field(None, description="China Standard Time")
    sign_name: str | None = None
    sequence_id: int | str | None = None


class AliyunSmsUp(RootModel[list[AliyunSmsUpItem]]):
    """aliyun: SmsUp, a batch of replies."""


class AliyunPushAnswer(Reply):
    """The answer Alibaba Cloud SMS documents for SmsReport and SmsUp: any other makes it push again."""

    code: Literal[0]
    msg: str = Field(examples=["接收成功"])


# -- tencent: the SMS console's status and reply callbacks; the callback URL carries ?token=<callback_token> --


class TencentSmsStatusItem(Wire):
    sid: str = Field(description="the SerialNo SendSms answered")
    report_status: Literal["SUCCESS", "FAIL"]
    errmsg: str | None = Field(None, description="DELIVRD, or the carrier's code", examples=["DELIVRD"])
    description: str | None = None
    mobile: str | None = Field(None, examples=["13812345678"])
    nationcode: str | None = Field(None, examples=["86"])
    user_receive_time: str | None = Field(None, description="China Standard Time", examples=["2026-01-31 09:00:05"])


class TencentSmsStatus(RootModel[list[TencentSmsStatusItem]]):
    """tencent: a status callback, a batch of delivery reports."""


class TencentSmsReply(Wire):
    """tencent: a reply callback (one reply)."""

    mobile: str = Field(examples=["13812345678"])
    nationcode: str = Field("86", examples=["86"])
    text: str = Field("", examples=["退订"])
    sign: str | None = None
    extend: str | None = Field(None, description="the extension of our number they replied to")
    time: int | None = Field(None, description="Unix seconds")


class TencentCallbackAnswer(Reply):
    """The answer Tencent Cloud SMS documents for its status and reply callbacks."""

    result: Literal[0]
    errmsg: str = Field(examples=["OK"])


# -- twilio: form posts signed with X-Twilio-Signature (HMAC-SHA1 of the URL and the sorted parameters) ----


class TwilioMessageStatus(Wire):
    """twilio: a message status callback (the StatusCallback URL carries ?ref=<our message id>)."""

    MessageSid: str
    MessageStatus: Literal[tuple(MESSAGE_STATUSES)]  # type: ignore[valid-type]
    ErrorCode: str = ""


class TwilioCallStatus(Wire):
    """twilio: a call status callback."""

    CallSid: str
    CallStatus: Literal[tuple(CALL_STATUSES)]  # type: ignore[valid-type]
    ErrorCode: str = ""
    Timestamp: str = Field("", description="RFC 2822")


class TwilioIncomingMessage(Wire):
    """twilio: an incoming message."""

    From: str = Field(examples=["+14155552671"])
    To: str = ""
    Body: str = Field("", examples=["STOP"])


# -- the gateway's own answers (providers that document none) ---------------------------------------------


class ReceiptSummary(Reply):
    applied: Annotated[int, Field(ge=0)]
    duplicate: Annotated[int, Field(ge=0)]
    held: Annotated[int, Field(ge=0, description="for a message whose send is not recorded yet")]


class InboundSummary(Reply):
    opted_out: Annotated[int, Field(ge=0)]
    opted_in: Annotated[int, Field(ge=0)]
    other: Annotated[int, Field(ge=0)]
    unmatched: Annotated[int, Field(ge=0, description="from an address no tenant has messaged")]


NoNul = Annotated[str, Field(pattern=NO_NUL)]  # a NUL anywhere in the URL is refused (400)


class CallbackQuery(Query):
    token: NoNul | None = Field(None, description="aliyun, tencent: the callback_token of the callback URL")
    ref: NoNul | None = Field(None, description="twilio: our message id, set on the StatusCallback URL")


PROVIDER: dict[str, Any] = {
    "type": "string",
    "pattern": NO_NUL,
    "description": "the provider's section name in the configuration",
    "examples": ["sandbox"],
}
SIGNATURES = (
    {"name": "Sandbox-Signature", "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": "X-Twilio-Signature", "in": "header", "required": False, "schema": {"type": "string"}},
)
REFUSALS = {
    400: problem("signed correctly but not a callback this provider sends"),
    401: problem("signature (or aliyun's and tencent's token) missing, wrong or stale; nothing recorded"),
    404: problem("no such provider here (or it takes no receipts)"),
    408: problem("the body took longer to arrive than the gateway waits"),
    413: problem("body too large"),
    503: problem("the database is unavailable: nothing recorded, the provider sends it again"),
}


def either(*models: type[BaseModel]) -> TypeAdapter[Any]:
    """A body that is one of these models (told apart by shape), each named in the document."""
    return TypeAdapter(Union[models])  # type: ignore[arg-type]  # noqa: UP007 - built from a tuple


OPERATIONS = (
    Operation(
        "post",
        "/v1/receipts/{provider}",
        "postReceipts",
        "Delivery receipts in the provider's own wire format",
        description="sandbox: SandboxReceipts (JSON); aliyun: AliyunSmsReport (JSON); tencent: TencentSmsStatus "
        "(JSON); twilio: a message or call status callback (form). Answered: aliyun "
        '`{"code": 0, "msg": "接收成功"}`, tencent `{"result": 0, "errmsg": "OK"}`, twilio 204, others the '
        "gateway's ReceiptSummary.",
        path_params={"provider": PROVIDER},
        query=CallbackQuery,
        headers=SIGNATURES,
        auth=False,
        body=either(SandboxReceipts, AliyunSmsReport, TencentSmsStatus),
        body_examples={
            "sandbox": {"receipts": [{"sid": "sbx-0001", "status": Status.DELIVERED, "reference": MESSAGE_EXAMPLE}]},
            "aliyun": [
                {
                    "phone_number": "13812345678",
                    "success": True,
                    "biz_id": "108613^1234567890",
                    "out_id": MESSAGE_EXAMPLE,
                    "report_time": "2026-01-31 09:00:05",
                }
            ],
            "tencent": [
                {
                    "user_receive_time": "2026-01-31 09:00:05",
                    "nationcode": "86",
                    "mobile": "13812345678",
                    "report_status": "SUCCESS",
                    "errmsg": "DELIVRD",
                    "description": "用户短信送达成功",
                    "sid": "2433:1045710669157053657849499619",
                }
            ],
        },
        body_also={FORM: either(TwilioMessageStatus, TwilioCallStatus)},
        answers={
            200: Answer("recorded", either(ReceiptSummary, AliyunPushAnswer, TencentCallbackAnswer)),
            204: Answer("recorded (twilio)"),
            **REFUSALS,
        },
    ),
    Operation(
        "post",
        "/v1/inbound/{provider}",
        "postInbound",
        "Replies from recipients; opt-out keywords (STOP, 退订, ...) suppress the sender, opt-in ones lift it",
        description="sandbox: SandboxReplies (JSON); aliyun: AliyunSmsUp (JSON); tencent: TencentSmsReply (JSON); "
        'twilio: an incoming message (form). Answered: aliyun `{"code": 0, "msg": "接收成功"}`, tencent '
        '`{"result": 0, "errmsg": "OK"}`, twilio empty TwiML (no reply is sent), others the gateway\'s '
        "InboundSummary.",
        path_params={"provider": PROVIDER},
        query=CallbackQuery,
        headers=SIGNATURES,
        auth=False,
        body=either(SandboxReplies, AliyunSmsUp, TencentSmsReply),
        body_examples={
            "sandbox": {"messages": [{"from": "+8613812345678", "to": "+8610690000", "text": "退订"}]},
            "aliyun": [{"phone_number": "13812345678", "content": "TD", "send_time": "2026-01-31 09:00:05"}],
            "tencent": {"mobile": "13812345678", "nationcode": "86", "text": "退订", "time": 1769821205},
        },
        body_also={FORM: TwilioIncomingMessage},
        answers={
            200: Answer(
                "handled",
                either(InboundSummary, AliyunPushAnswer, TencentCallbackAnswer),
                also={TWIML: {"type": "string", "examples": ['<?xml version="1.0" encoding="UTF-8"?><Response/>']}},
            ),
            **REFUSALS,
        },
    ),
)

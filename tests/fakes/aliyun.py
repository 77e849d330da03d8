"""A fake Alibaba Cloud SMS endpoint (Dysmsapi 2017-05-25 SendSms, RPC signature V1) and its pushes.

The signature check is written here from the published algorithm, apart from the adapter's.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import time
import uuid
from datetime import datetime
from urllib.parse import quote

import orjson
from aiohttp import web

from tests.fakes.http import Answer, FakeHttpService, Recorded, post_answer, respond


def _enc(value: str) -> str:
    return quote(value, safe="~").replace("%7E", "~")


def expected_signature(secret: str, method: str, params: dict[str, str]) -> str:
    canonical = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params.items()) if k != "Signature")
    string_to_sign = method + "&" + _enc("/") + "&" + _enc(canonical)
    return base64.b64encode(hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()).decode()


def answer(code: str, message: str, status: int = 200, **extra: str) -> web.Response:
    return respond(status, {"Code": code, "Message": message, "RequestId": str(uuid.uuid4()).upper(), **extra})


class FakeAliyunSms(FakeHttpService):
    def __init__(self, access_key_id: str = "LTAI5tFakeKeyId", access_key_secret: str = "fake-secret") -> None:
        super().__init__()
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sent: dict[str, dict[str, str]] = {}  # BizId -> the request's parameters
        self.number_codes: dict[str, str] = {}  # PhoneNumbers -> the Code to answer
        self._next_codes: list[str] = []
        self._nonces: set[str] = set()
        self.answers: list[Answer] = []  # what each push got back
        # The account's approved templates (TemplateCode -> its variables) and signatures, as the
        # console would list them: a call naming another, or leaving a variable out, is refused.
        self.templates: dict[str, tuple[str, ...]] = {"SMS_154950909": ("content",)}
        self.sign_names: set[str] = {"阿里云短信测试"}

    def refuse_next(self, count: int, code: str) -> None:
        """The next requests are answered HTTP 200 with this business Code (as Aliyun does)."""
        self._next_codes.extend([code] * count)

    def authenticate(self, request: web.Request, recorded: Recorded) -> web.StreamResponse | None:
        params = {**recorded.query, **recorded.form}
        if params.get("AccessKeyId") != self.access_key_id:
            return answer("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
            return answer("InvalidParameter", "SignatureMethod or SignatureVersion is invalid.", 400)
        given = params.get("Signature", "")
        if not hmac.compare_digest(given, expected_signature(self.access_key_secret, request.method, params)):
            return answer("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", 400)
        try:
            stamp = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return answer("InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.", 400)
        if abs(time.time() - calendar.timegm(stamp.timetuple())) > 900:
            return answer("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400)
        nonce = params.get("SignatureNonce", "")
        if not nonce or nonce in self._nonces:
            return answer("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        self._nonces.add(nonce)
        return None

    async def answer(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        params = {**recorded.query, **recorded.form}
        if params.get("Action") != "SendSms" or params.get("Version") != "2017-05-25":
            return answer(
                "InvalidAction.NotFound", "Specified api is not found, please check your url and method.", 404
            )
        for required in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(required):
                return answer(
                    "MissingParameter", f"The input parameter {required} that is mandatory is not supplied.", 400
                )
        refused = self.template_refusal(params)
        if refused is not None:
            return refused
        if self._next_codes:
            code = self._next_codes.pop(0)
            return answer(code, f"scripted {code}")
        phone = params["PhoneNumbers"]
        if phone in self.number_codes:
            return answer(self.number_codes[phone], "refused for this number")
        if not phone.isdigit():
            return answer("isv.MOBILE_NUMBER_ILLEGAL", "invalid mobile number")
        biz_id = f"{int(time.time() * 1000) % 10**15}^{len(self.sent)}"
        self.sent[biz_id] = params
        return answer("OK", "OK", BizId=biz_id)

    def template_refusal(self, params: dict[str, str]) -> web.Response | None:
        """Dysmsapi's answer to a call whose template, signature or TemplateParam it would refuse."""
        if params["SignName"] not in self.sign_names:
            return answer("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        variables = self.templates.get(params["TemplateCode"])
        if variables is None:
            return answer("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            values = orjson.loads(params.get("TemplateParam") or "{}")
        except orjson.JSONDecodeError:
            values = None
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return answer("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if any(name not in values for name in variables):
            return answer("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        return None

    # -- pushes (unsigned, as Aliyun sends them) ---------------------------------------------------

    def sms_report(
        self, biz_id: str, success: bool = True, err_code: str = "DELIVERED", err_msg: str | None = None
    ) -> bytes:
        params = self.sent[biz_id]
        return orjson.dumps(
            [
                {
                    "phone_number": params["PhoneNumbers"],
                    "send_time": "2025-03-04 18:20:25",
                    "report_time": "2025-03-04 18:20:30",
                    "success": success,
                    "err_code": err_code,
                    "err_msg": err_msg or ("用户接收成功" if success else "失败"),
                    "sms_size": "1",
                    "biz_id": biz_id,
                    "out_id": params.get("OutId", ""),
                }
            ]
        )

    def sms_up(self, phone_number: str, content: str, dest_code: str = "1234") -> bytes:
        return orjson.dumps(
            [
                {
                    "phone_number": phone_number,
                    "send_time": "2025-03-04 18:00:00",
                    "content": content,
                    "sign_name": "阿里云短信测试",
                    "dest_code": dest_code,
                    "sequence_id": 1234567,
                }
            ]
        )

    async def push(self, url: str, body: bytes) -> int:
        """Push a batch; the status back. `self.answers` keeps each whole answer."""
        answer = await post_answer(url, body, {"Content-Type": "application/json"})
        self.answers.append(answer)
        return answer.status

    @staticmethod
    def acknowledged(answer: Answer) -> bool:
        """Whether Aliyun counts a push as received: HTTP 200 with a JSON body whose `code` is 0.
        Anything else is a failed push, and the batch comes again."""
        if answer.status != 200:
            return False
        try:
            reply = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            return False
        return isinstance(reply, dict) and reply.get("code") == 0

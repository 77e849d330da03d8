"""A fake Tencent Cloud SMS endpoint (TencentCloud API 3.0, SendSms 2021-01-11) and its callbacks.

It checks each request the way TencentCloud API does: the Authorization header's TC3-HMAC-SHA256
signature recomputed from the request as received (the signed headers it names, the raw body),
the SecretId, the credential scope and the timestamp's age; it answers in the API's JSON shape
(HTTP 200 always; `Response.Error` for a refused request, `Response.SendStatusSet` per number).
The signing here is written from the published algorithm, apart from the adapter's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.http import Answer, FakeHttpService, Recorded, post_answer, respond

AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)/tc3_request,"
    r" ?SignedHeaders=(?P<headers>[a-z0-9;-]+), ?Signature=(?P<signature>[0-9a-f]{64})$"
)
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def tc3_signature(secret_key: str, date: str, service: str, timestamp: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = "\n".join(("TC3-HMAC-SHA256", timestamp, f"{date}/{service}/tc3_request", digest))
    key = ("TC3" + secret_key).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def canonical_from(request: web.Request, signed: list[str], body: bytes) -> str:
    headers = "".join(f"{name}:{request.headers.get(name, '').strip().lower()}\n" for name in signed)
    query = request.query_string
    return "\n".join((request.method, request.path, query, headers, ";".join(signed), hashlib.sha256(body).hexdigest()))


def refused(code: str, message: str) -> web.Response:
    return respond(200, {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}})


class FakeTencentSms(FakeHttpService):
    def __init__(
        self,
        secret_id: str = "AKIDfake0000000000000000000000000000",
        secret_key: str = "fake-tencent-secret-key",
        sdk_app_id: str = "1400006666",
    ) -> None:
        super().__init__()
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.sdk_app_id = sdk_app_id
        # The application's approved templates (TemplateId -> how many variables {1}, {2}, ...) and
        # signatures, as the console lists them.
        self.templates: dict[str, int] = {"449739": 2}
        self.sign_names: set[str] = {"腾讯云"}
        self.sent: dict[str, dict[str, Any]] = {}  # SerialNo -> the request's body
        self.number_codes: dict[str, str] = {}  # PhoneNumber -> the per-number Code to answer
        self._next_codes: list[str] = []
        self.answers: list[Answer] = []  # what each callback got back

    def refuse_next(self, count: int, code: str) -> None:
        """The next requests are refused with this Code (as `Response.Error`)."""
        self._next_codes.extend([code] * count)

    def authenticate(self, request: web.Request, recorded: Recorded) -> web.StreamResponse | None:
        match = AUTHORIZATION.match(request.headers.get("Authorization", ""))
        if match is None:
            return refused("AuthFailure.InvalidAuthorization", "Authorization header is not TC3-HMAC-SHA256.")
        if match["id"] != self.secret_id:
            return refused("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        stamp = request.headers.get("X-TC-Timestamp", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return refused("AuthFailure.SignatureExpire", "The signature has expired or the timestamp is invalid.")
        signed = match["headers"].split(";")
        scope_date = datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%d")
        if match["service"] != "sms" or match["date"] != scope_date or not {"content-type", "host"} <= set(signed):
            return refused("AuthFailure.SignatureFailure", "The credential scope or signed headers are invalid.")
        if signed != sorted(signed):
            return refused("AuthFailure.SignatureFailure", "SignedHeaders must be sorted.")
        expected = tc3_signature(
            self.secret_key, match["date"], "sms", stamp, canonical_from(request, signed, recorded.body)
        )
        if not hmac.compare_digest(expected, match["signature"]):
            return refused(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. Please check your signature is correct.",
            )
        return None

    async def answer(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if request.headers.get("X-TC-Action") != "SendSms":
            return refused("InvalidAction", "The action requested is not found.")
        if request.headers.get("X-TC-Version") != "2021-01-11":
            return refused("NoSuchVersion", "The API version does not exist.")
        if not request.headers.get("X-TC-Region"):
            return refused("MissingParameter", "The request is missing the Region parameter.")
        if not request.content_type.startswith("application/json"):
            return refused("FailedOperation.JsonParseFail", "The request body is not JSON.")
        try:
            body = orjson.loads(recorded.body)
        except orjson.JSONDecodeError:
            return refused("FailedOperation.JsonParseFail", "The request body is not JSON.")
        problem = self.request_refusal(body)
        if problem is not None:
            return problem
        if self._next_codes:
            code = self._next_codes.pop(0)
            return refused(code, f"scripted {code}")
        return respond(
            200,
            {
                "Response": {
                    "SendStatusSet": [self._send_one(body, phone) for phone in body["PhoneNumberSet"]],
                    "RequestId": str(uuid.uuid4()),
                }
            },
        )

    def request_refusal(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return refused("FailedOperation.JsonParseFail", "The request body is not a JSON object.")
        for required in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId"):
            if not body.get(required):
                return refused("MissingParameter", f"The request is missing a required parameter `{required}`.")
        if body["SmsSdkAppId"] != self.sdk_app_id:
            return refused("InvalidParameterValue.SdkAppIdNotExist", "The SdkAppId does not exist.")
        params = body.get("TemplateParamSet", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return refused("InvalidParameterValue.TemplateParameterFormatError", "TemplateParamSet takes strings.")
        if body["TemplateId"] not in self.templates:
            return refused("FailedOperation.TemplateIncorrectOrUnapproved", "The template is not approved.")
        if len(params) != self.templates[body["TemplateId"]]:
            return refused(
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                "The request does not match the approved template.",
            )
        if body.get("SignName") not in self.sign_names:
            return refused("FailedOperation.SignatureIncorrectOrUnapproved", "The signature is not approved.")
        return None

    def _send_one(self, body: dict[str, Any], phone: str) -> dict[str, Any]:
        status: dict[str, Any] = {"PhoneNumber": phone, "SessionContext": body.get("SessionContext", ""), "Fee": 0}
        code = self.number_codes.get(phone, "")
        if not E164.match(phone):
            code = "InvalidParameterValue.IncorrectPhoneNumber"
        if code:
            return {**status, "SerialNo": "", "Code": code, "Message": f"refused: {code}", "IsoCode": ""}
        serial = f"2433:{int(time.time() * 1000)}{len(self.sent):06d}"
        self.sent[serial] = body
        return {**status, "SerialNo": serial, "Fee": 1, "Code": "Ok", "Message": "send success", "IsoCode": "CN"}

    # -- callbacks (unsigned, as Tencent sends them) -----------------------------------------------

    def status_callback(self, serial: str, success: bool = True, errmsg: str | None = None) -> bytes:
        phone = self.sent[serial]["PhoneNumberSet"][0]
        return orjson.dumps(
            [
                {
                    "user_receive_time": "2025-03-04 18:20:30",
                    "nationcode": "86",
                    "mobile": phone.removeprefix("+86"),
                    "report_status": "SUCCESS" if success else "FAIL",
                    "errmsg": errmsg or ("DELIVRD" if success else "MK:0001"),
                    "description": "用户短信送达成功" if success else "用户短信未送达",
                    "sid": serial,
                }
            ]
        )

    @staticmethod
    def reply_callback(mobile: str, text: str, extend: str = "") -> bytes:
        return orjson.dumps(
            {"extend": extend, "mobile": mobile, "nationcode": "86", "sign": "腾讯云", "text": text, "time": 1741083600}
        )

    async def push(self, url: str, body: bytes) -> Answer:
        answer = await post_answer(url, body, {"Content-Type": "application/json"})
        self.answers.append(answer)
        return answer

    @staticmethod
    def acknowledged(answer: Answer) -> bool:
        """Whether Tencent counts a callback as taken: HTTP 200 and a JSON body whose `result` is 0."""
        if answer.status != 200:
            return False
        try:
            reply = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            return False
        return isinstance(reply, dict) and reply.get("result") == 0

"""A fake Twilio REST API (Messages and Calls, 2010-04-01) that also sends signed callbacks.

Its signing is written here, apart from the adapter's, so a test that passes shows the two agree
with each other and (through the adapter's published-vector tests) with Twilio.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode
from xml.etree import ElementTree

from aiohttp import web
from multidict import MultiDict

from tests.fakes.http import Answer, FakeHttpService, Recorded, post_answer, respond


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def error_body(code: int, message: str, status: int) -> dict[str, object]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class Created:
    sid: str
    kind: str  # "message" or "call"
    form: dict[str, list[str]] = field(default_factory=dict)

    def first(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


class FakeTwilio(FakeHttpService):
    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "fake-auth-token") -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.created: dict[str, Created] = {}
        self.answers: list[Answer] = []  # what each callback got back
        # number -> (HTTP status, Twilio code, message): "number X is invalid" and the like.
        self.number_errors: dict[str, tuple[int, int, str]] = {}
        # From number -> the same, for refusals of the sender itself (21212: invalid From).
        self.sender_errors: dict[str, tuple[int, int, str]] = {}
        # With auto_receipts, every message gets its status callback (delivered) as Twilio would
        # send it, after receipt_delay; messages from a filtered From get undelivered + 30007.
        self.auto_receipts = False
        self.receipt_delay = 0.02
        self.filtered_senders: set[str] = set()
        self.callbacks: list[tuple[str, str, str | None]] = []  # (sid, status, error code) sent
        self._callback_tasks: set[asyncio.Task[None]] = set()
        # Content API templates of the account: ContentSid -> its variable keys.
        self.contents: dict[str, tuple[str, ...]] = {}

    def gateway_env(self, from_number: str = "+14155550100") -> dict[str, str]:
        """Settings for a gateway whose only provider is this fake (the sandbox off)."""
        account = {
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "from_number": from_number,
            "api_base_url": self.url,
        }
        return {"GATEWAY_PROVIDERS": json.dumps({"twilio": account}), "GATEWAY_SANDBOX__ENABLED": "false"}

    def start_filtering(self, sender: str) -> None:
        """The carrier starts filtering this From number as spam: receipts turn to undelivered/30007."""
        self.filtered_senders.add(sender)

    def stop_filtering(self, sender: str) -> None:
        self.filtered_senders.discard(sender)

    def refuse_sender(self, sender: str) -> None:
        self.sender_errors[sender] = (400, 21212, f"The 'From' number {sender} is not a valid phone number.")

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._callback_tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().__aexit__(*exc)

    async def _callback_later(self, sid: str) -> None:
        await asyncio.sleep(self.receipt_delay)
        created = self.created[sid]
        if created.first("From") in self.filtered_senders:
            status, code = "undelivered", "30007"
        else:
            status, code = "delivered", None
        self.callbacks.append((sid, status, code))
        with contextlib.suppress(OSError):
            await self.send_status(sid, status, code)

    def invalid_number(self, number: str) -> None:
        self.number_errors[number] = (400, 21211, f"The 'To' number {number} is not a valid phone number.")

    def opted_out(self, number: str) -> None:
        self.number_errors[number] = (400, 21610, "Attempt to send to unsubscribed recipient")

    def not_mobile(self, number: str) -> None:
        self.number_errors[number] = (400, 21614, f"'To' number {number} is not a valid mobile number")

    def authenticate(self, request: web.Request, recorded: Recorded) -> web.StreamResponse | None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            login = password = ""
        expected_path = f"/2010-04-01/Accounts/{self.account_sid}/"
        if scheme != "Basic" or (login, password) != (self.account_sid, self.auth_token):
            return respond(
                401, error_body(20003, "Authenticate", 401), {"WWW-Authenticate": 'Basic realm="Twilio API"'}
            )
        if not request.path.startswith(expected_path):
            return respond(404, error_body(20404, "The requested resource was not found", 404))
        return None

    async def answer(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        resource = request.path.rsplit("/", 1)[-1]
        form = recorded.form
        to = form.get("To")
        if not to:
            return respond(400, error_body(21604, "A 'To' phone number is required.", 400))
        if to in self.number_errors:
            status, code, message = self.number_errors[to]
            return respond(status, error_body(code, message, status))
        if form.get("From") in self.sender_errors:
            status, code, message = self.sender_errors[form.get("From", "")]
            return respond(status, error_body(code, message, status))
        if resource == "Messages.json":
            refused = self.content_refusal(form)
            if refused is not None:
                return refused
            if not form.get("Body") and not form.get("ContentSid"):
                return respond(400, error_body(21602, "Message body is required.", 400))
            if not form.get("From") and not form.get("MessagingServiceSid"):
                return respond(400, error_body(21603, "A 'From' phone number is required.", 400))
            sid, kind = "SM" + uuid.uuid4().hex, "message"
        elif resource == "Calls.json":
            if not form.get("From"):
                return respond(400, error_body(21603, "A 'From' phone number is required.", 400))
            if not form.get("Twiml") and not form.get("Url"):
                return respond(400, error_body(21205, "Url parameter is required.", 400))
            sid, kind = "CA" + uuid.uuid4().hex, "call"
        else:
            return respond(404, error_body(20404, "The requested resource was not found", 404))
        self.created[sid] = Created(sid, kind, {k: form.getall(k) for k in form})
        answer = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": form.get("From"),
            "status": "queued",
            "api_version": "2010-04-01",
        }
        if kind == "message":
            answer["body"] = form.get("Body")
            if self.auto_receipts and form.get("StatusCallback"):
                task = asyncio.create_task(self._callback_later(sid))
                self._callback_tasks.add(task)
                task.add_done_callback(self._callback_tasks.discard)
        return respond(201, answer)

    def content_refusal(self, form: MultiDict[str]) -> web.Response | None:
        """Twilio's refusal of a message whose Content API fields are wrong."""
        sid, variables = form.get("ContentSid"), form.get("ContentVariables")
        if variables is not None and not sid:
            return respond(400, error_body(21654, "ContentSid Required", 400))
        if sid is None:
            return None
        if sid not in self.contents:
            return respond(400, error_body(21655, "The ContentSid is Invalid", 400))
        try:
            values = json.loads(variables) if variables is not None else {}
        except ValueError:
            values = None
        if not isinstance(values, dict) or not all(isinstance(v, str) and v for v in values.values()):
            return respond(400, error_body(21656, "The ContentVariables Parameter is invalid", 400))
        return None

    # -- callbacks ---------------------------------------------------------------------------------

    def signed(self, url: str, params: list[tuple[str, str]]) -> tuple[bytes, dict[str, str]]:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(self.auth_token, url, params),
            "I-Twilio-Idempotency-Token": uuid.uuid4().hex,
        }
        return urlencode(params).encode(), headers

    def status_callback(
        self, sid: str, status: str, error_code: str | None = None
    ) -> tuple[str, bytes, dict[str, str]]:
        """The status callback Twilio would send for a message or call it created: (url, body, headers)."""
        created = self.created[sid]
        url = created.first("StatusCallback")
        assert url, "the message was sent without a StatusCallback"
        if created.kind == "message":
            params = [
                ("AccountSid", self.account_sid),
                ("ApiVersion", "2010-04-01"),
                ("From", created.first("From") or ""),
                ("MessageSid", sid),
                ("MessageStatus", status),
                ("SmsSid", sid),
                ("SmsStatus", status),
                ("To", created.first("To") or ""),
            ]
        else:
            params = [
                ("AccountSid", self.account_sid),
                ("ApiVersion", "2010-04-01"),
                ("CallSid", sid),
                ("CallStatus", status),
                ("Called", created.first("To") or ""),
                ("Direction", "outbound-api"),
                ("From", created.first("From") or ""),
                ("Timestamp", "Tue, 04 Mar 2025 10:20:30 +0000"),
                ("To", created.first("To") or ""),
                ("CallbackSource", "call-progress-events"),
            ]
        if error_code:
            params.append(("ErrorCode", error_code))
        body, headers = self.signed(url, params)
        return url, body, headers

    async def send_status(self, sid: str, status: str, error_code: str | None = None, url: str | None = None) -> int:
        callback_url, body, headers = self.status_callback(sid, status, error_code)
        answer = await post_answer(url or callback_url, body, headers)
        self.answers.append(answer)
        return answer.status

    async def send_incoming_sms(self, url: str, sender: str, to: str, text: str) -> Answer:
        body, headers = self.incoming_sms(url, sender, to, text)
        answer = await post_answer(url, body, headers)
        self.answers.append(answer)
        return answer

    @staticmethod
    def status_callback_taken(answer: Answer) -> bool:
        """A status callback's answer is not read: any 2xx is taken."""
        return 200 <= answer.status < 300

    @staticmethod
    def twiml_taken(answer: Answer) -> bool:
        """An incoming-message webhook must answer 200 with TwiML (text/xml or application/xml,
        a <Response> document); anything else shows as error 11200/12300 and no TwiML is run."""
        if answer.status != 200 or answer.content_type not in ("text/xml", "application/xml"):
            return False
        try:
            root = ElementTree.fromstring(answer.body)
        except ElementTree.ParseError:
            return False
        return root.tag == "Response"

    def incoming_sms(self, url: str, sender: str, to: str, text: str) -> tuple[bytes, dict[str, str]]:
        params = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", "2010-04-01"),
            ("Body", text),
            ("From", sender),
            ("MessageSid", "SM" + uuid.uuid4().hex),
            ("NumMedia", "0"),
            ("NumSegments", "1"),
            ("SmsStatus", "received"),
            ("To", to),
        ]
        return self.signed(url, params)

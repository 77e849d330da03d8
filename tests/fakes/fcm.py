"""A fake Google OAuth2 token endpoint and FCM HTTP v1 `messages:send`.

It makes its own service account (an RSA key pair), checks each JWT assertion's RS256 signature
and claims as Google does, issues bearer tokens with a chosen lifetime, and refuses sends without
a live token.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.http import FakeHttpService, Recorded, respond

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
HTTP_STATUS = {"UNREGISTERED": (404, "NOT_FOUND"), "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT"),
               "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED"), "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED"),
               "UNAVAILABLE": (503, "UNAVAILABLE"), "INTERNAL": (500, "INTERNAL"),
               "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED")}  # fmt: skip


def fcm_error(error_code: str, message: str = "scripted") -> tuple[int, dict[str, Any]]:
    status, rpc_status = HTTP_STATUS[error_code]
    body = {
        "error": {
            "code": status,
            "message": message,
            "status": rpc_status,
            "details": [{"@type": FCM_ERROR, "errorCode": error_code}],
        }
    }
    return status, body


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeFcm(FakeHttpService):
    def __init__(self, project_id: str = "demo-project") -> None:
        super().__init__()
        self.project_id = project_id
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_email = f"gateway@{project_id}.iam.gserviceaccount.com"
        self.token_lifetime = 3600
        self.tokens: dict[str, float] = {}  # access token -> expiry
        self.assertions: list[dict[str, Any]] = []  # the claims of every accepted JWT
        self.unregistered: set[str] = set()
        self.invalid: set[str] = set()
        self.delivered: list[dict[str, Any]] = []

    def service_account(self) -> dict[str, str]:
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": "fake-key-1",
            "private_key": pem,
            "client_email": self.client_email,
            "token_uri": f"{self.url}/token",
        }

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def fail_with(self, count: int, error_code: str, headers: dict[str, str] | None = None) -> None:
        status, body = fcm_error(error_code)
        self.fail_next(count, status, body, headers)

    def scriptable(self, request: web.Request) -> bool:
        return request.path != "/token"  # scripts are about sends; the token endpoint stays honest

    def authenticate(self, request: web.Request, recorded: Recorded) -> web.StreamResponse | None:
        if request.path == "/token":
            return None
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.tokens.get(token, 0) <= time.time():
            return respond(401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                           "status": "UNAUTHENTICATED"}})  # fmt: skip
        return None

    async def answer(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if request.path == "/token":
            return self._token(recorded)
        if request.path != f"/v1/projects/{self.project_id}/messages:send":
            status, body = fcm_error("SENDER_ID_MISMATCH", "wrong project")
            return respond(status, body)
        try:
            message = orjson.loads(recorded.body)["message"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return respond(
                400, {"error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}}
            )
        for key, value in (message.get("data") or {}).items():
            if not isinstance(value, str):
                field = f"message.data[{key}].value"
                violation = {"@type": "type.googleapis.com/google.rpc.BadRequest",
                             "fieldViolations": [{"field": field, "description": "Invalid value"}]}  # fmt: skip
                return respond(400, {"error": {"code": 400, "message": f"Invalid value at '{field}'",
                                               "status": "INVALID_ARGUMENT", "details": [violation]}})  # fmt: skip
        token = message.get("token", "")
        if token in self.unregistered:
            status, body = fcm_error("UNREGISTERED", "Requested entity was not found.")
            return respond(status, body)
        if token in self.invalid or not token:
            status, body = fcm_error("INVALID_ARGUMENT", "The registration token is not a valid FCM registration token")
            return respond(status, body)
        self.delivered.append(message)
        return respond(200, {"name": f"projects/{self.project_id}/messages/0:{secrets.token_hex(8)}"})

    def _token(self, recorded: Recorded) -> web.Response:
        def refuse(description: str) -> web.Response:
            return respond(400, {"error": "invalid_grant", "error_description": description})

        if recorded.form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return respond(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
        try:
            header_part, claims_part, signature_part = str(recorded.form.get("assertion", "")).split(".")
            header = orjson.loads(_unb64(header_part))
            claims = orjson.loads(_unb64(claims_part))
            self._key.public_key().verify(
                _unb64(signature_part), f"{header_part}.{claims_part}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (ValueError, orjson.JSONDecodeError, InvalidSignature):
            return refuse("Invalid JWT Signature.")
        now = time.time()
        if header.get("alg") != "RS256" or claims.get("iss") != self.client_email:
            return refuse("Invalid JWT: issuer or algorithm")
        if claims.get("aud") != f"{self.url}/token" or claims.get("scope") != SCOPE:
            return refuse("Invalid JWT: audience or scope")
        if not (claims["iat"] - 60 <= now <= claims["exp"]) or claims["exp"] - claims["iat"] > 3600:
            return refuse("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
        self.assertions.append(claims)
        token = "ya29.fake-" + secrets.token_urlsafe(16)
        self.tokens[token] = now + self.token_lifetime
        return respond(200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

"""Checks a real exchange against the served /openapi.json: the request body against the schema of its
media type, the answer's status and media type against those documented, and its body against the
schema (JSON parsed, NDJSON line by line, any other text as a string)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from jsonschema.exceptions import ValidationError
from jsonschema.validators import Draft202012Validator

from tests.integration.test_openapi import Contract

TEXT_TYPES = ("text/", "application/x-ndjson")


class Document(Contract):
    def _validate(self, schema: dict[str, Any], instance: Any) -> None:
        # References anywhere in the schema (an anyOf of components), not only at its top, resolve in the document.
        anchored = orjson.loads(orjson.dumps(schema).replace(b'"#/components/', b'"urn:openapi#/components/'))
        Draft202012Validator(anchored, registry=self.registry).validate(instance)

    def operation(self, template: str, method: str) -> dict[str, Any]:
        operation: dict[str, Any] = self.document["paths"][template][method]
        return operation

    def body(self, template: str, method: str, media_type: str, raw: bytes) -> None:
        content = self.operation(template, method)["requestBody"]["content"]
        assert media_type in content, f"{method.upper()} {template} takes no {media_type}"
        value = dict(parse_qsl(raw.decode())) if media_type.endswith("x-www-form-urlencoded") else orjson.loads(raw)
        self._validate(content[media_type]["schema"], value)

    def refuses(self, template: str, method: str, raw: bytes) -> bool:
        """Whether the document, too, says this JSON body is not valid."""
        try:
            self.body(template, method, "application/json", raw)
        except ValidationError:
            return True
        return False

    def answer(self, template: str, method: str, status: int, content_type: str, raw: bytes) -> None:
        responses = self.operation(template, method)["responses"]
        assert str(status) in responses, f"{method.upper()} {template} documents no {status}"
        documented = responses[str(status)].get("content")
        if not documented:
            assert not raw, f"{status} of {method.upper()} {template} is documented without a body"
            return
        where = f"{status} of {method.upper()} {template}"
        assert content_type in documented, f"{where} is not documented as {content_type}"
        schema = documented[content_type]["schema"]
        if content_type == "application/x-ndjson":
            for line in raw.splitlines():
                self._validate({"$ref": "#/components/schemas/AuditEvent"}, orjson.loads(line))
        elif content_type.startswith(TEXT_TYPES):
            self._validate(schema, raw.decode())
        else:
            self._validate(schema, orjson.loads(raw))

    def problem_names(self, template: str, method: str, status: int, content_type: str, raw: bytes) -> list[str]:
        """The fields a documented problem answer names."""
        assert content_type == "application/problem+json", raw[:300]
        self.answer(template, method, status, content_type, raw)
        return [error["field"] for error in orjson.loads(raw).get("errors", [])]

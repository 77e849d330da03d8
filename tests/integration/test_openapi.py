"""The OpenAPI document matches the handlers: real requests and responses validate against it."""

from __future__ import annotations

from typing import Any

from jsonschema.validators import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.harness import SMS, GatewayStarter


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:openapi", resource)

    def _validate(self, schema: dict[str, Any], instance: Any) -> None:
        wrapped = {"$ref": "urn:openapi#" + schema["$ref"].removeprefix("#")} if "$ref" in schema else schema
        Draft202012Validator(wrapped, registry=self.registry).validate(instance)

    def request(self, path: str, method: str, body: Any) -> None:
        schema = self.document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        self._validate(schema, body)

    def response(self, path: str, method: str, status: int, content_type: str, body: Any) -> None:
        responses = self.document["paths"][path][method]["responses"]
        assert str(status) in responses, f"{method.upper()} {path} documents no {status}"
        content = responses[str(status)]["content"]
        assert content_type in content, f"{status} of {method.upper()} {path} is not documented as {content_type}"
        self._validate(content[content_type]["schema"], body)


async def test_real_traffic_conforms_to_the_openapi_document(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        document = await (await gw.get("/openapi.json")).json()
        assert document["openapi"].startswith("3.1")
        contract = Contract(document)

        async def check(method: str, path: str, template: str, body: Any = None, **kw: Any) -> Any:
            if body is not None:
                contract.request(template, method, body)
                response = await gw.post(path, body, **kw)
            else:
                response = await gw.get(path)
            payload = await response.json()
            contract.response(template, method, response.status, response.content_type, payload)
            return payload

        accepted = await check("post", "/v1/messages", "/v1/messages", {**SMS, "campaign": "c"}, key="o-1")
        await check("post", "/v1/messages", "/v1/messages", {**SMS, "campaign": "c"}, key="o-1")
        await check("post", "/v1/messages", "/v1/messages", {**SMS, "to": "123"})
        await check(
            "post",
            "/v1/messages/batch",
            "/v1/messages/batch",
            {"messages": [{**SMS, "idempotency_key": "b1"}, {**SMS, "channel": "fax"}]},
        )
        await gw.wait_status(accepted["id"], {"delivered"})
        await check("get", f"/v1/messages/{accepted['id']}", "/v1/messages/{id}")
        await check("get", "/v1/messages/msg_nope", "/v1/messages/{id}")
        await check("get", "/v1/messages?campaign=c&limit=1", "/v1/messages")
        await check("get", "/v1/messages?limit=0", "/v1/messages")
        await check("get", "/readyz", "/readyz")
        await check("get", "/healthz", "/healthz")


def test_the_document_names_every_route_the_app_serves() -> None:
    from gateway.app import build_web_app
    from gateway.contract.document import openapi_document

    class _Ctx:
        settings = type(
            "S", (), {"api": type("A", (), {"max_batch_body_bytes": 1, "body_read_timeout_seconds": 1.0})()}
        )()

    app = build_web_app(_Ctx(), "all")  # type: ignore[arg-type]
    served = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    documented = {(m, p) for p, ops in openapi_document()["paths"].items() for m in ops}
    # The console's HTML pages under /ui are not part of the JSON API (docs/console.md describes them).
    served = {(m, p) for m, p in served if m != "head" and p != "/ui" and not p.startswith("/ui/")}
    assert served == documented

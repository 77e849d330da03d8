"""/openapi.json, generated from the operations each room declares: nothing in it is written by hand."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from gateway.contract.base import JSON_VALUE_SCHEMA
from gateway.contract.operations import Named, Operation, Query, Schema

REF = "#/components/schemas/{model}"
INFO = {
    "title": "delivery-gateway",
    "version": "1",
    "description": "Send jobs in, delivered messages out: SMS, voice, push, email and webhooks, "
    "without over-contacting anyone, losing or duplicating a message.",
}


class _Untitled(GenerateJsonSchema):
    """Leaves out the `title` pydantic derives from each field name (noise to a reader of the document),
    and states a constrained key of a mapping as `propertyNames` (pydantic's `patternProperties` would
    leave other keys unconstrained)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def dict_schema(self, schema: Any) -> dict[str, Any]:
        generated = super().dict_schema(schema)
        patterns = generated.pop("patternProperties", None)
        if patterns:
            ((pattern, values),) = patterns.items()
            generated["propertyNames"] = {"pattern": pattern}
            generated["additionalProperties"] = values
        return generated


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def _collect(self, definitions: dict[str, Any]) -> None:
        self.schemas.update(definitions)
        if "JsonValue" in definitions:
            self.schemas["JsonValue"] = JSON_VALUE_SCHEMA

    def schema_of(self, schema: Schema, mode: JsonSchemaMode) -> dict[str, Any]:
        if isinstance(schema, dict):
            return schema
        if isinstance(schema, Named):
            if schema.name not in self.schemas:
                self.schemas[schema.name] = self.schema_of(schema.adapter, mode)
            return {"$ref": REF.format(model=schema.name)}
        if isinstance(schema, TypeAdapter):
            generated = schema.json_schema(ref_template=REF, mode=mode, schema_generator=_Untitled)
        else:
            generated = schema.model_json_schema(ref_template=REF, mode=mode, schema_generator=_Untitled)
        self._collect(generated.pop("$defs", {}))
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            name = schema.model_config.get("title") or schema.__name__
            self.schemas[name] = generated
            return {"$ref": REF.format(model=name)}
        return generated


def _parameters(op: Operation, components: _Components) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": schema} for name, schema in op.path_params.items()
    ]
    params.extend(op.headers)
    if op.query is not None:
        params.extend(_query_parameters(op.query, components))
    return params


def _query_parameters(query: type[Query], components: _Components) -> Iterable[dict[str, Any]]:
    schema = query.model_json_schema(ref_template=REF, schema_generator=_Untitled)
    components._collect(schema.pop("$defs", {}))
    properties = {name: _without_null(prop) for name, prop in schema.get("properties", {}).items()}
    if query.as_one_object:
        # Form style, exploded: the object's fields are the query's parameters, at least one given.
        obj = {"type": "object", "properties": properties, "minProperties": 1, "additionalProperties": False}
        yield {"name": query.as_one_object, "in": "query", "required": True, "style": "form", "explode": True} | {
            "schema": obj
        }
        return
    required = set(schema.get("required", ()))
    for name, prop in properties.items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        description = prop.pop("description", None)
        if description:
            param["description"] = description
        param["schema"] = prop
        yield param


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a value: its null alternative is pydantic's, not the API's."""
    any_of = prop.get("anyOf")
    if not any_of or {"type": "null"} not in any_of:
        return prop
    rest = [s for s in any_of if s != {"type": "null"}]
    plain = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**plain, **(rest[0] if len(rest) == 1 else {"anyOf": rest})}


def _operation(op: Operation, components: _Components) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.description:
        doc["description"] = op.description
    if op.tags:
        doc["tags"] = list(op.tags)
    doc["security"] = [{"apiKey": []}] if op.auth else []
    params = _parameters(op, components)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        media: dict[str, Any] = {"schema": components.schema_of(op.body, "validation")}
        if op.body_examples:
            media["examples"] = {name: {"value": value} for name, value in op.body_examples.items()}
        bodies = {op.body_content_type: media}
        for media_type, schema in op.body_also.items():
            bodies[media_type] = {"schema": components.schema_of(schema, "validation")}
        doc["requestBody"] = {"required": op.body_required, "content": bodies}
    responses: dict[str, Any] = {}
    for status, answer in sorted(op.answers.items()):
        response: dict[str, Any] = {"description": answer.description}
        if answer.headers:
            response["headers"] = dict(answer.headers)
        content: dict[str, Any] = {}
        if answer.schema is not None:
            content[answer.content_type] = {"schema": components.schema_of(answer.schema, "serialization")}
        for media_type, schema in answer.also.items():
            content[media_type] = {"schema": components.schema_of(schema, "serialization")}
        if content:
            response["content"] = content
        responses[str(status)] = response
    doc["responses"] = responses
    return doc


def build_document(operations: Iterable[Operation], named: Iterable[Named] = ()) -> dict[str, Any]:
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, components)
    for schema in named:
        components.schema_of(schema, "validation")
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }


@cache
def openapi_document() -> dict[str, Any]:
    from gateway.contract.rooms import ALL_OPERATIONS, NAMED_SCHEMAS

    return build_document(ALL_OPERATIONS, NAMED_SCHEMAS)

"""The catalogue of HTTP endpoints and the OpenAPI 3.1 document generated from it.

Each HTTP function declares its `Endpoint` here and registers its route from it, so the document is
built from the same facts as the routes; a contract test checks both lists stay equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.models import Problem
from shared.identity.permissions import Permission

Auth = Literal["anonymous", "user", "app"]

_STATUS_TEXT = {
    400: "The request is malformed or has invalid fields.",
    401: "No valid bearer token.",
    403: "The caller's roles do not allow this.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflicts with the current state.",
    412: "The If-Match ETag is stale.",
    413: "The request body is too large.",
    415: "The request body is not JSON.",
    422: "Well formed but breaks a rule of the product.",
    503: "A dependency (storage, identity provider) is unavailable; retry after Retry-After seconds.",
}


@dataclass(frozen=True)
class QueryParam:
    name: str
    description: str
    schema_type: str = "string"
    required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.schema_type}
        for key, value in (("minimum", self.minimum), ("maximum", self.maximum), ("maxLength", self.max_length)):
            if value is not None:
                schema[key] = value
        return schema


@dataclass(frozen=True)
class Endpoint:
    function_name: str
    method: str
    route: str  # as registered with the Functions host, without the /api prefix
    summary: str
    tag: str
    auth: Auth
    permission: Permission | None = None
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    media_type: str = "application/json"
    errors: tuple[int, ...] = ()
    query: tuple[QueryParam, ...] = ()
    etag: bool = False  # returns ETag and honours If-Match
    description: str = ""
    path_values: tuple[tuple[str, tuple[str, ...]], ...] = ()  # allowed values of path parameters

    @property
    def path(self) -> str:
        """The OpenAPI path: `/api/` + route with constraints and optional markers removed."""
        return "/api/" + re.sub(r"\{\*?([A-Za-z0-9_]+)(:[^}]*)?\??\}", r"{\1}", self.route)

    @property
    def path_parameters(self) -> list[str]:
        return re.findall(r"\{([A-Za-z0-9_]+)\}", self.path)


_CATALOG: dict[str, Endpoint] = {}


def declare(endpoint: Endpoint) -> Endpoint:
    existing = _CATALOG.get(endpoint.function_name)
    if existing is not None and existing != endpoint:
        raise ValueError(f"endpoint {endpoint.function_name} declared twice with different facts")
    _CATALOG[endpoint.function_name] = endpoint
    return endpoint


def endpoints() -> list[Endpoint]:
    return sorted(_CATALOG.values(), key=lambda e: (e.path, e.method))


def document(version: str = "0.1.0") -> dict[str, Any]:
    items = endpoints()
    models: set[type[BaseModel]] = {Problem}
    for e in items:
        models.update(m for m in (e.request, e.response) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    keyed, definitions = models_json_schema(
        [(m, "validation") for m in ordered], by_alias=True, ref_template="#/components/schemas/{model}"
    )
    refs = {m: keyed[(m, "validation")] for m in ordered}
    schemas = definitions.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for e in items:
        operation: dict[str, Any] = {
            "operationId": e.function_name,
            "summary": e.summary,
            "tags": [e.tag],
            "responses": {},
        }
        if e.description:
            operation["description"] = e.description
        allowed = dict(e.path_values)
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string", **({"enum": list(allowed[name])} if name in allowed else {})}}
            for name in e.path_parameters
        ]
        parameters += [
            {"name": q.name, "in": "query", "required": q.required, "description": q.description,
             "schema": q.schema()}
            for q in e.query
        ]
        if e.etag:
            parameters.append({"name": "If-Match", "in": "header", "required": False,
                               "description": "ETag of the settings the change is based on (412 if stale)",
                               "schema": {"type": "string"}})
        if parameters:
            operation["parameters"] = parameters
        if e.request is not None:
            operation["requestBody"] = {"required": True,
                                        "content": {"application/json": {"schema": refs[e.request]}}}
        success: dict[str, Any] = {"description": "Success"}
        if e.response is not None:
            success["content"] = {e.media_type: {"schema": refs[e.response]}}
        elif e.media_type != "application/json":
            success["content"] = {e.media_type: {"schema": {"type": "string"}}}
        if e.etag:
            success["headers"] = {"ETag": {"schema": {"type": "string"}, "description": "version of the document"}}
        operation["responses"][str(e.status)] = success
        errors = set(e.errors) | {405}
        if e.request is not None:
            errors |= {400, 413, 415}
        if e.auth != "anonymous":
            errors |= {401, 403, 503}
            operation["security"] = [{"bearer": []}]
        else:
            operation["security"] = []
        for status in sorted(errors):
            # A page for people (the consent callback) answers its errors as pages too, except 405 (the host's).
            if e.media_type == "text/html" and status != 405:
                content = {"text/html": {"schema": {"type": "string"}}}
            else:
                content = {"application/problem+json": {"schema": refs[Problem]}}
            operation["responses"][str(status)] = {"description": _STATUS_TEXT.get(status, "Error"),
                                                   "content": content}
        paths.setdefault(e.path, {})[e.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Relationship intelligence API",
            "version": version,
            "description": "Tenant settings, Microsoft 365 consent and insights of the relationship "
                           "intelligence service. The tenant is always the bearer token's `tid`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "Entra ID access token for this API (v2)."}
            },
        },
    }

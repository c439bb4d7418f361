"""The OpenAPI 3.1 document, generated from the endpoint catalogue (`shared.api.endpoints`) and the models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.endpoints import Endpoint
from shared.api.models import Problem

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
_RETRY_AFTER = {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}
_CONTENDED = {
    409: " When it is contention (someone else is changing the same data right now), the answer carries "
         "`Retry-After`: send the same request again after that many seconds.",
}

Refs = dict[type[BaseModel], dict[str, Any]]


def document(endpoints: Sequence[Endpoint], version: str = "0.1.0") -> dict[str, Any]:
    """The document of these endpoints; one with variants is listed once per variant (`Endpoint.documented`)."""
    operations = [documented for endpoint in endpoints for documented in endpoint.documented()]
    refs, schemas = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in sorted(operations, key=lambda e: (e.path, e.method)):
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, refs)
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


def _schemas(endpoints: Sequence[Endpoint]) -> tuple[Refs, dict[str, Any]]:
    models: set[type[BaseModel]] = {Problem}
    for endpoint in endpoints:
        models.update(m for m in (endpoint.request_model(), endpoint.response_model()) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    keyed, definitions = models_json_schema([(m, "validation") for m in ordered], by_alias=True,
                                            ref_template="#/components/schemas/{model}")
    return {m: keyed[(m, "validation")] for m in ordered}, definitions.get("$defs", {})


def _operation(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": endpoint.function_name, "summary": endpoint.summary,
                                 "tags": [endpoint.tag]}
    if endpoint.description:
        operation["description"] = endpoint.description
    parameters = _parameters(endpoint)
    if parameters:
        operation["parameters"] = parameters
    request = endpoint.request_model()
    if request is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[request]}}}
    operation["responses"] = {str(endpoint.status): _success(endpoint, refs), **_errors(endpoint, refs)}
    operation["security"] = [] if endpoint.auth == "anonymous" else [{"bearer": []}]
    return operation


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    allowed = dict(endpoint.path_values)
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", **({"enum": list(allowed[name])} if name in allowed else {})}}
        for name in endpoint.path_parameters
    ]
    parameters += [{"name": q.name, "in": "query", "required": q.required, "description": q.description,
                    "schema": q.schema()} for q in endpoint.query]
    if endpoint.etag:
        parameters.append({"name": "If-Match", "in": "header", "required": False,
                           "description": "ETag of the settings the change is based on (412 if stale)",
                           "schema": {"type": "string"}})
    return parameters


def _success(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "Success"}
    response = endpoint.response_model()
    if response is not None:
        success["content"] = {endpoint.media_type: {"schema": refs[response]}}
    elif endpoint.media_type != "application/json":
        success["content"] = {endpoint.media_type: {"schema": {"type": "string"}}}
    if endpoint.etag:
        success["headers"] = {"ETag": {"schema": {"type": "string"}, "description": "version of the document"}}
    return success


def _errors(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    statuses = set(endpoint.errors) | {405}
    if endpoint.request is not None:
        statuses |= {400, 413, 415}
    if endpoint.auth != "anonymous":
        statuses |= {401, 403, 503}
    errors: dict[str, Any] = {}
    for status in sorted(statuses):
        # A page for people (the consent callback) answers its errors as pages too, except 405 (the host's).
        if endpoint.media_type == "text/html" and status != 405:
            content = {"text/html": {"schema": {"type": "string"}}}
        else:
            content = {"application/problem+json": {"schema": refs[Problem]}}
        description = _STATUS_TEXT.get(status, "Error")
        if status in endpoint.retry_after:
            description += _CONTENDED.get(status, "")
        error: dict[str, Any] = {"description": description, "content": content}
        if status == 503 or status in endpoint.retry_after:
            error["headers"] = {"Retry-After": _RETRY_AFTER}
        errors[str(status)] = error
    return errors

"""What every HTTP entry point does the same way: operation id and tenant in the logs, bearer-token
authentication and permission check, the request's body and query parsed as its endpoint declares them,
problem documents for errors, JSON rendering.

Nothing heavy is imported here at import time: the host indexes the app before any request, and the API
models, the adapters and the SDKs load on the first request that needs them.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared import observability
from shared.api.endpoints import Endpoint
from shared.config import ConfigurationError
from shared.errors import AppError, Forbidden, NotFound, Unauthorized

if TYPE_CHECKING:
    from pydantic import BaseModel

    from shared.api.query import Query
    from shared.bootstrap import Container
    from shared.identity.tokens import Principal
    from shared.tenancy import TenantId

log = logging.getLogger("functions.http")

PROBLEM_JSON = "application/problem+json"
_NO_STORE = {"Cache-Control": "no-store"}


def lazy_module(name: str) -> Any:
    """A module imported on its first attribute access (the import system's lock makes it thread-safe)."""

    class _Lazy:
        def __getattr__(self, attribute: str) -> Any:
            return getattr(importlib.import_module(name), attribute)

    return _Lazy()


@dataclass(frozen=True)
class Call:
    req: func.HttpRequest
    endpoint: Endpoint
    container: Container
    principal: Principal | None

    @property
    def caller(self) -> Principal:
        if self.principal is None:
            raise Unauthorized("this endpoint needs a bearer token", error="")
        return self.principal

    @property
    def tenant(self) -> TenantId:
        """Always the validated token's tenant: no route or body names one."""
        return self.caller.tenant_id

    @property
    def actor(self) -> str:
        return self.caller.object_id

    @property
    def if_match(self) -> str | None:
        value = self.req.headers.get("If-Match")
        return None if value is None else str(value)

    def path(self, name: str) -> str:
        return str(self.req.route_params.get(name, ""))

    def path_choice(self, name: str) -> Any:
        """A path value the endpoint allows (the route itself takes any text): 404 otherwise."""
        value = self.path(name)
        allowed = dict(self.endpoint.path_values)[name]
        if value not in allowed:
            raise NotFound(f"unknown {name} '{value}'; use one of {', '.join(allowed)}")
        return value

    def body(self, *, optional: bool = False, max_bytes: int | None = None) -> Any:
        """The body as the endpoint's request model; with `optional`, None for an empty body."""
        from shared.api.requests import MAX_BODY_BYTES, parse_json_body

        model = self.endpoint.request_model()
        assert model is not None, f"{self.endpoint.function_name} declares no request model"
        raw = self.req.get_body()
        if optional and not raw:
            return None
        return parse_json_body(raw, self.req.headers.get("Content-Type"), model, max_bytes=max_bytes or MAX_BODY_BYTES)

    def query(self) -> Query:
        from shared.api.query import parse_query

        return parse_query(self.endpoint, self.req.params)


Handler = Callable[[Call], func.HttpResponse]


def route(bp: func.Blueprint, endpoint: Endpoint) -> Callable[[Callable[..., Any]], Any]:
    """Registers the function with the route and method its Endpoint declares (one source of truth)."""

    def decorate(fn: Callable[..., Any]) -> Any:
        registered = bp.route(route=endpoint.route, methods=[endpoint.method],
                              auth_level=func.AuthLevel.ANONYMOUS)(fn)
        return bp.function_name(endpoint.function_name)(registered)

    return decorate


def json_response(data: BaseModel | dict[str, Any], status: int = 200, headers: dict[str, str] | None = None,
                  ) -> func.HttpResponse:
    payload = data if isinstance(data, dict) else data.model_dump(mode="json", by_alias=True)
    return func.HttpResponse(json.dumps(payload, ensure_ascii=False), status_code=status,
                             headers={**_NO_STORE, **(headers or {})}, mimetype="application/json",
                             charset="utf-8")


def problem_response(error: AppError) -> func.HttpResponse:
    body = error.to_problem()
    operation_id = observability.current_operation_id()
    if operation_id:
        body["operationId"] = operation_id
    return func.HttpResponse(json.dumps(body, ensure_ascii=False), status_code=error.status,
                             headers={**_NO_STORE, **error.headers}, mimetype=PROBLEM_JSON, charset="utf-8")


class _Internal(AppError):
    pass


def _bearer_token(req: func.HttpRequest) -> str:
    header = str(req.headers.get("Authorization") or "")
    if not header:
        raise Unauthorized("this endpoint needs a bearer token", error="")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <access token>'", error="invalid_request")
    return token.strip()


def authenticate(req: func.HttpRequest, container: Container, endpoint: Endpoint) -> Principal:
    principal = container.tokens.validate(_bearer_token(req))
    observability.bind_tenant(principal.tenant_id)
    if endpoint.auth == "user" and principal.is_app:
        raise Forbidden("this endpoint is for signed-in users, not app-only tokens")
    if endpoint.auth == "app" and not principal.is_app:
        raise Forbidden("this endpoint is for app-only tokens of a data connector")
    if endpoint.permission is not None:
        container.roles.require(principal.roles, endpoint.permission)
    return principal


def respond(req: func.HttpRequest, endpoint: Endpoint, handler: Handler) -> func.HttpResponse:
    started = time.perf_counter()
    operation_id = observability.operation_id_from(req.headers.get("traceparent"))
    with observability.log_context(operation_id=operation_id):
        try:
            from shared import bootstrap  # the adapters load on the first request, not when the host indexes

            container = bootstrap.container()
            principal = None if endpoint.auth == "anonymous" else authenticate(req, container, endpoint)
            response = handler(Call(req, endpoint, container, principal))
        except AppError as error:
            if error.status >= 500:
                log.warning("%s failed: %s", endpoint.function_name, error.detail)
            response = problem_response(error)
        except ConfigurationError as error:
            log.error("configuration error: %s", error)
            response = problem_response(_Internal("the service is misconfigured; an operator has to fix it"))
        except Exception:
            log.exception("unhandled error in %s", endpoint.function_name)
            response = problem_response(_Internal("an unexpected error occurred"))
        log.info("%s %s -> %d in %.1f ms", endpoint.method, endpoint.path, response.status_code,
                 (time.perf_counter() - started) * 1000)
        return response

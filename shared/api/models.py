"""Models of the HTTP API (camelCase on the wire)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of every API model: camelCase JSON, unknown fields refused, no type coercion ("true" is no bool)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True,
                              strict=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class FieldProblem(ApiModel):
    field: str = Field(description="JSON pointer-like path of the offending field, e.g. `securityRoleIds/2`")
    reason: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


class DependencyCheck(ApiModel):
    status: Literal["ok", "failing"]
    detail: str | None = None


class ServiceStatus(ApiModel):
    """Whether the service can serve (liveness and readiness), not a relationship's health."""

    status: Literal["serving", "unavailable"]
    checks: dict[str, DependencyCheck]


class Caller(ApiModel):
    """Who the bearer token says the caller is, and what the product lets them do."""

    tenant_id: str
    object_id: str
    roles: list[str]
    permissions: list[str]
    is_app: bool

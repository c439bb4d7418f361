"""Errors the API speaks, each mapping to one RFC 9457 problem type and HTTP status.

Rules and adapters raise these; the HTTP entry points render them. Nothing here imports Azure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import ValidationError

PROBLEM_BASE = "urn:relationship-intelligence:problem:"


class AppError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors or [])
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        return body


class BadRequest(AppError):
    status, slug, title = 400, "bad-request", "Bad Request"


class ValidationFailed(AppError):
    """The body or parameters do not have the expected shape or values (field problems in `errors`)."""

    status, slug, title = 400, "validation-error", "Validation Failed"


class Unprocessable(AppError):
    """Well formed, but refers to things that do not exist or breaks a rule of the product."""

    status, slug, title = 422, "unprocessable", "Unprocessable Content"


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str, *, error: str = "invalid_token") -> None:
        # RFC 6750 section 3: a missing token gets no error code, a bad one gets invalid_token.
        challenge = 'Bearer realm="relationship-intelligence"'
        if error:
            challenge += f', error="{error}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not Found"


class Conflict(AppError):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(AppError):
    status, slug, title = 412, "precondition-failed", "Precondition Failed"


class PayloadTooLarge(AppError):
    status, slug, title = 413, "payload-too-large", "Payload Too Large"


class UnsupportedMediaType(AppError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported Media Type"


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "Service Unavailable"

    def __init__(self, detail: str, *, retry_after_seconds: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


class StorageUnavailable(ServiceUnavailable):
    """Table storage could not be reached or is throttling; the failed call wrote nothing (a write made of
    several transactions may have stored the ones before it)."""

    slug = "storage-unavailable"


class ConcurrencyConflict(PreconditionFailed):
    """The stored version changed since it was read (ETag mismatch)."""

    slug = "concurrency-conflict"


def field_problems(exc: ValidationError) -> list[dict[str, str]]:
    """A model's validation errors as the `errors` of a problem: a path and a reason per field."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        path = "/".join(str(part) for part in error["loc"])
        reason = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append({"field": path, "reason": reason})
    return problems

"""Query parameters, parsed by the rules the endpoint declares for them (the same declarations make the OpenAPI
document). Numbers are ASCII digits only and of bounded length: `int()` would take `٥` and turn a 5,000-digit
string into a slow, huge number, and `str.isdigit()` accepts `²`, which `int()` then refuses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.api.endpoints import Endpoint, QueryParam
from shared.errors import ValidationFailed

_ASCII_INTEGER = re.compile(r"(?:0|[1-9][0-9]*)")
QueryValue = str | int | bool | None


@dataclass(frozen=True)
class Query:
    values: dict[str, QueryValue]

    def integer(self, name: str) -> int:
        value = self.values[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} is not an integer parameter with a default")
        return value

    def flag(self, name: str) -> bool:
        return self.values[name] is True

    def text(self, name: str) -> str | None:
        value = self.values[name]
        return value if isinstance(value, str) else None


def parse_query(endpoint: Endpoint, params: Mapping[str, str]) -> Query:
    """Every declared parameter by name (its default when absent); one 400 naming every bad one."""
    values: dict[str, QueryValue] = {}
    problems: list[dict[str, str]] = []
    for declared in endpoint.query:
        raw = params.get(declared.name)
        try:
            values[declared.name] = _value(declared, raw)
        except ValueError as exc:
            problems.append({"field": declared.name, "reason": str(exc)})
    if problems:
        names = ", ".join(p["field"] for p in problems)
        raise ValidationFailed(f"invalid query parameters: {names}", errors=problems)
    return Query(values)


def _value(declared: QueryParam, raw: str | None) -> QueryValue:
    if raw is None or raw == "":
        if declared.required:
            raise ValueError("required")
        return declared.default
    if declared.max_length is not None and len(raw) > declared.max_length:
        raise ValueError(f"at most {declared.max_length} characters")
    if declared.schema_type == "boolean":
        if raw not in ("true", "false"):
            raise ValueError("expected true or false")
        return raw == "true"
    if declared.schema_type == "integer":
        if _ASCII_INTEGER.fullmatch(raw) is None:
            raise ValueError("expected a whole number in ASCII digits")
        number = int(raw)
        if (declared.minimum is not None and number < declared.minimum) or (
                declared.maximum is not None and number > declared.maximum):
            raise ValueError(f"expected {declared.minimum} to {declared.maximum}")
        return number
    if declared.pattern is not None and re.fullmatch(declared.pattern, raw) is None:
        raise ValueError("not in the expected form")
    return raw

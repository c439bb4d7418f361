"""Azure Functions HTTP route templates (ASP.NET style): `{name}`, `{name:constraint}`, optional `{name?}`
(trailing only), catch-all `{*rest}`. Literals match case-insensitively; the most specific route wins."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

_PARAM = re.compile(r"^\{(\*?)([A-Za-z_][A-Za-z0-9_]*)((?::[^}?]+(?:\([^)]*\))?)*)(\??)\}$")


def _is_int(v: str) -> bool:
    return re.fullmatch(r"-?\d+", v) is not None


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _is_guid(v: str) -> bool:
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return True


_SIMPLE: dict[str, Callable[[str], bool]] = {
    "int": lambda v: _is_int(v) and -(2**31) <= int(v) < 2**31,
    "long": lambda v: _is_int(v) and -(2**63) <= int(v) < 2**63,
    "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
    "bool": lambda v: v.lower() in ("true", "false"),
    "guid": _is_guid,
    "double": _is_float,
    "float": _is_float,
    "decimal": _is_float,
    "datetime": lambda v: re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][\d:.]+)?Z?", v) is not None,
}


def _constraint(spec: str) -> Callable[[str], bool]:
    name, _, arg = spec.partition("(")
    arg = arg[:-1] if arg.endswith(")") else arg
    if name in _SIMPLE and not arg:
        return _SIMPLE[name]
    if name == "minlength":
        return lambda v: len(v) >= int(arg)
    if name == "maxlength":
        return lambda v: len(v) <= int(arg)
    if name == "length":
        bounds = [int(b) for b in arg.split(",")]
        return (lambda v: len(v) == bounds[0]) if len(bounds) == 1 else (lambda v: bounds[0] <= len(v) <= bounds[1])
    if name == "min":
        return lambda v: _is_int(v) and int(v) >= int(arg)
    if name == "max":
        return lambda v: _is_int(v) and int(v) <= int(arg)
    if name == "range":
        low, high = (int(b) for b in arg.split(","))
        return lambda v: _is_int(v) and low <= int(v) <= high
    if name == "regex":
        pattern = re.compile(arg)
        return lambda v: pattern.fullmatch(v) is not None
    raise ValueError(f"unsupported route constraint: {spec}")


@dataclass(frozen=True)
class _Segment:
    literal: str | None = None
    name: str | None = None
    checks: tuple[Callable[[str], bool], ...] = ()
    optional: bool = False
    catch_all: bool = False


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    segments: tuple[_Segment, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        segments: list[_Segment] = []
        parts = [p for p in template.strip("/").split("/") if p]
        for index, part in enumerate(parts):
            match = _PARAM.match(part)
            if match is None:
                if "{" in part or "}" in part:
                    raise ValueError(f"unsupported route segment: {part}")
                segments.append(_Segment(literal=part.lower()))
                continue
            star, name, constraints, optional = match.groups()
            checks = tuple(_constraint(c) for c in re.findall(r":([^:]+(?:\([^)]*\))?)", constraints))
            if (optional or star) and index != len(parts) - 1:
                raise ValueError(f"optional and catch-all parameters must be last: {template}")
            segments.append(_Segment(name=name, checks=checks, optional=bool(optional), catch_all=bool(star)))
        return cls(template, tuple(segments))

    @property
    def specificity(self) -> tuple[int, int, int]:
        literals = sum(1 for s in self.segments if s.literal is not None)
        constrained = sum(1 for s in self.segments if s.checks)
        return (literals, constrained, -sum(1 for s in self.segments if s.catch_all or s.optional))

    def match(self, path: str) -> dict[str, str] | None:
        parts = [p for p in path.strip("/").split("/") if p]
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.catch_all:
                rest = "/".join(unquote(p) for p in parts[index:])
                if rest and not all(check(rest) for check in segment.checks):
                    return None
                if rest:
                    values[segment.name or ""] = rest
                return values
            if index >= len(parts):
                return values if segment.optional else None
            raw = unquote(parts[index])
            if segment.literal is not None:
                if raw.lower() != segment.literal:
                    return None
                continue
            if not all(check(raw) for check in segment.checks):
                return None
            values[segment.name or ""] = raw
        return values if len(parts) == len(self.segments) else None

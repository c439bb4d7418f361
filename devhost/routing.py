"""HTTP route templates as the Functions host reads them, for the forms this app uses: literal segments
(case-insensitive) and whole-segment parameters `{name}`. Anything else of ASP.NET Core's syntax (constraints,
defaults, optional or catch-all parameters, complex segments) is refused when the host is built, rather than
served differently from Azure.

Matching works on the raw request path: each segment is percent-decoded except `%2F`, which stays encoded as
Kestrel leaves it, so a value never gains a `/` that was not a separator. A literal segment wins over a
parameter, segment by segment from the left (ASP.NET Core's inbound order; the app has no overlapping routes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import unquote

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LITERAL = re.compile(r"[^{}?*]+")


@dataclass(frozen=True)
class Segment:
    literal: str | None  # None: a parameter
    name: str | None = None


def _decode(segment: str) -> str:
    return "%2F".join(unquote(part) for part in re.split("%2[Ff]", segment))


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        text = template.strip().strip("/")
        segments: list[Segment] = []
        names: set[str] = set()
        for part in text.split("/") if text else []:
            parameter = _PARAMETER.fullmatch(part)
            if parameter is not None:
                name = parameter.group(1)
                if name.lower() in names:
                    raise ValueError(f"route template {template!r} names {name!r} twice")
                names.add(name.lower())
                segments.append(Segment(None, name))
            elif _LITERAL.fullmatch(part) is not None:
                segments.append(Segment(part))
            else:
                raise ValueError(f"route template {template!r}: segment {part!r} is neither a literal nor {{name}}")
        return cls(text, tuple(segments))

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments if s.name is not None)

    @property
    def specificity(self) -> Decimal:
        """Higher first: literal (1) before parameter (3), compared segment by segment as ASP.NET's precedence."""
        digits = "".join("1" if s.literal is not None else "3" for s in self.segments)
        return -Decimal(f"0.{digits}") if digits else Decimal(0)

    def match(self, path: str) -> dict[str, str] | None:
        text = path.strip("/")
        parts = text.split("/") if text else []
        if len(parts) != len(self.segments):
            return None
        values: dict[str, str] = {}
        for segment, raw in zip(self.segments, parts, strict=True):
            value = _decode(raw)
            if segment.literal is not None:
                if value.lower() != segment.literal.lower():
                    return None
            elif value == "":
                return None
            else:
                values[segment.name or ""] = value
        return values


def function_route(function_name: str, route: str | None, prefix: str = "") -> RouteTemplate:
    """The template a function is served at: its route (or its name) under the route prefix."""
    parts = [p.strip("/") for p in (prefix, route if route is not None else function_name) if p and p.strip("/")]
    return RouteTemplate.parse("/".join(parts))

"""HTTP route templates as the Functions host reads them (ASP.NET Core routing syntax).

Supported: literal segments (case-insensitive), `{name}`, inline constraints `{id:int}`, `{x:minlength(3)}`,
`{x:regex(^[a-z]+$)}` (several may be chained: `{x:alpha:maxlength(8)}`), defaults `{page=1}`, optional
parameters `{id?}` (trailing segments only), catch-all `{*rest}` / `{**rest}` (last segment), complex segments
such as `{name}.{ext?}` or `v{major:int}`, and `{{` / `}}` for literal braces (also inside a regex).

Matching works on the raw request path: each segment is percent-decoded except `%2F`, which stays encoded as
Kestrel leaves it, so a value never gains a `/` that was not a separator.

Precedence follows ASP.NET Core's inbound ordering, segment by segment from the left: literal, then complex or
constrained parameter, then plain parameter, then constrained catch-all, then catch-all. Note the deployed
Functions host does not do this (it orders routes by function name, azure-functions-host#9876), so an app should
not depend on overlapping routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from urllib.parse import unquote

Check = Callable[[str], bool]

_INT = re.compile(r"\s*[+-]?\d+\s*")
_FLOAT = re.compile(r"\s*[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_DECIMAL = re.compile(r"\s*[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)\s*")
_FLOAT_WORDS = {"nan", "infinity", "+infinity", "-infinity"}
_GUID = re.compile(
    r"[0-9a-f]{32}|(?P<b>[{(])?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?(b)[})])", re.IGNORECASE)
_ALPHA = re.compile(r"[A-Za-z]+")
_INVALID_NAME_CHARS = set("{}/?*=:")


def _integer(value: str, bits: int) -> bool:
    return _INT.fullmatch(value) is not None and -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1)


def _floating(value: str) -> bool:
    return _FLOAT.fullmatch(value) is not None or value.strip().lower() in _FLOAT_WORDS


def _datetime(value: str) -> bool:
    # An approximation of .NET's lenient DateTime.TryParse: ISO 8601 forms only.
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


_SIMPLE: dict[str, Check] = {
    "int": lambda v: _integer(v, 32),
    "long": lambda v: _integer(v, 64),
    "bool": lambda v: v.strip().lower() in ("true", "false"),
    "guid": lambda v: _GUID.fullmatch(v.strip()) is not None,
    "alpha": lambda v: _ALPHA.fullmatch(v) is not None,
    "double": _floating,
    "float": _floating,
    "decimal": lambda v: _DECIMAL.fullmatch(v) is not None,
    "datetime": _datetime,
    "required": lambda v: v != "",
}


def _int_args(spec: str, arg: str, count: int) -> list[int]:
    parts = [p.strip() for p in arg.split(",")] if arg else []
    if len(parts) != count or not all(_INT.fullmatch(p) for p in parts):
        raise ValueError(f"route constraint {spec!r} needs {count} integer argument{'s' if count > 1 else ''}")
    return [int(p) for p in parts]


def _constraint(spec: str) -> Check:
    """Resolves one inline constraint such as `int`, `minlength(3)` or `regex(^a+$)` (names are case-insensitive)."""
    name, paren, rest = spec.partition("(")
    name = name.strip().lower()
    if paren and not rest.endswith(")"):
        raise ValueError(f"route constraint {spec!r} is missing ')'")
    arg = rest[:-1] if paren else ""
    if name in _SIMPLE:
        if paren:
            raise ValueError(f"route constraint {name!r} takes no arguments")
        return _SIMPLE[name]
    if name == "regex":
        try:
            # ASP.NET's regex constraint is case-insensitive and not anchored: write ^...$ to match the whole value.
            pattern = re.compile(arg, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"route constraint {spec!r} has an invalid regular expression: {exc}") from exc
        return lambda v: pattern.search(v) is not None
    if name in ("minlength", "maxlength"):
        (limit,) = _int_args(spec, arg, 1)
        return (lambda v: len(v) >= limit) if name == "minlength" else (lambda v: len(v) <= limit)
    if name == "length":
        bounds = _int_args(spec, arg, 2 if "," in arg else 1)
        low, high = bounds[0], bounds[-1]
        return lambda v: low <= len(v) <= high
    if name in ("min", "max"):
        (limit,) = _int_args(spec, arg, 1)
        if name == "min":
            return lambda v: _integer(v, 64) and int(v) >= limit
        return lambda v: _integer(v, 64) and int(v) <= limit
    if name == "range":
        low, high = _int_args(spec, arg, 2)
        return lambda v: _integer(v, 64) and low <= int(v) <= high
    raise ValueError(f"unknown route constraint {spec!r}")


@dataclass(frozen=True)
class Parameter:
    name: str
    constraints: tuple[str, ...] = ()
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    checks: tuple[Check, ...] = field(default=(), repr=False, compare=False)

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


Part = str | Parameter


def _parameter(body: str, template: str) -> Parameter:
    """Parses the text between `{` and `}`: `[*|**]name[:constraint...][=default|?]`."""
    stars = len(body) - len(body.lstrip("*"))
    if stars > 2:
        raise ValueError(f"invalid catch-all parameter {{{body}}} in route {template!r}")
    text = body[stars:]
    name_end = next((i for i, c in enumerate(text) if c in ":=?"), len(text))
    name, rest = text[:name_end], text[name_end:]
    if not name or _INVALID_NAME_CHARS & set(name):
        raise ValueError(f"invalid parameter name in {{{body}}} in route {template!r}")
    constraints: list[str] = []
    pos = 0
    while pos < len(rest) and rest[pos] == ":":
        start = pos = pos + 1
        while pos < len(rest) and rest[pos] not in ":(=" and rest[pos:] != "?":
            pos += 1
        if pos < len(rest) and rest[pos] == "(":
            # The argument ends at the ')' that ends the parameter text or precedes ':', '=' or a final '?',
            # so regexes may contain parentheses.
            close = next((k for k in range(pos + 1, len(rest)) if rest[k] == ")" and (
                k + 1 == len(rest) or rest[k + 1] in ":=" or rest[k + 1:] == "?")), None)
            if close is None:
                raise ValueError(f"unbalanced '(' in {{{body}}} in route {template!r}")
            pos = close + 1
        if pos == start:
            raise ValueError(f"empty constraint in {{{body}}} in route {template!r}")
        constraints.append(rest[start:pos])
    tail = rest[pos:]
    optional, default = tail == "?", None
    if tail.startswith("="):
        default = tail[1:]
        if default.endswith("?"):
            raise ValueError(f"an optional parameter cannot have a default value: {{{body}}} in route {template!r}")
    elif tail and not optional:
        raise ValueError(f"invalid parameter {{{body}}} in route {template!r}")
    if stars and optional:
        raise ValueError(f"a catch-all parameter cannot be optional: {{{body}}} in route {template!r}")
    return Parameter(name, tuple(constraints), optional, bool(stars), default,
                     tuple(_constraint(c) for c in constraints))


def _tokenize(template: str) -> list[list[Part]]:
    """Splits a template into segments of literal text and parameters, honouring `{{` and `}}` escapes."""
    segments: list[list[Part]] = [[]]
    literal: list[str] = []

    def flush() -> None:
        if literal:
            segments[-1].append("".join(literal))
            literal.clear()

    i = 0
    while i < len(template):
        c = template[i]
        if c in "{}" and template.startswith(c * 2, i):
            literal.append(c)
            i += 2
        elif c == "}":
            raise ValueError(f"unmatched '}}' in route {template!r}")
        elif c == "{":
            flush()
            body: list[str] = []
            j = i + 1
            while True:
                if j >= len(template):
                    raise ValueError(f"unclosed '{{' in route {template!r}")
                ch = template[j]
                if ch in "{}" and template.startswith(ch * 2, j):
                    body.append(ch)
                    j += 2
                elif ch == "}":
                    break
                elif ch == "{":
                    raise ValueError(f"unescaped '{{' inside a parameter in route {template!r} "
                                     "(write '{{' and '}}' for braces in a regex)")
                else:
                    body.append(ch)
                    j += 1
            segments[-1].append(_parameter("".join(body), template))
            i = j + 1
        elif c == "/":
            flush()
            segments.append([])
            i += 1
        else:
            literal.append(c)
            i += 1
    flush()
    return segments


@dataclass(frozen=True)
class Segment:
    parts: tuple[Part, ...]
    # Complex segments (several parts) match through regexes: the full form first, then the form without
    # a trailing optional parameter and the '.' before it.
    patterns: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    @property
    def parameter(self) -> Parameter | None:
        """The parameter when the segment is exactly one parameter."""
        return self.parts[0] if len(self.parts) == 1 and isinstance(self.parts[0], Parameter) else None

    @property
    def precedence_digit(self) -> int:
        if len(self.parts) > 1:
            return 2
        part = self.parts[0]
        if isinstance(part, str):
            return 1
        return (5 if part.catch_all else 3) - (1 if part.constraints else 0)

    def match(self, value: str, values: dict[str, str]) -> bool:
        if not self.patterns:
            part = self.parts[0]
            if isinstance(part, str):
                return value.lower() == part.lower()
            if value == "" or not part.accepts(value):
                return False
            values[part.name] = value
            return True
        params = [p for p in self.parts if isinstance(p, Parameter)]
        for pattern in self.patterns:
            found = pattern.fullmatch(value)
            if found is None:
                continue
            captured = dict(zip((p.name for p in params), found.groups(), strict=False))
            if not all(p.accepts(captured[p.name]) for p in params if p.name in captured):
                return False
            values.update(captured)
            values.update({p.name: p.default for p in params if p.name not in captured and p.default is not None})
            return True
        return False


def _segment(parts: list[Part], template: str, last: bool) -> Segment:
    if not parts:
        raise ValueError(f"empty segment in route {template!r}")
    for part in parts:
        if isinstance(part, str) and "?" in part:
            raise ValueError(f"a literal segment cannot contain '?': {part!r} in route {template!r}")
        if isinstance(part, Parameter) and part.catch_all and (len(parts) > 1 or not last):
            raise ValueError(f"a catch-all parameter must be the whole last segment in route {template!r}")
    if len(parts) == 1:
        return Segment(tuple(parts))
    for first, second in pairwise(parts):
        if isinstance(first, Parameter) and isinstance(second, Parameter):
            raise ValueError(f"a segment cannot contain two consecutive parameters in route {template!r}")
    for index, part in enumerate(parts):
        before = parts[index - 1] if index else None
        if isinstance(part, Parameter) and part.optional and (
                index != len(parts) - 1 or not isinstance(before, str) or not before.endswith(".")):
            raise ValueError(f"in a complex segment only a last parameter preceded by '.' may be optional: "
                             f"{{{part.name}?}} in route {template!r}")

    def regex(items: list[Part]) -> re.Pattern[str]:
        # The first parameter takes as much as it can and the others as little: the outcome of ASP.NET's
        # right-to-left, non-greedy search for the literals.
        pieces: list[str] = []
        greedy = True
        for item in items:
            if isinstance(item, str):
                pieces.append(re.escape(item))
            else:
                pieces.append("(.+)" if greedy else "(.+?)")
                greedy = False
        return re.compile("".join(pieces), re.IGNORECASE | re.DOTALL)

    patterns = [regex(parts)]
    tail = parts[-1]
    if isinstance(tail, Parameter) and tail.optional:
        head = parts[:-1]
        head[-1] = str(head[-1])[:-1]
        patterns.append(regex([p for p in head if p != ""]))
    return Segment(tuple(parts), tuple(patterns))


def _decode(segment: str) -> str:
    # Kestrel decodes the path except for %2F; keep that one (in its original case) as it came.
    return unquote(re.sub(r"%2[fF]", lambda m: "%25" + m.group(0)[1:], segment))


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        text = template.strip()
        text = text[1:] if text.startswith("~/") else text
        text = text.strip("/")
        raw = _tokenize(text) if text else []
        segments = [_segment(parts, template, i == len(raw) - 1) for i, parts in enumerate(raw)]
        names: set[str] = set()
        trailing_optional = False
        for segment in segments:
            for part in segment.parts:
                if isinstance(part, Parameter):
                    if part.name.lower() in names:
                        raise ValueError(f"parameter {part.name!r} appears twice in route {template!r}")
                    names.add(part.name.lower())
            single = segment.parameter
            if single is not None and single.optional:
                trailing_optional = True
            elif trailing_optional and not (single is not None and single.catch_all):
                raise ValueError(f"optional parameters must be the last segments in route {template!r}")
        return cls(template, tuple(segments))

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return tuple(p for s in self.segments for p in s.parts if isinstance(p, Parameter))

    @property
    def specificity(self) -> Decimal:
        """Higher is more specific: the negated ASP.NET inbound precedence (digits 1-5 per segment, 1 = literal)."""
        digits = "".join(str(s.precedence_digit) for s in self.segments)
        return -Decimal(f"{digits[:1] or 0}.{digits[1:] or 0}")

    def match(self, path: str) -> dict[str, str] | None:
        """Route values when `path` (raw, percent-encoded, without the query) matches, else None."""
        text = path[1:] if path.startswith("/") else path
        text = text[:-1] if text.endswith("/") else text
        parts = text.split("/") if text else []
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            param = segment.parameter
            if param is not None and param.catch_all:
                rest = "/".join(_decode(p) for p in parts[index:])
                if rest:
                    if not param.accepts(rest):
                        return None
                    values[param.name] = rest
                elif param.default is not None:
                    values[param.name] = param.default
                return values
            if index >= len(parts):
                for missing in self.segments[index:]:
                    absent = missing.parameter
                    if absent is None or not (absent.optional or absent.default is not None or absent.catch_all):
                        return None
                    if absent.default is not None:
                        values[absent.name] = absent.default
                return values
            if not segment.match(_decode(parts[index]), values):
                return None
        return values if len(parts) == len(self.segments) else None


def function_route(function_name: str, route: str | None, prefix: str = "") -> RouteTemplate:
    """The template a function serves: its route (the function name when it has none) under the route prefix."""
    path = (route or function_name).strip().strip("/")
    prefix = prefix.strip().strip("/")
    return RouteTemplate.parse(f"{prefix}/{path}" if prefix else path)

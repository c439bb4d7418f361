from __future__ import annotations

import pytest

from devhost.routing import RouteTemplate, function_route

GUID = "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11"


@pytest.mark.parametrize(("template", "path", "expected"), [
    ("health", "health", {}),
    ("health", "/HEALTH/", {}),
    ("health", "health/extra", None),
    ("health", "", None),
    ("relationship-intelligence/{section}", "relationship-intelligence/audit", {"section": "audit"}),
    ("relationship-intelligence/{section}", "Relationship-Intelligence/Audit", {"section": "Audit"}),
    ("items/{id}", "items", None),
    ("items/{id}", "items//", None),
])
def test_literals_and_parameters(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path) == expected


@pytest.mark.parametrize(("template", "path", "expected"), [
    ("items/{id:int}", "items/42", {"id": "42"}),
    ("items/{id:int}", "items/-42", {"id": "-42"}),
    ("items/{id:int}", "items/4x", None),
    ("items/{id:int}", "items/2147483648", None),
    ("items/{id:long}", "items/2147483648", {"id": "2147483648"}),
    ("items/{id:long}", "items/9223372036854775808", None),
    ("items/{id:guid}", f"items/{GUID}", {"id": GUID}),
    ("items/{id:guid}", f"items/{GUID.upper().replace('-', '')}", {"id": GUID.upper().replace("-", "")}),
    ("items/{id:guid}", f"items/%7B{GUID}%7D", {"id": "{" + GUID + "}"}),
    ("items/{id:guid}", "items/nope", None),
    ("items/{kind:alpha}", "items/Lead", {"kind": "Lead"}),
    ("items/{kind:alpha}", "items/lead1", None),
    ("items/{flag:bool}", "items/TRUE", {"flag": "TRUE"}),
    ("items/{flag:bool}", "items/yes", None),
    ("items/{x:double}", "items/-1.5e3", {"x": "-1.5e3"}),
    ("items/{x:double}", "items/1.2.3", None),
    ("items/{x:decimal}", "items/1e3", None),
    ("items/{x:minlength(3)}", "items/ab", None),
    ("items/{x:minlength(3)}", "items/abc", {"x": "abc"}),
    ("items/{x:maxlength(3)}", "items/abcd", None),
    ("items/{x:length(2)}", "items/ab", {"x": "ab"}),
    ("items/{x:length(2)}", "items/abc", None),
    ("items/{x:length(2,3)}", "items/abc", {"x": "abc"}),
    ("items/{x:length(2,3)}", "items/abcd", None),
    ("items/{x:range(1,5)}", "items/5", {"x": "5"}),
    ("items/{x:range(1,5)}", "items/6", None),
    ("items/{x:min(10)}", "items/9", None),
    ("items/{x:max(10)}", "items/10", {"x": "10"}),
    ("items/{x:alpha:maxlength(3)}", "items/abcd", None),
    ("items/{x:alpha:maxlength(3)}", "items/abc", {"x": "abc"}),
    ("items/{x:INT}", "items/1", {"x": "1"}),
])
def test_constraints(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path) == expected


@pytest.mark.parametrize(("template", "path", "expected"), [
    ("items/{x:regex(^[a-c]+$)}", "items/abc", {"x": "abc"}),
    ("items/{x:regex(^[a-c]+$)}", "items/ABC", {"x": "ABC"}),  # ASP.NET regexes ignore case
    ("items/{x:regex(^[a-c]+$)}", "items/abd", None),
    ("items/{x:regex(b)}", "items/abc", {"x": "abc"}),  # and are not anchored
    ("items/{x:regex(^(a|b)+$)}", "items/abba", {"x": "abba"}),
    ("items/{x:regex(^\\d{{3}}$)}", "items/123", {"x": "123"}),  # {{ }} escape braces
    ("items/{x:regex(^\\d{{3}}$)}", "items/1234", None),
])
def test_regex_constraints(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path) == expected


@pytest.mark.parametrize(("template", "path", "expected"), [
    ("items/{id?}", "items", {}),
    ("items/{id?}", "items/", {}),
    ("items/{id:int?}", "items/7", {"id": "7"}),
    ("items/{id:int?}", "items/x", None),
    ("items/{a?}/{b?}", "items/1", {"a": "1"}),
    ("items/{page=1}", "items", {"page": "1"}),
    ("items/{page=1}", "items/3", {"page": "3"}),
    ("files/{name}.{ext?}", "files/report", {"name": "report"}),
    ("files/{name}.{ext?}", "files/report.tar.gz", {"name": "report.tar", "ext": "gz"}),
    ("v{major:int}/ping", "V2/ping", {"major": "2"}),
    ("v{major:int}/ping", "vx/ping", None),
    ("range/{from}-{to}", "range/1-2-3", {"from": "1-2", "to": "3"}),
])
def test_optional_default_and_complex_segments(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path) == expected


@pytest.mark.parametrize(("template", "path", "expected"), [
    ("files/{*rest}", "files/a/b%20c", {"rest": "a/b c"}),
    ("files/{**rest}", "files/a/b", {"rest": "a/b"}),
    ("files/{*rest}", "files", {}),
    ("files/{*rest:minlength(4)}", "files/a/b", None),
    ("{*all}", "anything/at/all", {"all": "anything/at/all"}),
])
def test_catch_all(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path) == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("items/caf%C3%A9", "café"),
    ("items/a%20b+c", "a b+c"),  # a path is not a form: '+' stays
    ("items/a%2Fb", "a%2Fb"),  # Kestrel leaves %2F encoded, so a value never gains a separator
    ("items/100%25", "100%"),
])
def test_segments_are_percent_decoded(path: str, expected: str) -> None:
    assert RouteTemplate.parse("items/{name}").match(path) == {"name": expected}


def test_literals_are_decoded_before_comparing() -> None:
    assert RouteTemplate.parse("caf\u00e9/menu").match("/caf%C3%A9/menu") == {}


def _best(templates: list[str], path: str) -> str:
    routes = sorted((RouteTemplate.parse(t) for t in templates), key=lambda r: r.specificity, reverse=True)
    return next(r.template for r in routes if r.match(path) is not None)


def test_literal_segments_win_over_parameters() -> None:
    templates = ["relationship-intelligence/{x}", "relationship-intelligence/audit"]
    assert _best(templates, "relationship-intelligence/audit") == "relationship-intelligence/audit"
    assert _best(list(reversed(templates)), "relationship-intelligence/other") == "relationship-intelligence/{x}"


def test_precedence_follows_asp_net_segment_by_segment() -> None:
    templates = ["{*all}", "items/{*rest}", "items/{id}", "items/{id:int}", "items/recent", "{a}/{b}"]
    assert _best(templates, "items/recent") == "items/recent"
    assert _best(templates, "items/7") == "items/{id:int}"
    assert _best(templates, "items/x") == "items/{id}"
    assert _best(templates, "items/x/y") == "items/{*rest}"
    assert _best(templates, "other/x") == "{a}/{b}"
    assert _best(templates, "a/b/c") == "{*all}"
    # The leftmost difference decides: a literal first segment beats a parameter there.
    assert _best(["{a}/b", "a/{b}"], "a/b") == "a/{b}"


def test_a_function_without_a_route_is_served_at_its_name() -> None:
    assert function_route("health", None, "api").template == "api/health"
    assert function_route("health", "/status/", "/api/").template == "api/status"
    assert function_route("health", "status", "").template == "status"


def test_parameters_are_listed() -> None:
    template = RouteTemplate.parse("a/{id:int}/{rest?}")
    assert [(p.name, p.constraints, p.optional) for p in template.parameters] == [
        ("id", ("int",), False), ("rest", (), True)]


@pytest.mark.parametrize("template", [
    "items/{id?}/more",  # optional not last
    "a/{*rest}/b",  # catch-all not last
    "a/x{*rest}",  # catch-all in a complex segment
    "a/{*rest?}",  # optional catch-all
    "a/{x:nonsense}",  # unknown constraint
    "a/{x:minlength}",  # missing argument
    "a/{x:int(3)}",  # argument where none is taken
    "a/{x:regex(()}",  # invalid regex
    "a/{x:regex(^\\d{3}$)}",  # unescaped braces
    "a/{x}{y}",  # consecutive parameters
    "a/{x}/{X}",  # duplicate names
    "a/{x=1?}",  # optional with default
    "a/{}",  # no name
    "a/{x",  # unclosed
    "a/x}",  # unmatched
    "a/b?",  # '?' in a literal
    "a//b",  # empty segment
    "a/{x?}-{y}",  # optional not last in a complex segment
])
def test_invalid_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="route"):
        RouteTemplate.parse(template)

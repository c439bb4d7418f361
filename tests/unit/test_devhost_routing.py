"""The dev host's route templates: the forms the app uses, matched as the Functions host does."""

from __future__ import annotations

import pytest

from devhost.routing import RouteTemplate, function_route


@pytest.mark.parametrize(("template", "path", "expected"), [
    ("status", "status", {}),
    ("status", "/STATUS/", {}),
    ("status", "status/extra", None),
    ("status", "", None),
    ("relationship-intelligence/{section}", "relationship-intelligence/audit", {"section": "audit"}),
    ("relationship-intelligence/{section}", "Relationship-Intelligence/Audit", {"section": "Audit"}),
    ("items/{id}", "items", None),
    ("items/{id}", "items//", None),
    ("insights/{entityType}/{id}", "insights/contact/c-1", {"entityType": "contact", "id": "c-1"}),
])
def test_literals_and_parameters(template: str, path: str, expected: dict[str, str] | None) -> None:
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


def test_literal_segments_win_over_parameters_from_the_left() -> None:
    templates = ["relationship-intelligence/{x}", "relationship-intelligence/audit"]
    assert _best(templates, "relationship-intelligence/audit") == "relationship-intelligence/audit"
    assert _best(list(reversed(templates)), "relationship-intelligence/other") == "relationship-intelligence/{x}"
    assert _best(["{a}/b", "a/{b}"], "a/b") == "a/{b}"


def test_a_function_without_a_route_is_served_at_its_name() -> None:
    assert function_route("status", None, "api").template == "api/status"
    assert function_route("x", "/status/", "/api/").template == "api/status"
    assert function_route("x", "status", "").template == "status"


def test_parameters_are_listed() -> None:
    assert RouteTemplate.parse("who-knows-whom/{entityType}/{id}/introductions").parameters == ("entityType", "id")


@pytest.mark.parametrize("template", [
    "items/{id:int}",  # constraints are not used by the app: refused rather than served unlike Azure
    "items/{id?}",  # optional
    "a/{*rest}",  # catch-all
    "a/{x}.{ext}",  # complex segment
    "a/{x=1}",  # default
    "a/{x}/{X}",  # duplicate names
    "a/{}",  # no name
    "a/{x",  # unclosed
    "a/x}",  # unmatched
    "a/b?",  # '?' in a literal
])
def test_other_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="route template"):
        RouteTemplate.parse(template)

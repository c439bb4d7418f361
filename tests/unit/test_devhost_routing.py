from __future__ import annotations

import pytest

from devhost.routing import RouteTemplate


@pytest.mark.parametrize(("template", "path", "expected"), [
    ("health", "health", {}),
    ("health", "HEALTH", {}),
    ("health", "health/extra", None),
    ("relationship-intelligence/{section}", "relationship-intelligence/audit", {"section": "audit"}),
    ("items/{id:int}", "items/42", {"id": "42"}),
    ("items/{id:int}", "items/4x", None),
    ("items/{id:int}", "items/99999999999", None),
    ("items/{id:long}", "items/99999999999", {"id": "99999999999"}),
    ("items/{id:guid}", "items/0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11", {"id": "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11"}),
    ("items/{id:guid}", "items/nope", None),
    ("items/{kind:alpha}", "items/lead", {"kind": "lead"}),
    ("items/{kind:alpha}", "items/lead1", None),
    ("items/{flag:bool}", "items/True", {"flag": "True"}),
    ("items/{x:minlength(3)}", "items/ab", None),
    ("items/{x:maxlength(3)}", "items/abcd", None),
    ("items/{x:length(2)}", "items/ab", {"x": "ab"}),
    ("items/{x:regex(^[a-c]+$)}", "items/abc", {"x": "abc"}),
    ("items/{x:regex(^[a-c]+$)}", "items/abd", None),
    ("items/{id:int?}", "items", {}),
    ("items/{id:int?}", "items/7", {"id": "7"}),
    ("files/{*rest}", "files/a/b%20c", {"rest": "a/b c"}),
    ("files/{*rest}", "files", {}),
    ("items/{name}", "items/caf%C3%A9", {"name": "café"}),
])
def test_templates_match_like_the_functions_host(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path) == expected


def test_literal_routes_are_more_specific_than_parameters() -> None:
    routes = sorted([RouteTemplate.parse("relationship-intelligence/{x}"),
                     RouteTemplate.parse("relationship-intelligence/audit")],
                    key=lambda r: r.specificity, reverse=True)
    assert routes[0].template == "relationship-intelligence/audit"


@pytest.mark.parametrize("template", ["items/{id?}/more", "a/{*rest}/b", "a/{x:nonsense}", "a/b{c}"])
def test_invalid_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match=r"route|unsupported|last"):
        RouteTemplate.parse(template)

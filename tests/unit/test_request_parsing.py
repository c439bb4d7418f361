"""Every bad body becomes a precise problem with the right status."""

from __future__ import annotations

import pytest

from shared.api.models import ApiModel
from shared.api.requests import parse_json_body
from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed


class Body(ApiModel):
    security_role_ids: list[str]
    enabled: bool = True


def test_a_valid_body_is_parsed_from_camel_case() -> None:
    body = parse_json_body(b'{"securityRoleIds": ["a"], "enabled": false}', "application/json; charset=utf-8", Body)
    assert body == Body(security_role_ids=["a"], enabled=False)


@pytest.mark.parametrize(
    ("raw", "content_type", "error", "status"),
    [
        (b'{"securityRoleIds": []}', "text/plain", UnsupportedMediaType, 415),
        (b'{"securityRoleIds": []}', None, UnsupportedMediaType, 415),
        (b"{not json", "application/json", BadRequest, 400),
        (b"\xff\xfe", "application/json", BadRequest, 400),
        (b"[1, 2]", "application/json", ValidationFailed, 400),
        (b'{"securityRoleIds": "a"}', "application/json", ValidationFailed, 400),
        (b'{"securityRoleIds": [], "surprise": 1}', "application/json", ValidationFailed, 400),
        (b'{"enabled": true}', "application/json", ValidationFailed, 400),
        (b'{"securityRoleIds": ["' + b"a" * 70_000 + b'"]}', "application/json", PayloadTooLarge, 413),
    ],
)
def test_bad_bodies(raw: bytes, content_type: str | None, error: type[Exception], status: int) -> None:
    with pytest.raises(error) as caught:
        parse_json_body(raw, content_type, Body)
    assert caught.value.status == status  # type: ignore[attr-defined]


def test_field_problems_name_the_field_and_the_reason() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_json_body(b'{"securityRoleIds": [1], "surprise": 1}', "application/json", Body)
    problems = {p["field"]: p["reason"] for p in caught.value.errors}
    assert problems["surprise"] == "unknown field"
    assert "securityRoleIds/0" in problems
    assert caught.value.to_problem()["errors"] == caught.value.errors

"""The nesting pre-scan of request bodies: brackets counted outside strings only, escapes paired as a parser
pairs them, and a body too deep refused as a 400 before any parser recurses into it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.api.models import ApiModel
from shared.api.requests import MAX_JSON_DEPTH, nesting_exceeds, parse_json_body
from shared.errors import BadRequest, ValidationFailed


class Body(ApiModel):
    values: list[Any]


def nested(depth: int, inner: str = "1") -> bytes:
    """`{"values": [[…]]}`: an object holding arrays, `depth` levels in all."""
    return ('{"values": ' + "[" * (depth - 1) + inner + "]" * (depth - 1) + "}").encode()


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def test_the_limit_is_exact() -> None:
    assert not nesting_exceeds(nested(MAX_JSON_DEPTH))
    assert nesting_exceeds(nested(MAX_JSON_DEPTH + 1))


def test_objects_and_arrays_count_alike() -> None:
    deep_objects = ('{"a": ' * 33 + "1" + "}" * 33).encode()
    assert nesting_exceeds(deep_objects)
    assert not nesting_exceeds(('{"a": [' * 16 + "1" + "]}" * 16).encode())


def test_siblings_do_not_add_up() -> None:
    assert not nesting_exceeds(("[" + ",".join(["[[[]]]"] * 1000) + "]").encode())


def test_brackets_inside_strings_do_not_count() -> None:
    assert not nesting_exceeds(json.dumps({"a": "[" * 1000, "b": "{" * 1000}).encode())


def test_an_escaped_quote_does_not_end_a_string() -> None:
    body = json.dumps({"a": '"' + "[" * 100 + '\\"' + "{" * 100}).encode()  # \" and \\\" inside the string
    assert b'\\"' in body
    assert not nesting_exceeds(body)


def test_an_escaped_backslash_before_the_closing_quote_ends_the_string() -> None:
    body = b'{"a": "x\\\\", "b": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}"
    assert json.loads(body)["a"] == "x\\"
    assert nesting_exceeds(body)


def test_arrays_never_closed_count_as_open() -> None:
    assert nesting_exceeds(b"[" * 5000)
    assert nesting_exceeds(b'{"a": ' + b"[" * 40)


def test_text_that_is_not_json_is_left_to_the_parser() -> None:
    assert not nesting_exceeds(b"]]]]" + b"[" * 10)
    assert not nesting_exceeds(b'"' + b"[" * 100)  # a string never closed
    assert not nesting_exceeds(b"\xff\xfe[[")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\u00e9\u2028'),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\k'), children,
                                                                       max_size=3),
    max_leaves=60)


@given(json_values, st.integers(min_value=1, max_value=8), st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_scan_agrees_with_the_parsed_depth(value: Any, limit: int, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nesting_exceeds(body, limit) == (depth_of(value) > limit)


@pytest.mark.parametrize("body", [
    nested(1000),  # about 2 KB
    b"[" * 1000 + b"]" * 1000,
    b"[" * 60_000,
    b'{"values": [' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b"]}",
], ids=["object of arrays", "top-level arrays", "never closed", "objects in an array"])
def test_a_body_too_deep_is_a_400_before_any_parser(body: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_json_body(body, "application/json", Body)
    assert caught.value.status == 400
    assert f"{MAX_JSON_DEPTH} levels" in caught.value.detail


def test_a_body_at_the_limit_reaches_the_model() -> None:
    assert parse_json_body(nested(MAX_JSON_DEPTH), "application/json", Body).values
    with pytest.raises(ValidationFailed):
        parse_json_body(nested(MAX_JSON_DEPTH).replace(b"values", b"other"), "application/json", Body)

"""Query parameters and continuation tokens: one strict parser for every route. Integers are ASCII digits of
bounded length (`int()` takes `٥` and `str.isdigit()` takes `²`), and an offset token names an ASCII number of
at most nine digits; everything else is a 400 naming the parameter."""

from __future__ import annotations

import base64

import pytest

from shared.api import endpoints
from shared.api.query import parse_query
from shared.errors import ValidationFailed
from shared.services.paging import MAX_OFFSET_DIGITS, offset_of, offset_token, page_of

NOT_ASCII_INTEGERS = ["²", "٥", "５", "𝟏", "۳", "߂", "Ⅻ", "½", "9" * 5000, "1" * 4, "-1", "+1", " 1", "1 ", "1_0",
                      "0x1", "1e1", "1.0", "01", "\u200b1", "1\x00"]


@pytest.mark.parametrize("value", NOT_ASCII_INTEGERS)
@pytest.mark.parametrize("endpoint", [endpoints.AUDIT, endpoints.LIST_INSIGHTS], ids=["audit", "insights"])
def test_page_size_is_ascii_digits_of_bounded_length(endpoint: endpoints.Endpoint, value: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_query(endpoint, {"pageSize": value})
    assert caught.value.status == 400
    assert [e["field"] for e in caught.value.errors] == ["pageSize"]


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("100", 100), ("", 20)])
def test_page_sizes_in_range_and_the_default(value: str, expected: int) -> None:
    assert parse_query(endpoints.AUDIT, {"pageSize": value}).integer("pageSize") == expected


def test_every_integer_parameter_of_the_catalogue_is_bounded() -> None:
    """The strict rule needs a length bound on every integer parameter (a 5,000-digit number is refused unread)."""
    integers = [q for e in endpoints.ALL for q in e.query if q.schema_type == "integer"]
    assert integers
    assert all(q.max_length is not None and q.minimum is not None and q.maximum is not None for q in integers)


def test_every_bad_parameter_is_named_at_once() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_query(endpoints.LIST_INSIGHTS, {"pageSize": "²", "needsAttention": "yes"})
    assert {e["field"] for e in caught.value.errors} == {"pageSize", "needsAttention"}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("token", [
    _b64("²"), _b64("٥"), _b64("１"), _b64("9" * 5000), _b64("9" * (MAX_OFFSET_DIGITS + 1)), _b64("-1"),
    _b64(" 1"), "²", "%%%", "MQ", "MQ=", "@@@@",
], ids=["superscript", "Arabic-Indic", "fullwidth", "5,000 digits", "ten digits", "negative", "space",
        "not ASCII", "not base64", "no padding", "short padding", "not the alphabet"])
def test_an_offset_token_we_did_not_issue_is_a_400(token: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        offset_of(token)
    assert [e["field"] for e in caught.value.errors] == ["continuationToken"]


def test_offset_tokens_round_trip() -> None:
    assert offset_of(offset_token(123_456_789)) == 123_456_789
    page = page_of(list(range(5)), 2, None)
    assert page.items == [0, 1]
    assert page_of(list(range(5)), 2, page.continuation).items == [2, 3]

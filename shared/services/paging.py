"""Pages of a list the service holds in memory, with a continuation token the API hands out and takes back."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.errors import ValidationFailed

T = TypeVar("T")

MAX_OFFSET_DIGITS = 9  # a token this API issued never points past a billion items


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    continuation: str | None


def page_of(items: Sequence[T], size: int, continuation: str | None) -> Page[T]:
    offset = offset_of(continuation)
    more = offset + size < len(items)
    return Page(list(items[offset:offset + size]), offset_token(offset + size) if more else None)


def offset_token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode("ascii")).decode("ascii")


def offset_of(token: str | None) -> int:
    """The offset a token of ours names; a token we did not issue is a 400."""
    if not token:
        return 0
    try:
        value = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        value = ""
    if not (0 < len(value) <= MAX_OFFSET_DIGITS and value.isascii() and value.isdigit()):
        raise ValidationFailed("the continuation token is not one this API issued",
                               errors=[{"field": "continuationToken", "reason": "malformed"}])
    return int(value)

"""Tenant identity. A tenant id is the lower-case GUID of an Entra ID directory; it is the partition key."""

from __future__ import annotations

import re
from typing import NewType

TenantId = NewType("TenantId", str)

GUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # canonical: lower case
GUID_PATTERN_ANY_CASE = GUID_PATTERN.replace("a-f", "a-fA-F")
_GUID = re.compile(GUID_PATTERN)


def is_guid(value: str) -> bool:
    """A canonical (lower-case) GUID, as tenant ids and object ids appear in tokens."""
    return _GUID.fullmatch(value) is not None

"""Tenant identity. A tenant id is the lower-case GUID of an Entra ID directory; it is the partition key."""

from __future__ import annotations

import re
from typing import NewType

TenantId = NewType("TenantId", str)

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))

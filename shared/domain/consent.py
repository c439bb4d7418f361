"""Consent requests: the `state` of the admin-consent round trip (SPEC 2.5).

The state handed to Microsoft is `{tenant id}.{secret}`. The tenant part only says in which partition to look;
the proof is the secret, of which we store nothing but its SHA-256. A request is bound to the tenant and
the admin who asked, expires after 15 minutes and is used once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from shared.tenancy import GUID_PATTERN, TenantId

STATE_LIFETIME = timedelta(minutes=15)
_STATE = re.compile(rf"^({GUID_PATTERN})\.([A-Za-z0-9_-]{{43}})$")
GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"  # what the admin consents to: our app's Graph roles


class ConsentRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant_id: str
    requested_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    outcome: str | None = None

    def usable(self, now: datetime) -> bool:
        return self.used_at is None and now < self.expires_at


@dataclass(frozen=True)
class ParsedState:
    tenant_id: TenantId
    secret_hash: str


def new_state(tenant_id: TenantId) -> tuple[str, str]:
    """A fresh state (256 random bits) and the hash under which its request is stored."""
    secret = secrets.token_urlsafe(32)
    return f"{tenant_id}.{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse_state(state: str) -> ParsedState | None:
    match = _STATE.match(state)
    if match is None:
        return None
    return ParsedState(TenantId(match.group(1)), hash_secret(match.group(2)))

"""Where a tenant's CRM lives: the Dataverse environment URL an admin gives (SPEC 7).

The only form it is ever stored or called in is the canonical one `https://{organisation}.crm{N}.dynamics.com`
(lower case, no path, no slash): the organisation host pattern of Dataverse in Azure. In development only, the
local Dataverse stand-in on loopback (`https://127.0.0.1:{port}/{name}`) is accepted too, when the app setting
says so (never in Azure).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_ORG_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.crm\d{0,2}\.dynamics\.com$")
_LOOPBACK_PATH = re.compile(r"^/[a-z0-9][a-z0-9-]{0,62}$")
SHAPE = "https://{organisation}.crm{N}.dynamics.com"


class InvalidEnvironmentUrl(ValueError):
    pass


def validate_environment_url(value: str, *, allow_loopback: bool = False) -> str:
    """The environment URL in its canonical form (`https://{org}.crm{N}.dynamics.com`, lower case, no slash),
    or InvalidEnvironmentUrl. Loopback https (`https://127.0.0.1:{port}/{name}`) only with `allow_loopback`."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidEnvironmentUrl("not a URL") from exc
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidEnvironmentUrl(f"the environment URL is {SHAPE}")
    if _ORG_HOST.match(host) and port in (None, 443) and parts.path in ("", "/"):
        return f"https://{host}"
    if allow_loopback and host in ("127.0.0.1", "localhost") and port and _LOOPBACK_PATH.match(parts.path.rstrip("/")):
        return f"https://{host}:{port}{parts.path.rstrip('/')}"
    raise InvalidEnvironmentUrl(f"the environment URL is {SHAPE}")

"""An azure-core token credential backed by MSAL's managed-identity client (no extra SDK needed).

Used in Azure for identity-based access to Table Storage; locally the app uses a connection string.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class ManagedIdentityCredential:
    def __init__(self, client_id: str | None = None) -> None:
        self._client_id = client_id
        self._client: Any = None
        self._lock = threading.Lock()

    def _msal(self) -> Any:
        with self._lock:
            if self._client is None:
                import msal
                import requests

                identity: Any = (
                    msal.UserAssignedManagedIdentity(client_id=self._client_id)
                    if self._client_id
                    else msal.SystemAssignedManagedIdentity()
                )
                self._client = msal.ManagedIdentityClient(identity, http_client=requests.Session())
            return self._client

    def get_token(self, *scopes: str, **_: Any) -> Any:
        from azure.core.credentials import AccessToken
        from azure.core.exceptions import ClientAuthenticationError

        resource = scopes[0].removesuffix("/.default") if scopes else "https://storage.azure.com"
        result = self._msal().acquire_token_for_client(resource=resource)
        if "access_token" not in result:
            raise ClientAuthenticationError(message=f"managed identity token failed: {result.get('error')}")
        return AccessToken(result["access_token"], int(time.time()) + int(result.get("expires_in", 300)))

"""Clients of the data sources (Microsoft Graph, Dataverse) and the mapping of what they return to sync items.

Plain `requests` + `msal`, imported on first use; nothing here touches the network at import time."""

from shared.connectors._http import (
    AccessDenied,
    ChangeTokenExpired,
    MsalTokenProvider,
    RequestRejected,
    RetryPolicy,
    SourceError,
    SourceUnavailable,
    SyncStateExpired,
    Throttled,
    TokenProvider,
)

__all__ = ["AccessDenied", "ChangeTokenExpired", "MsalTokenProvider", "RequestRejected", "RetryPolicy",
           "SourceError", "SourceUnavailable", "SyncStateExpired", "Throttled", "TokenProvider"]

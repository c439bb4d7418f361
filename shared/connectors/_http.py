"""What the Graph and Dataverse clients share: typed errors, app-only tokens (MSAL client credentials, one app
per tenant authority), and one GET with a small bounded retry budget that honours `Retry-After`.

A response body is read as JSON and handed on; it is never logged, and errors carry only the source's error
code, never its message (which may quote data). The errors are the service layer's kinds of source problems
(shared/services/ports.py), so the rounds decide on them without knowing this package."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from shared.services.ports import SourceBusy, SourcePositionLost, SourceProblem, SourceRefused

log = logging.getLogger("shared.connectors")


class SourceError(SourceProblem):
    """A data source could not answer this call. `code` is the source's error code (never its message)."""


class SourceUnavailable(SourceError, SourceBusy):
    """5xx or the network, after the client's own retries: try again later (`retry_after` seconds if known)."""


class Throttled(SourceError, SourceBusy):
    """429 after the client's own retries: delay the work by `retry_after` seconds instead of sleeping."""

    retry_after: float


class AccessDenied(SourceError, SourceRefused):
    """401/403 that a fresh token does not cure: consent missing or withdrawn, no application user, a
    permission missing. The caller records it and stops this tenant's round."""


class RequestRejected(SourceError, SourceRefused):
    """Another 4xx: the request itself is wrong (a bug on our side, or a link that no longer applies)."""


class SyncStateExpired(SourceError, SourcePositionLost):
    """The stored link's position is gone (Graph 410 SyncStateNotFound): drop it and start a full round."""


class ChangeTokenExpired(SyncStateExpired):
    """Dataverse refused the change token (older than ExpireChangeTrackingInDays): start a full round."""


class TokenProvider(Protocol):
    def token(self, tenant: str, scope: str, *, fresh: bool = False) -> str: ...


class MsalTokenProvider:
    """App-only tokens by client credentials: one ConfidentialClientApplication per tenant authority, its token
    cache reused; `fresh=True` drops the cached token for that scope first (after a 401 for an expired one)."""

    def __init__(self, *, authority_host: str, client_id: str, client_credential: Callable[[], Any],
                 http_client_factory: Callable[[], Any]) -> None:
        self._authority_host = authority_host.rstrip("/")
        self._client_id = client_id
        self._credential = client_credential
        self._http_client_factory = http_client_factory
        self._apps: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _app(self, tenant: str) -> Any:
        with self._lock:
            app = self._apps.get(tenant)
            if app is None:
                import msal

                app = msal.ConfidentialClientApplication(
                    self._client_id, client_credential=self._credential(),
                    authority=f"{self._authority_host}/{tenant}", http_client=self._http_client_factory(),
                    instance_discovery=False)
                self._apps[tenant] = app
            return app

    def token(self, tenant: str, scope: str, *, fresh: bool = False) -> str:
        import requests
        from msal.exceptions import MsalServiceError

        try:
            app = self._app(tenant)
            if fresh:
                resource = scope.removesuffix("/.default")
                for cached in list(app.token_cache.search(app.token_cache.CredentialType.ACCESS_TOKEN)):
                    if str(cached.get("target", "")).startswith(resource):
                        app.token_cache.remove_at(cached)
            result = app.acquire_token_for_client(scopes=[scope])
        except (requests.RequestException, MsalServiceError, OSError) as exc:
            raise SourceUnavailable("the identity provider could not be reached", code=type(exc).__name__) from exc
        if "access_token" in result:
            return str(result["access_token"])
        error = str(result.get("error", "unknown"))
        codes = result.get("error_codes") or []
        code = f"AADSTS{codes[0]}" if codes else error
        if error in ("temporarily_unavailable", "server_error"):
            raise SourceUnavailable("the identity provider is unavailable", code=code)
        raise AccessDenied("no app-only token for this tenant (consent missing or withdrawn?)", code=code)


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # tries per call in all (so two retries)
    max_inline_wait: float = 10.0  # a longer Retry-After is handed to the caller at once
    default_wait: float = 1.0  # when a 429/503 says nothing


class Transport:
    """GET with the tenant's token, retries inside the budget, errors classified."""

    def __init__(self, tokens: TokenProvider, *, session_factory: Callable[[], Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep, retry: RetryPolicy | None = None,
                 timeout: float = 30.0, classify: Callable[[int, str | None, str], SourceError | None] | None = None,
                 ) -> None:
        self._tokens = tokens
        self._session_factory = session_factory
        self._session: Any = None
        self._sleep = sleep
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._classify = classify
        self._lock = threading.Lock()

    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                if self._session_factory is not None:
                    self._session = self._session_factory()
                else:
                    import requests

                    self._session = requests.Session()
                    self._session.trust_env = False
            return self._session

    def get(self, tenant: str, scope: str, url: str, headers: Mapping[str, str],
            guard: Callable[[], Any] | None = None) -> dict[str, Any]:
        """The JSON body of a 200. `guard` gives a context manager held around each attempt (the per-mailbox
        semaphore), released while waiting."""
        import requests

        fresh = False
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = self._tokens.token(tenant, scope, fresh=fresh)
            fresh = False
            try:
                if guard is not None:
                    with guard():
                        response = self.session().get(url, headers={**headers, "Authorization": f"Bearer {token}"},
                                                      timeout=self._timeout, allow_redirects=False)
                else:
                    response = self.session().get(url, headers={**headers, "Authorization": f"Bearer {token}"},
                                                  timeout=self._timeout, allow_redirects=False)
            except requests.RequestException as exc:
                if attempt < self._retry.attempts:
                    self._sleep(self._retry.default_wait)
                    continue
                raise SourceUnavailable("the source could not be reached", code=type(exc).__name__) from exc
            status = response.status_code
            if status == 200:
                try:
                    body = response.json()
                except ValueError as exc:
                    raise SourceUnavailable("the source answered something that is not JSON", status=200) from exc
                if not isinstance(body, dict):
                    raise SourceUnavailable("the source answered an unexpected shape", status=200)
                return body
            code = _error_code(response)
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if status == 401 and not refreshed:
                refreshed = fresh = True  # expired or revoked token: one fresh token, then it is an answer
                attempt -= 1
                continue
            classified = self._classify(status, code, _error_message(response)) if self._classify else None
            if classified is not None:
                raise classified
            if status in (401, 403):
                raise AccessDenied("the source refused our app-only token", status=status, code=code)
            if status in (429, 500, 502, 503, 504):
                delay = wait if wait is not None else self._retry.default_wait * attempt
                if attempt < self._retry.attempts and delay <= self._retry.max_inline_wait:
                    log.info("source answered %s (%s), retrying in %.1f s", status, code, delay)
                    self._sleep(delay)
                    continue
                if status == 429:
                    raise Throttled("the source throttles this app", status=status, code=code, retry_after=delay)
                raise SourceUnavailable("the source is unavailable", status=status, code=code, retry_after=delay)
            raise RequestRejected("the source refused the request", status=status, code=code)


def _error_code(response: Any) -> str | None:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(error, dict):
        return str(error.get("code")) if error.get("code") is not None else None
    return str(error) if isinstance(error, str) else None


def _error_message(response: Any) -> str:
    """For classification only (never logged, never raised)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return str(error.get("message", "")) if isinstance(error, dict) else ""


def same_origin(link: str, base: str) -> bool:
    """A stored link may only lead where its client was configured to go (it carries our bearer token)."""
    a, b = urlsplit(link), urlsplit(base)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port) and a.scheme == "https"


__all__ = ["AccessDenied", "ChangeTokenExpired", "MsalTokenProvider", "RequestRejected", "RetryPolicy",
           "SourceError", "SourceUnavailable", "SyncStateExpired", "Throttled", "TokenProvider", "Transport",
           "retry_after_seconds", "same_origin"]

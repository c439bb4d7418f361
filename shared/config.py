"""Every setting the app reads, in one place. Values come from app settings (environment variables)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

DEFAULT_ADMIN_ROLES = ("SystemAdministrator", "SystemCustomizer")
DEFAULT_SELLER_ROLES = ("Salesperson", "SalesManager", "VicePresidentOfSales", "SalesProfessionalManager")
DEFAULT_WHO_KNOWS_WHOM_ROLES = ("Salesperson", "SalesManager")
DEFAULT_MANAGER_ROLES = ("SalesManager", "VicePresidentOfSales", "SalesProfessionalManager")
DEFAULT_SYNC_ROLES = ("RelationshipIntelligence.Sync",)
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_MAILBOX_ROUND_MINUTES = 15
DEFAULT_CRM_ROUND_MINUTES = 60
DEFAULT_GRAPH_PERMISSIONS = ("Mail.ReadBasic.All", "Calendars.ReadBasic.All", "User.Read.All", "GroupMember.Read.All")


class ConfigurationError(RuntimeError):
    """A required setting is missing or malformed; the app cannot serve until it is fixed."""


def _secret(value: str | None) -> str | None:
    """A Key Vault reference that the platform could not resolve reaches the app as its own text: not a secret."""
    if not value or value.startswith("@Microsoft.KeyVault("):
        return None
    return value


def _split(value: str | None, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    if value is None or not value.strip():
        return default
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _https_or_loopback(value: str | None, name: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not (parts.scheme == "https" or loopback) or not parts.hostname or parts.fragment:
        raise ConfigurationError(f"{name} must be an https URL (http only on loopback), without a fragment")
    return value


def _graph_url(value: str | None) -> str:
    """Microsoft Graph's v1.0 root (its host only, the client adds `/v1.0`); https, since it carries our tokens."""
    url = (value or DEFAULT_GRAPH_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ConfigurationError("RI_GRAPH_BASE_URL must be an https URL such as https://graph.microsoft.com/v1.0")
    return url.removesuffix("/v1.0")


def _minutes(value: str | None, default: int, name: str) -> timedelta:
    """A round interval in whole minutes: at least 5 (the timer's own period), at most a day."""
    if not value or not value.strip():
        return timedelta(minutes=default)
    try:
        minutes = int(value)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a whole number of minutes") from exc
    if not 5 <= minutes <= 1440:
        raise ConfigurationError(f"{name} must be between 5 and 1440 minutes")
    return timedelta(minutes=minutes)


MAX_ACTIVITY_SHARDS = 64


def _shards(value: str | None) -> int:
    if not value or not value.strip():
        return 1
    try:
        count = int(value)
    except ValueError as exc:
        raise ConfigurationError("RI_ACTIVITY_SHARDS must be a whole number") from exc
    if not 1 <= count <= MAX_ACTIVITY_SHARDS:
        raise ConfigurationError(f"RI_ACTIVITY_SHARDS must be between 1 and {MAX_ACTIVITY_SHARDS}")
    return count


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _queues_endpoint(env: Mapping[str, str]) -> str | None:
    """The host storage's queue service when it is reached with an identity (no connection string)."""
    explicit = env.get("AzureWebJobsStorage__queueServiceUri")
    account = env.get("AzureWebJobsStorage__accountName")
    return explicit or (f"https://{account}.queue.core.windows.net" if account else None)


@dataclass(frozen=True)
class AppConfig:
    """The app's configuration (app settings); not to be confused with a tenant's TenantSettings."""

    storage_connection: str | None
    tables_endpoint: str | None
    state_table: str
    authority_host: str
    api_audiences: tuple[str, ...]
    ca_bundle: str | None
    admin_roles: tuple[str, ...] = DEFAULT_ADMIN_ROLES
    seller_roles: tuple[str, ...] = DEFAULT_SELLER_ROLES
    who_knows_whom_roles: tuple[str, ...] = DEFAULT_WHO_KNOWS_WHOM_ROLES
    manager_roles: tuple[str, ...] = DEFAULT_MANAGER_ROLES
    sync_roles: tuple[str, ...] = DEFAULT_SYNC_ROLES
    client_id: str | None = None
    client_secret: str | None = None
    client_certificate_path: str | None = None
    client_certificate_thumbprint: str | None = None
    consent_redirect_uri: str | None = None
    portal_url: str | None = None
    required_graph_permissions: tuple[str, ...] = DEFAULT_GRAPH_PERMISSIONS
    consent_proof_backoff_seconds: float = 1.0
    # The work bus: the queues the Functions host's queue triggers listen to, in its own storage account.
    queue_connection: str | None = None
    queues_endpoint: str | None = None
    queue_prefix: str = "ri"  # not an app setting: the queue triggers listen to ri-*; tests keep worlds apart
    # The data sources (SPEC 7): where Graph is, how often each kind of round runs, and whether a Dataverse
    # environment on loopback (the local stand-in) may be set: development only, never in Azure.
    graph_url: str = "https://graph.microsoft.com"
    mailbox_round_interval: timedelta = timedelta(minutes=DEFAULT_MAILBOX_ROUND_MINUTES)
    crm_round_interval: timedelta = timedelta(minutes=DEFAULT_CRM_ROUND_MINUTES)
    allow_loopback_sources: bool = False
    # How many partitions of their own hold each tenant's activities (`records_repository`): chosen once for a
    # storage account; a back-fill of millions of activities needs more than one partition's 2,000 entities/s.
    activity_shards: int = 1

    def client_credential(self) -> str | dict[str, str]:
        """The app's credential for MSAL: a certificate when configured, else the client secret."""
        if self.client_certificate_path and self.client_certificate_thumbprint:
            with open(self.client_certificate_path, encoding="ascii") as pem:
                return {"private_key": pem.read(), "thumbprint": self.client_certificate_thumbprint}
        if self.client_secret:
            return self.client_secret
        raise ConfigurationError("set RI_CLIENT_SECRET or RI_CLIENT_CERTIFICATE_PATH and _THUMBPRINT")

    def consent_settings(self) -> tuple[str, str]:
        if not self.client_id or not self.consent_redirect_uri:
            raise ConfigurationError("admin consent needs RI_CLIENT_ID and RI_CONSENT_REDIRECT_URI")
        return self.client_id, self.consent_redirect_uri

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppConfig:
        env = os.environ if env is None else env
        connection = env.get("RI_STORAGE_CONNECTION") or env.get("AzureWebJobsStorage") or None
        endpoint = env.get("RI_TABLES_ENDPOINT") or None
        if not connection and not endpoint:
            raise ConfigurationError(
                "no table storage configured: set RI_STORAGE_CONNECTION, AzureWebJobsStorage or RI_TABLES_ENDPOINT"
            )
        authority = (env.get("RI_AUTHORITY_HOST") or "https://login.microsoftonline.com").rstrip("/")
        if not authority.startswith("https://"):
            raise ConfigurationError("RI_AUTHORITY_HOST must be an https:// URL")
        audiences = _split(env.get("RI_API_AUDIENCES"))
        if not audiences:
            raise ConfigurationError("RI_API_AUDIENCES must list the audience(s) of our API's access tokens")
        state_table = env.get("RI_STATE_TABLE") or "TenantState"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,52}", state_table):
            # (53 at most: the activities' and the insights' tables are named after it, `{name}Activities` and
            # `{name}Insights`, and a table name has 63.)
            raise ConfigurationError("RI_STATE_TABLE must be a table name: a letter, then 2 to 52 letters or digits")
        return cls(
            storage_connection=connection,
            tables_endpoint=endpoint,
            state_table=state_table,
            authority_host=authority,
            api_audiences=audiences,
            ca_bundle=env.get("RI_CA_BUNDLE") or None,
            admin_roles=_split(env.get("RI_ADMIN_ROLES"), DEFAULT_ADMIN_ROLES),
            seller_roles=_split(env.get("RI_SELLER_ROLES"), DEFAULT_SELLER_ROLES),
            who_knows_whom_roles=_split(env.get("RI_WHO_KNOWS_WHOM_ROLES"), DEFAULT_WHO_KNOWS_WHOM_ROLES),
            manager_roles=_split(env.get("RI_MANAGER_ROLES"), DEFAULT_MANAGER_ROLES),
            sync_roles=_split(env.get("RI_SYNC_ROLES"), DEFAULT_SYNC_ROLES),
            client_id=env.get("RI_CLIENT_ID") or None,
            client_secret=_secret(env.get("RI_CLIENT_SECRET")),
            client_certificate_path=env.get("RI_CLIENT_CERTIFICATE_PATH") or None,
            client_certificate_thumbprint=env.get("RI_CLIENT_CERTIFICATE_THUMBPRINT") or None,
            consent_redirect_uri=_https_or_loopback(env.get("RI_CONSENT_REDIRECT_URI"), "RI_CONSENT_REDIRECT_URI"),
            portal_url=_https_or_loopback(env.get("RI_PORTAL_URL"), "RI_PORTAL_URL"),
            required_graph_permissions=_split(env.get("RI_REQUIRED_GRAPH_PERMISSIONS"), DEFAULT_GRAPH_PERMISSIONS),
            consent_proof_backoff_seconds=float(env.get("RI_CONSENT_PROOF_BACKOFF_SECONDS") or 1.0),
            queue_connection=env.get("AzureWebJobsStorage") or None,
            queues_endpoint=_queues_endpoint(env),
            graph_url=_graph_url(env.get("RI_GRAPH_BASE_URL")),
            mailbox_round_interval=_minutes(env.get("RI_MAILBOX_ROUND_MINUTES"), DEFAULT_MAILBOX_ROUND_MINUTES,
                                            "RI_MAILBOX_ROUND_MINUTES"),
            crm_round_interval=_minutes(env.get("RI_CRM_ROUND_MINUTES"), DEFAULT_CRM_ROUND_MINUTES,
                                        "RI_CRM_ROUND_MINUTES"),
            allow_loopback_sources=_flag(env.get("RI_ALLOW_LOOPBACK_SOURCES")),
            activity_shards=_shards(env.get("RI_ACTIVITY_SHARDS")),
        )

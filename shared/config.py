"""Every setting the app reads, in one place. Values come from app settings (environment variables)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_ADMIN_ROLES = ("SystemAdministrator", "SystemCustomizer")
DEFAULT_SELLER_ROLES = ("Salesperson", "SalesManager", "VicePresidentOfSales", "SalesProfessionalManager")
DEFAULT_WHO_KNOWS_WHOM_ROLES = ("Salesperson", "SalesManager")
DEFAULT_SYNC_ROLES = ("RelationshipIntelligence.Sync",)


class ConfigurationError(RuntimeError):
    """A required setting is missing or malformed; the app cannot serve until it is fixed."""


def _split(value: str | None, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    if value is None or not value.strip():
        return default
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    storage_connection: str | None
    tables_endpoint: str | None
    state_table: str
    authority_host: str
    api_audiences: tuple[str, ...]
    ca_bundle: str | None
    admin_roles: tuple[str, ...] = DEFAULT_ADMIN_ROLES
    seller_roles: tuple[str, ...] = DEFAULT_SELLER_ROLES
    who_knows_whom_roles: tuple[str, ...] = DEFAULT_WHO_KNOWS_WHOM_ROLES
    sync_roles: tuple[str, ...] = DEFAULT_SYNC_ROLES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
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
        return cls(
            storage_connection=connection,
            tables_endpoint=endpoint,
            state_table=env.get("RI_STATE_TABLE") or "TenantState",
            authority_host=authority,
            api_audiences=audiences,
            ca_bundle=env.get("RI_CA_BUNDLE") or None,
            admin_roles=_split(env.get("RI_ADMIN_ROLES"), DEFAULT_ADMIN_ROLES),
            seller_roles=_split(env.get("RI_SELLER_ROLES"), DEFAULT_SELLER_ROLES),
            who_knows_whom_roles=_split(env.get("RI_WHO_KNOWS_WHOM_ROLES"), DEFAULT_WHO_KNOWS_WHOM_ROLES),
            sync_roles=_split(env.get("RI_SYNC_ROLES"), DEFAULT_SYNC_ROLES),
        )

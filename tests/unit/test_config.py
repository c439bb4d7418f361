from __future__ import annotations

import pytest

from shared.config import AppConfig, ConfigurationError


def test_settings_from_app_settings() -> None:
    settings = AppConfig.from_env({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "RI_API_AUDIENCES": "api://ri, 6f1b0c52-8a4e-4d7b-9c3a-2e5f7a9b1c0d",
        "RI_AUTHORITY_HOST": "https://127.0.0.1:7072/",
    })
    assert settings.storage_connection == "UseDevelopmentStorage=true"
    assert settings.api_audiences == ("api://ri", "6f1b0c52-8a4e-4d7b-9c3a-2e5f7a9b1c0d")
    assert settings.authority_host == "https://127.0.0.1:7072"
    assert settings.state_table == "TenantState"


def test_a_dedicated_storage_connection_wins_over_the_host_storage() -> None:
    settings = AppConfig.from_env({"AzureWebJobsStorage": "host", "RI_STORAGE_CONNECTION": "app",
                                  "RI_API_AUDIENCES": "x"})
    assert settings.storage_connection == "app"


@pytest.mark.parametrize("env", [
    {"RI_API_AUDIENCES": "x"},
    {"AzureWebJobsStorage": "UseDevelopmentStorage=true"},
    {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "RI_API_AUDIENCES": "x", "RI_AUTHORITY_HOST": "http://a"},
])
def test_missing_or_unsafe_settings_are_configuration_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        AppConfig.from_env(env)


def test_an_unresolved_key_vault_reference_is_no_secret() -> None:
    settings = AppConfig.from_env({"AzureWebJobsStorage": "x", "RI_API_AUDIENCES": "x",
                                  "RI_CLIENT_SECRET": "@Microsoft.KeyVault(SecretUri=https://kv/secrets/s)"})
    assert settings.client_secret is None
    with pytest.raises(ConfigurationError):
        settings.client_credential()

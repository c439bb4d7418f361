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
    {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "RI_API_AUDIENCES": "x", "RI_STATE_TABLE": "T" * 54},
    {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "RI_API_AUDIENCES": "x", "RI_STATE_TABLE": "tenant-state"},
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


def test_the_data_sources_settings_and_their_defaults() -> None:
    base = {"AzureWebJobsStorage": "x", "RI_API_AUDIENCES": "x"}
    default = AppConfig.from_env(base)
    assert default.graph_url == "https://graph.microsoft.com"
    assert (default.mailbox_round_interval.total_seconds(), default.crm_round_interval.total_seconds()) == (900, 3600)
    assert default.allow_loopback_sources is False
    assert default.activity_shards == 1
    local = AppConfig.from_env({**base, "RI_GRAPH_BASE_URL": "https://127.0.0.1:7073/v1.0/",
                                "RI_MAILBOX_ROUND_MINUTES": "5", "RI_CRM_ROUND_MINUTES": "120",
                                "RI_ALLOW_LOOPBACK_SOURCES": "true", "RI_ACTIVITY_SHARDS": "8"})
    assert local.graph_url == "https://127.0.0.1:7073"
    assert (local.mailbox_round_interval.total_seconds(), local.crm_round_interval.total_seconds()) == (300, 7200)
    assert local.allow_loopback_sources is True
    assert local.activity_shards == 8


@pytest.mark.parametrize("extra", [{"RI_GRAPH_BASE_URL": "http://graph.microsoft.com/v1.0"},
                                   {"RI_MAILBOX_ROUND_MINUTES": "1"}, {"RI_CRM_ROUND_MINUTES": "hourly"},
                                   {"RI_ACTIVITY_SHARDS": "0"}, {"RI_ACTIVITY_SHARDS": "65"},
                                   {"RI_ACTIVITY_SHARDS": "eight"}])
def test_unusable_data_sources_settings_are_configuration_errors(extra: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        AppConfig.from_env({"AzureWebJobsStorage": "x", "RI_API_AUDIENCES": "x", **extra})


def test_a_built_container_collects_young_garbage_every_50000_allocations_not_700() -> None:
    import gc

    from shared import bootstrap, garbage_collection

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        bootstrap.build(AppConfig.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                            "RI_API_AUDIENCES": "x"}))
        assert gc.get_threshold() == (garbage_collection.YOUNG_THRESHOLD, *garbage_collection.OLDER_THRESHOLDS)
    finally:
        gc.set_threshold(*before)

"""The project's own rules for infra/main.bicep, checked on the text (checkov covers the generic ones)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BICEP = (Path(__file__).resolve().parents[2] / "infra" / "main.bicep").read_text()
SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "local.settings.sample.json").read_text())["Values"]


def _block(resource: str) -> str:
    match = re.search(rf"^resource {resource} .*?^}}", BICEP, re.S | re.M)
    assert match, f"resource {resource} not found"
    return match.group(0)


def test_flex_consumption_linux_python_311() -> None:
    plan = _block("plan")
    assert "tier: 'FlexConsumption'" in plan
    assert "name: 'FC1'" in plan
    assert "reserved: true" in plan
    app = _block("functionApp")
    assert "kind: 'functionapp,linux'" in app
    assert re.search(r"runtime: \{\s*name: 'python'\s*version: '3.11'", app)


def test_https_only_and_tls_12() -> None:
    app = _block("functionApp")
    assert "httpsOnly: true" in app
    assert "minTlsVersion: '1.2'" in app
    assert "ftpsState: 'Disabled'" in app
    assert "minimumTlsVersion: 'TLS1_2'" in _block("storage")


def test_storage_has_no_keys_and_no_public_blobs() -> None:
    storage = _block("storage")
    assert "allowSharedKeyAccess: false" in storage
    assert "allowBlobPublicAccess: false" in storage
    assert "name: stateTableName" in _block("stateTable")
    assert "param stateTableName string = 'TenantState'" in BICEP


def test_identity_based_host_storage_and_no_flex_forbidden_settings() -> None:
    settings = _block("appSettings")
    assert "AzureWebJobsStorage__credential: 'managedidentity'" in settings
    assert "AzureWebJobsStorage__accountName" in settings
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings
    assert "WEBSITE_RUN_FROM_PACKAGE" not in settings
    assert "AccountKey" not in BICEP


def test_the_client_secret_comes_from_key_vault_with_rbac() -> None:
    assert "enableRbacAuthorization: true" in _block("vault")
    assert "enablePurgeProtection: true" in _block("vault")
    assert re.search(r"RI_CLIENT_SECRET: '@Microsoft.KeyVault\(SecretUri=", _block("appSettings"))


# Not wired on purpose: the local CA (development only), the secret (checked above) and the Graph permission
# list (the app's default is the production list).
NOT_WIRED = ("RI_CA_BUNDLE", "RI_CLIENT_SECRET", "RI_REQUIRED_GRAPH_PERMISSIONS")


@pytest.mark.parametrize("setting", [k for k in SAMPLE if k.startswith("RI_") and k not in NOT_WIRED])
def test_every_setting_of_the_app_is_wired(setting: str) -> None:
    assert f"{setting}:" in _block("appSettings")


def test_the_identity_gets_data_roles_not_owner_or_contributor() -> None:
    roles = re.search(r"var roles = \{(.*?)\}", BICEP, re.S)
    assert roles
    ids = set(re.findall(r"'([0-9a-f-]{36})'", roles.group(1)))
    assert ids == {
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
        "4633458b-17de-408a-b874-0445c86b69e6",  # Key Vault Secrets User
        "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher
    }
    assert "b24988ac-6180-42a0-ab88-20f7382dd24c" not in BICEP  # Contributor
    assert "8e3af657-a8ff-443c-a75c-2fe8c4bcb635" not in BICEP  # Owner


def test_every_checkov_skip_says_why() -> None:
    for line in re.findall(r"checkov:skip=.*", BICEP):
        check, _, reason = line.removeprefix("checkov:skip=").partition(":")
        assert re.fullmatch(r"CKV_AZURE_\d+", check), line
        assert len(reason.strip()) > 15, line

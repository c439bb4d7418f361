"""The project's own rules for infra/*.bicep, checked on the text (checkov covers the generic ones)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP = (INFRA / "main.bicep").read_text()
SECRET_MODULE = (INFRA / "modules" / "keyvault-secret.bicep").read_text()
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]


def _block(resource: str, text: str = BICEP) -> str:
    """The text of `resource <resource> ...` (or `module <resource> ...`) up to its closing brace."""
    match = re.search(rf"^(?:resource|module) {resource} .*?^}}", text, re.S | re.M)
    assert match, f"resource {resource} not found"
    return match.group(0)


def _settings() -> dict[str, str]:
    """App settings name -> Bicep expression, from the appsettings resource's properties."""
    properties = re.search(r"^  properties: \{\n(.*?)^  \}", _block("appSettings"), re.S | re.M)
    assert properties
    return dict(re.findall(r"^    (\w+): (.+)$", properties.group(1), re.M))


def _param_default(name: str) -> str:
    match = re.search(rf"^param {name} \w+ = (.+)$", BICEP, re.M)
    assert match, f"param {name} has no default"
    return match.group(1)


def test_flex_consumption_linux_python_311() -> None:
    plan = _block("plan")
    assert "tier: 'FlexConsumption'" in plan
    assert "name: 'FC1'" in plan
    assert "reserved: true" in plan
    app = _block("functionApp")
    assert "kind: 'functionapp,linux'" in app
    assert "serverFarmId: plan.id" in app
    assert re.search(r"runtime: \{\s*name: 'python'\s*version: '3.11'\s*\}", app)
    assert re.search(r"scaleAndConcurrency: \{\s*maximumInstanceCount: \w+\s*instanceMemoryMB: \w+", app)


def test_deployment_package_is_read_with_the_managed_identity() -> None:
    app = _block("functionApp")
    assert "type: 'blobContainer'" in app
    assert "value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'" in app
    assert "authentication: { type: 'SystemAssignedIdentity' }" in app
    assert "identity: { type: 'SystemAssigned' }" in app
    assert "publicAccess: 'None'" in _block("deploymentContainer")


def test_https_only_tls_12_and_no_ftp() -> None:
    app = _block("functionApp")
    assert "httpsOnly: true" in app
    assert "minTlsVersion: '1.2'" in app
    assert "ftpsState: 'Disabled'" in app
    storage = _block("storage")
    assert "minimumTlsVersion: 'TLS1_2'" in storage
    assert "supportsHttpsTrafficOnly: true" in storage


def test_storage_has_no_keys_and_no_public_blobs() -> None:
    storage = _block("storage")
    assert "kind: 'StorageV2'" in storage
    assert "allowSharedKeyAccess: false" in storage
    assert "allowBlobPublicAccess: false" in storage
    assert "AccountKey" not in BICEP
    assert "listKeys" not in BICEP


def test_the_state_table_is_created_and_named_by_a_parameter() -> None:
    assert _param_default("stateTableName") == "'TenantState'"
    table = _block("stateTable")
    assert "'Microsoft.Storage/storageAccounts/tableServices/tables@" in table
    assert "name: stateTableName" in table
    assert _settings()["RI_STATE_TABLE"] == "stateTableName"


def test_every_work_queue_and_its_poison_queue_is_created() -> None:
    from shared.services.work import WorkKind

    declared = re.search(r"var workQueues = \[(.*?)\]", BICEP, re.S)
    assert declared is not None
    names = set(re.findall(r"'([a-z0-9-]+)'", declared.group(1)))
    assert names == {kind.queue for kind in WorkKind} | {f"{kind.queue}-poison" for kind in WorkKind}
    assert "for queue in workQueues" in _block("queues")


def test_identity_based_host_storage_and_no_flex_forbidden_settings() -> None:
    settings = _settings()
    assert settings["AzureWebJobsStorage__accountName"] == "storage.name"
    assert settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert "AzureWebJobsStorage__clientId" not in settings  # system-assigned identity: no client id
    assert "AzureWebJobsStorage" not in settings  # no connection string
    for forbidden in ("FUNCTIONS_WORKER_RUNTIME", "WEBSITE_RUN_FROM_PACKAGE"):  # Flex rejects both
        assert forbidden not in settings
        assert not re.search(rf"^\s*{forbidden}\s*:|'{forbidden}'", BICEP, re.M)  # nor anywhere else (siteConfig)


# The settings this template must wire, and the expression each gets.
EXPECTED_SETTINGS = {
    "RI_TABLES_ENDPOINT": "storage.properties.primaryEndpoints.table",
    "RI_STATE_TABLE": "stateTableName",
    "RI_AUTHORITY_HOST": "'https://login.microsoftonline.com'",
    "RI_API_AUDIENCES": "apiAudiences",
    "RI_CLIENT_ID": "clientId",
    "RI_CLIENT_SECRET": "'@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/${clientSecretName})'",
    "RI_CONSENT_REDIRECT_URI": "'https://${functionApp.properties.defaultHostName}/api/consent/callback'",
    "RI_PORTAL_URL": "empty(portalUrl) ? '${portalOrigin}/' : portalUrl",  # the Static Web App unless told
    "RI_BACKGROUND_SCHEDULE": "backgroundSchedule",
    "RI_GRAPH_BASE_URL": "'https://graph.microsoft.com/v1.0'",
    "RI_MAILBOX_ROUND_MINUTES": "string(mailboxRoundMinutes)",
    "RI_CRM_ROUND_MINUTES": "string(crmRoundMinutes)",
    "RI_ACTIVITY_SHARDS": "string(activityShards)",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "appInsights.properties.ConnectionString",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "'Authorization=AAD'",
}


@pytest.mark.parametrize(("setting", "expression"), EXPECTED_SETTINGS.items())
def test_app_setting_is_wired(setting: str, expression: str) -> None:
    assert _settings().get(setting) == expression


def test_settings_defaults() -> None:
    assert _param_default("backgroundSchedule") == "'0 */5 * * * *'"
    assert _param_default("mailboxRoundMinutes") == "15"
    assert _param_default("crmRoundMinutes") == "60"
    assert _param_default("activityShards") == "8"
    assert _param_default("portalUrl") == "''"
    assert re.search(r"^param apiAudiences string$", BICEP, re.M)  # required: no default audience
    assert re.search(r"^param clientId string$", BICEP, re.M)


# Not wired on purpose: the local CA and loopback data sources (development only) and the Graph permission list
# (the app's default is the production list).
NOT_WIRED = ("RI_CA_BUNDLE", "RI_REQUIRED_GRAPH_PERMISSIONS", "RI_ALLOW_LOOPBACK_SOURCES")


def test_loopback_data_sources_are_never_allowed_in_azure() -> None:
    assert "RI_ALLOW_LOOPBACK_SOURCES" not in BICEP
    assert "127.0.0.1" not in BICEP


@pytest.mark.parametrize("setting", [k for k in SAMPLE if k.startswith("RI_") and k not in NOT_WIRED])
def test_every_setting_of_the_local_sample_is_wired(setting: str) -> None:
    assert setting in _settings()


def test_the_portal_is_a_static_web_app_and_the_only_origin_the_api_allows() -> None:
    portal = _block("portal")
    assert "'Microsoft.Web/staticSites@" in portal
    assert "stagingEnvironmentPolicy: 'Disabled'" in portal
    assert "var portalOrigin = 'https://${portal.properties.defaultHostname}'" in BICEP
    cors = re.search(r"cors: \{\s*allowedOrigins: (.+)\n\s*supportCredentials: (\w+)", _block("functionApp"))
    assert cors, "siteConfig.cors missing"
    assert cors.group(1) == "concat([portalOrigin], extraCorsOrigins)"
    assert cors.group(2) == "false"  # bearer tokens, no cookies
    assert _param_default("extraCorsOrigins") == "[]"
    assert "'*'" not in _block("functionApp")


def test_key_vault_uses_rbac_soft_delete_and_purge_protection() -> None:
    vault = _block("vault")
    assert "enableRbacAuthorization: true" in vault
    assert "enableSoftDelete: true" in vault
    assert "enablePurgeProtection: true" in vault
    assert "publicNetworkAccess: keyVaultPublicNetworkAccess" in vault
    assert "accessPolicies" not in BICEP


def test_client_secret_is_optional_and_never_overwritten_with_nothing() -> None:
    assert re.search(r"^@secure\(\)\nparam clientSecret string = ''$", BICEP, re.M)
    assert "var clientSecretName = 'ri-client-secret'" in BICEP
    module = _block("clientSecretVersion")
    assert "'modules/keyvault-secret.bicep' = if (!empty(clientSecret))" in module
    assert "name: clientSecretName" in module
    secret = _block("secret", SECRET_MODULE)
    assert "exp: expiresOn" in secret
    assert "contentType: contentType" in secret
    assert re.search(r"^@secure\(\)\nparam value string$", SECRET_MODULE, re.M)


ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": ("Storage Blob Data Owner", "storage"),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": ("Storage Queue Data Contributor", "storage"),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": ("Storage Table Data Contributor", "storage"),
    "4633458b-17de-408a-b874-0445c86b69e6": ("Key Vault Secrets User", "vault"),
    "3913510d-42f4-4e42-8a64-420c390055eb": ("Monitoring Metrics Publisher", "appInsights"),
}


def test_the_identity_gets_exactly_the_data_roles_it_needs() -> None:
    roles = re.search(r"^var roles = \{\n(.*?)^\}", BICEP, re.S | re.M)
    assert roles
    entries = re.findall(r"// ([^:\n]+):.*\n\s+(\w+): '([0-9a-f-]{36})'", roles.group(1))
    assert {guid: comment for comment, _, guid in entries} == {guid: name for guid, (name, _) in ROLES.items()}
    keys = {guid: key for _, key, guid in entries}
    assignments = re.findall(r"^resource \w+ 'Microsoft.Authorization/roleAssignments@.*?^\]?}", BICEP, re.S | re.M)
    for guid, (_, scope) in ROLES.items():
        assignment = next(block for block in assignments if f"roles.{keys[guid]}" in block)
        assert f"scope: {scope}\n" in assignment
        assert "principalId: functionApp.identity.principalId" in assignment
        assert "principalType: 'ServicePrincipal'" in assignment
    assert len(re.findall(r"'Microsoft.Authorization/roleAssignments@", BICEP)) == 3  # storage (x3 loop), vault, AI
    assert "b24988ac-6180-42a0-ab88-20f7382dd24c" not in BICEP  # Contributor
    assert "8e3af657-a8ff-443c-a75c-2fe8c4bcb635" not in BICEP  # Owner


def test_application_insights_uses_entra_auth() -> None:
    insights = _block("appInsights")
    assert "DisableLocalAuth: true" in insights
    assert "WorkspaceResourceId: logs.id" in insights


@pytest.mark.parametrize(
    "output",
    ["functionAppName", "defaultHostName", "consentRedirectUri", "storageAccountName", "keyVaultName", "principalId",
     "portalName", "portalUrl", "apiBaseUrl"],
)
def test_outputs(output: str) -> None:
    assert re.search(rf"^output {output} string = ", BICEP, re.M)


def test_parameters_file_names_only_existing_parameters() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = set(re.findall(r"^param (\w+) ", BICEP, re.M))
    assert set(parameters) <= declared
    assert "clientSecret" not in parameters  # secrets are passed on the command line or set in the vault


def test_every_checkov_skip_says_why() -> None:
    skips = re.findall(r"checkov:skip=.*", BICEP + SECRET_MODULE)
    assert skips
    for line in skips:
        check, _, reason = line.removeprefix("checkov:skip=").partition(":")
        assert re.fullmatch(r"CKV_AZURE_\d+", check), line
        assert len(reason.strip()) > 15, line

// Relationship intelligence on Azure: a Flex Consumption Function App (Python 3.11) with a system-assigned
// managed identity, its storage account (host storage + the app's tables), Application Insights, a Key Vault
// for the app registration's client secret, and the admin portal on Azure Static Web Apps (the API's CORS
// allows its origin). No shared keys: the app reaches storage, Key Vault and
// Application Insights with its identity and the least roles it needs.
targetScope = 'resourceGroup'

@description('Short name used to derive resource names (letters, digits, hyphens).')
@minLength(3)
@maxLength(20)
param name string = 'relint'

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Accepted audiences of our API access tokens, comma separated: "api://<client id>,<client id>".')
param apiAudiences string

@description('Client id of the multi-tenant app registration (admin consent, client credentials).')
param clientId string

@description('Client secret of the app registration, stored in Key Vault as ri-client-secret. Empty: set it later with `az keyvault secret set`; a deployment with an empty value leaves the secret in the vault as it is.')
@secure()
param clientSecret string = ''

@description('Expiry of the stored client secret (Unix time); rotate the secret before it.')
param clientSecretExpiresOn int = dateTimeToEpoch(dateTimeAdd(utcNow(), 'P180D'))

@description('Admin portal address the consent callback returns to; empty: the Static Web App deployed here.')
param portalUrl string = ''

@description('Region of the admin portal (Azure Static Web Apps runs in a few regions only).')
@allowed(['westeurope', 'eastus2', 'centralus', 'westus2', 'eastasia'])
param portalLocation string = 'westeurope'

@description('Plan of the admin portal\'s Static Web App (Standard adds custom domains with an SLA).')
@allowed(['Free', 'Standard'])
param portalSku string = 'Free'

@description('Further origins that may call the API from a browser, e.g. the portal on a custom domain ("https://portal.contoso.com", no trailing slash).')
param extraCorsOrigins array = []

@description('Name of the table that holds tenant state (its activities and insights tables are named after it).')
@minLength(3)
@maxLength(53)
param stateTableName string = 'TenantState'

@description('NCRONTAB schedule of the schedule_background_work timer (UTC): every 5 minutes, so that a mailbox round every 15 minutes is sent on time.')
param backgroundSchedule string = '0 */5 * * * *'

@description('Minutes between two rounds of a tenant\'s mailboxes (mail and calendar, Microsoft Graph delta).')
@minValue(5)
@maxValue(1440)
param mailboxRoundMinutes int = 15

@description('Minutes between two rounds of a tenant\'s CRM (Dataverse change tracking).')
@minValue(5)
@maxValue(1440)
param crmRoundMinutes int = 60

@description('Partitions of their own that hold each tenant\'s activities (a partition serves about 2,000 entities/s: a back-fill of millions of activities needs several). Chosen once for the storage account: a different count later does not find the rows.')
@minValue(1)
@maxValue(64)
param activityShards int = 8

@description('Flex Consumption scale limits.')
param maximumInstanceCount int = 40
@allowed([2048, 4096])
param instanceMemoryMB int = 2048

@description('Spread the plan\'s instances over availability zones (needs a region with zones; Flex then keeps at least two always-ready instances, which are billed).')
param zoneRedundant bool = false

@description('Storage redundancy: geo-redundant by default, tenant state must survive a regional outage.')
@allowed(['Standard_GZRS', 'Standard_RAGZRS', 'Standard_GRS', 'Standard_RAGRS'])
param storageSku string = 'Standard_GZRS'

@description('Allow Key Vault access from public networks (Flex apps without VNet integration need it).')
@allowed(['Enabled', 'Disabled'])
param keyVaultPublicNetworkAccess string = 'Enabled'

var suffix = uniqueString(resourceGroup().id, name)
// Globally unique names within the services' limits: storage 3-24 lowercase letters and digits; Key Vault 3-24
// letters, digits and single hyphens, starting with a letter. uniqueString() gives 13 characters.
var storageAccountName = toLower('st${take(replace(name, '-', ''), 9)}${suffix}')
var keyVaultName = 'kv-${take(replace(name, '-', ''), 7)}-${suffix}'
var functionAppName = 'func-${name}-${suffix}'
var deploymentContainerName = 'app-package'
var clientSecretName = 'ri-client-secret'
var portalOrigin = 'https://${portal.properties.defaultHostname}'

// Built-in role definitions (ids are the same in every tenant), granted to the app's identity and nothing more.
var roles = {
  // Storage Blob Data Owner: host storage (leases, timer schedule monitor) and the deployment package container
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Storage Queue Data Contributor: the work bus (queue triggers and the app's own messages) and the host's queues
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // Storage Table Data Contributor: the app's tables (TenantState, ...)
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // Key Vault Secrets User: resolves the RI_CLIENT_SECRET Key Vault reference
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  // Monitoring Metrics Publisher: sends telemetry to Application Insights with Entra auth (local auth is off)
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${name}-${suffix}'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 90
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${name}-${suffix}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:No VNet in this template: Flex instances reach storage over public endpoints, with Entra auth only (shared keys off)
  // checkov:skip=CKV_AZURE_59:Same reason: public endpoint, but anonymous and key-based access are disabled
  // checkov:skip=CKV_AZURE_43:The name is computed ('st' + 9 letters/digits + uniqueString, lowercase, 24 at most); checkov cannot evaluate it
  name: storageAccountName
  location: location
  kind: 'StorageV2'
  sku: { name: storageSku }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: stateTableName
}

// The activities and their ingestion log (the bulk of the writes), partitioned by tenant like the state; the app
// names it after the state table.
resource activitiesTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: '${stateTableName}Activities'
}

// What the insights derive from the data (per-record aggregates, insights, their indexes), partitioned by tenant
// like the state; the app names it after the state table.
resource insightsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: '${stateTableName}Insights'
}

// The work bus: one queue per kind of background work (the app's queue triggers listen to them) and its poison
// queue, where the host moves a message after maxDequeueCount failed attempts (host.json extensions.queues).
var workQueues = [
  'ri-consent-deadline'
  'ri-consent-recheck'
  'ri-exchange-purge'
  'ri-opt-out-purge'
  'ri-insights-update'
  'ri-crm-round'
  'ri-mailbox-plan'
  'ri-mailbox-round'
  'ri-consent-deadline-poison'
  'ri-consent-recheck-poison'
  'ri-exchange-purge-poison'
  'ri-opt-out-purge-poison'
  'ri-insights-update-poison'
  'ri-crm-round-poison'
  'ri-mailbox-plan-poison'
  'ri-mailbox-round-poison'
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queue in workQueues: {
  parent: queueService
  name: queue
}]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_189:Public access is a parameter; Flex apps without VNet integration resolve Key Vault references over it
  // checkov:skip=CKV_AZURE_109:Firewall default follows that parameter (Deny when public access is Disabled)
  name: keyVaultName
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: keyVaultPublicNetworkAccess
    networkAcls: {
      defaultAction: keyVaultPublicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
      bypass: 'AzureServices'
    }
  }
}

// Written only when a value is given, so that a later deployment does not overwrite a secret set by hand.
module clientSecretVersion 'modules/keyvault-secret.bicep' = if (!empty(clientSecret)) {
  name: 'client-secret'
  params: {
    vaultName: vault.name
    name: clientSecretName
    value: clientSecret
    expiresOn: clientSecretExpiresOn
  }
}

// The admin portal: static files only (portal/, packaged by `python -m devhost portal-dist`); it calls the
// API from the browser with the admin's or seller's Entra token, so the API's CORS names its origin.
resource portal 'Microsoft.Web/staticSites@2023-12-01' = {
  name: 'stapp-${name}-${suffix}'
  location: portalLocation
  sku: { name: portalSku, tier: portalSku }
  properties: {
    stagingEnvironmentPolicy: 'Disabled' // no preview environments: a pull request gets no public copy
    allowConfigFileUpdates: true // staticwebapp.config.json carries the portal's security headers
    publicNetworkAccess: 'Enabled'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy is the zoneRedundant parameter: it needs a region with zones and bills two always-ready instances
  name: 'plan-${name}-${suffix}'
  location: location
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
    zoneRedundant: zoneRedundant
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:The API is public by nature: the admin portal, browsers (consent redirect) and connectors call it
  // checkov:skip=CKV_AZURE_17:Callers authenticate with Entra bearer tokens; the consent callback is a browser redirect
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero; availability comes from the platform, not a fixed minimum
  // checkov:skip=CKV_AZURE_213:App Service health check does not apply to Flex Consumption; /api/health serves external probes
  name: functionAppName
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false // callers authenticate with Entra bearer tokens; the consent callback is a browser
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // The portal calls the API from the browser; bearer tokens, no cookies, so no credentials.
      cors: {
        allowedOrigins: concat([portalOrigin], extraCorsOrigins)
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  dependsOn: [deploymentContainer]
}

// App settings live in their own resource so they can use the app's own host name (the consent redirect URI).
// Flex Consumption takes the runtime from functionAppConfig: no FUNCTIONS_WORKER_RUNTIME here.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // This resource holds app settings only; checkov reads any sites/config as the site's web configuration.
  // checkov:skip=CKV_AZURE_66:Not a web config (app settings only)
  // checkov:skip=CKV_AZURE_63:Not a web config (app settings only); logs go to Application Insights
  // checkov:skip=CKV_AZURE_65:Not a web config (app settings only)
  // checkov:skip=CKV_AZURE_80:Not a web config, and no .NET: the runtime is Python 3.11
  // checkov:skip=CKV_AZURE_88:Not a web config; Flex Consumption deploys from a blob container, not Azure Files
  // checkov:skip=CKV_AZURE_222:Not a web config; see the site's own skip
  // checkov:skip=CKV_AZURE_13:The app validates Entra tokens itself (EasyAuth would block the anonymous consent callback)
  parent: functionApp
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__accountName: storage.name
    AzureWebJobsStorage__credential: 'managedidentity'
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
    RI_TABLES_ENDPOINT: storage.properties.primaryEndpoints.table
    RI_STATE_TABLE: stateTableName
    RI_AUTHORITY_HOST: 'https://login.microsoftonline.com'
    RI_API_AUDIENCES: apiAudiences
    RI_CLIENT_ID: clientId
    RI_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/${clientSecretName})'
    RI_CONSENT_REDIRECT_URI: 'https://${functionApp.properties.defaultHostName}/api/consent/callback'
    RI_PORTAL_URL: empty(portalUrl) ? '${portalOrigin}/' : portalUrl
    RI_BACKGROUND_SCHEDULE: backgroundSchedule
    RI_GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0'
    RI_MAILBOX_ROUND_MINUTES: string(mailboxRoundMinutes)
    RI_CRM_ROUND_MINUTES: string(crmRoundMinutes)
    RI_ACTIVITY_SHARDS: string(activityShards)
  }
  // Writing the settings restarts the app: do it once the identity has its roles and the secret exists, so that
  // host storage and the Key Vault reference resolve on that start.
  dependsOn: [storageRoles, vaultRole, telemetryRole, clientSecretVersion]
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
    name: guid(storage.id, functionApp.id, role)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: functionApp.identity.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource vaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, functionApp.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionApp.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output functionAppName string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output consentRedirectUri string = 'https://${functionApp.properties.defaultHostName}/api/consent/callback'
output storageAccountName string = storage.name
output keyVaultName string = vault.name
output principalId string = functionApp.identity.principalId
output portalName string = portal.name
output portalUrl string = '${portalOrigin}/'
output apiBaseUrl string = 'https://${functionApp.properties.defaultHostName}/api'

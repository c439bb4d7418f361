// One secret in an existing Key Vault, with an expiry and a content type. main.bicep calls this module only when
// it is given a value, so that a deployment without one leaves a secret that was set by hand as it is.
// (A module rather than a conditional resource: checkov then checks the secret's properties.)

@description('Name of the existing Key Vault.')
param vaultName string

@description('Name of the secret.')
param name string

@description('Value of the secret.')
@secure()
param value string

@description('Expiry (Unix time).')
param expiresOn int

param contentType string = 'text/plain'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  properties: {
    value: value
    contentType: contentType
    attributes: {
      enabled: true
      exp: expiresOn
    }
  }
}

# Key Vault holds every runtime secret of the platform. The AKS secrets-store CSI driver syncs them
# into the Kubernetes secret `globolatte-secrets` that the Helm values read (deploy/helm).
resource "azurerm_key_vault" "main" {
  name                          = "kv-${local.compact}"
  location                      = azurerm_resource_group.main.location
  resource_group_name           = azurerm_resource_group.main.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "premium"
  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  public_network_access_enabled = false

  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
  }

  tags = local.tags
}

resource "azurerm_private_endpoint" "key_vault" {
  name                = "pe-${local.name}-kv"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.private_endpoints.id
  tags                = local.tags

  private_service_connection {
    name                           = "key-vault"
    private_connection_resource_id = azurerm_key_vault.main.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "vault"
    private_dns_zone_ids = [azurerm_private_dns_zone.zones["vault"].id]
  }
}

# Whoever runs Terraform writes the generated secrets and the storage encryption key; it gets the
# two officer roles on this vault only.
resource "azurerm_role_assignment" "terraform_kv_secrets_officer" {
  scope                = azurerm_key_vault.main.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

resource "azurerm_role_assignment" "terraform_kv_crypto_officer" {
  scope                = azurerm_key_vault.main.id
  role_definition_name = "Key Vault Crypto Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

# Generated secrets rotate: a new value is generated (and the old one expires) every
# var.secret_rotation_days days, on the next apply after that.
resource "time_rotating" "secrets" {
  rotation_days = var.secret_rotation_days
}

# The key of the email hash (GLOBOLATTE_HASH_KEY) is generated here and never leaves Key Vault except
# into the cluster's secret. It must NOT rotate (every stored hash depends on it), so its expiry is a
# yearly review date rather than a rotation.
resource "time_static" "hash_key" {}

resource "random_password" "hash_key" {
  length  = 48
  special = false
}

resource "azurerm_key_vault_secret" "hash_key" {
  name            = "globolatte-hash-key"
  value           = random_password.hash_key.result
  key_vault_id    = azurerm_key_vault.main.id
  content_type    = "text/plain"
  expiration_date = timeadd(time_static.hash_key.rfc3339, "8760h")
  tags            = local.tags

  depends_on = [azurerm_role_assignment.terraform_kv_secrets_officer, azurerm_private_endpoint.key_vault]

  lifecycle {
    ignore_changes = [expiration_date]
  }
}

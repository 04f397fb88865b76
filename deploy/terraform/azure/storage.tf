# Data storage account: the landing container (business units upload here) and the Dagster
# compute-log container. Entra ID only (no shared keys, no SAS), private endpoint only.
resource "azurerm_storage_account" "data" {
  name                     = "st${local.compact}data"
  resource_group_name      = azurerm_resource_group.main.name
  location                 = azurerm_resource_group.main.location
  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = "GZRS"

  public_network_access_enabled     = false
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  local_user_enabled                = false
  sftp_enabled                      = false
  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  infrastructure_encryption_enabled = true
  cross_tenant_replication_enabled  = false

  identity {
    type = "SystemAssigned"
  }

  blob_properties {
    versioning_enabled  = true
    change_feed_enabled = true

    delete_retention_policy {
      days = var.blob_soft_delete_days
    }

    container_delete_retention_policy {
      days = var.blob_soft_delete_days
    }
  }

  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices"]
  }

  sas_policy {
    expiration_period = "01.00:00:00"
    expiration_action = "Block"
  }

  tags = local.tags
}

resource "azurerm_storage_container" "landing" {
  name                  = var.landing_container_name
  storage_account_id    = azurerm_storage_account.data.id
  container_access_type = "private"
}

# Trained models passed between assets (the azure model_io_manager, BlobPickleIOManager).
resource "azurerm_storage_container" "artifacts" {
  name                  = "dagster-artifacts"
  storage_account_id    = azurerm_storage_account.data.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "compute_logs" {
  name                  = var.compute_log_container_name
  storage_account_id    = azurerm_storage_account.data.id
  container_access_type = "private"
}

resource "azurerm_private_endpoint" "data_blob" {
  name                = "pe-${local.name}-data-blob"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.private_endpoints.id
  tags                = local.tags

  private_service_connection {
    name                           = "data-blob"
    private_connection_resource_id = azurerm_storage_account.data.id
    subresource_names              = ["blob"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "blob"
    private_dns_zone_ids = [azurerm_private_dns_zone.zones["blob"].id]
  }
}

# Azure ML workspace storage: artifacts, models and job outputs. Kept apart from the landing data so
# that the workspace's broad rights on its own storage never reach the landing zone.
resource "azurerm_storage_account" "ml" {
  name                     = "st${local.compact}ml"
  resource_group_name      = azurerm_resource_group.main.name
  location                 = azurerm_resource_group.main.location
  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = "GZRS"

  public_network_access_enabled     = false
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  local_user_enabled                = false
  sftp_enabled                      = false
  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  infrastructure_encryption_enabled = true
  cross_tenant_replication_enabled  = false

  identity {
    type = "SystemAssigned"
  }

  blob_properties {
    versioning_enabled = true

    delete_retention_policy {
      days = var.blob_soft_delete_days
    }

    container_delete_retention_policy {
      days = var.blob_soft_delete_days
    }
  }

  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices"]
  }

  sas_policy {
    expiration_period = "01.00:00:00"
    expiration_action = "Block"
  }

  tags = local.tags
}

resource "azurerm_private_endpoint" "ml_storage" {
  for_each            = toset(["blob", "file"])
  name                = "pe-${local.name}-ml-${each.key}"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.private_endpoints.id
  tags                = local.tags

  private_service_connection {
    name                           = "ml-${each.key}"
    private_connection_resource_id = azurerm_storage_account.ml.id
    subresource_names              = [each.key]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = each.key
    private_dns_zone_ids = [azurerm_private_dns_zone.zones[each.key].id]
  }
}

# Customer-managed keys: both storage accounts are encrypted with an HSM-backed key of our Key Vault,
# rotated automatically every year (a versionless key id, so storage follows the new version).
resource "time_static" "storage_cmk" {}

resource "azurerm_key_vault_key" "storage" {
  name            = "storage-cmk"
  key_vault_id    = azurerm_key_vault.main.id
  key_type        = "RSA-HSM"
  key_size        = 3072
  key_opts        = ["wrapKey", "unwrapKey"]
  expiration_date = timeadd(time_static.storage_cmk.rfc3339, "9504h")
  tags            = local.tags

  rotation_policy {
    expire_after         = "P396D"
    notify_before_expiry = "P30D"

    automatic {
      time_after_creation = "P365D"
    }
  }

  lifecycle {
    ignore_changes = [expiration_date]
  }

  depends_on = [azurerm_role_assignment.terraform_kv_crypto_officer, azurerm_private_endpoint.key_vault]
}

resource "azurerm_role_assignment" "storage_cmk" {
  for_each = {
    data = azurerm_storage_account.data.identity[0].principal_id
    ml   = azurerm_storage_account.ml.identity[0].principal_id
  }
  scope                = azurerm_key_vault.main.id
  role_definition_name = "Key Vault Crypto Service Encryption User"
  principal_id         = each.value
}

resource "azurerm_storage_account_customer_managed_key" "data" {
  storage_account_id = azurerm_storage_account.data.id
  key_vault_id       = azurerm_key_vault.main.id
  key_name           = azurerm_key_vault_key.storage.name

  depends_on = [azurerm_role_assignment.storage_cmk]
}

resource "azurerm_storage_account_customer_managed_key" "ml" {
  storage_account_id = azurerm_storage_account.ml.id
  key_vault_id       = azurerm_key_vault.main.id
  key_name           = azurerm_key_vault_key.storage.name

  depends_on = [azurerm_role_assignment.storage_cmk]
}

resource "azurerm_log_analytics_workspace" "main" {
  name                = "log-${local.name}"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

# Application Insights of the Azure ML workspace (endpoint request logs and metrics).
resource "azurerm_application_insights" "main" {
  name                          = "appi-${local.name}"
  location                      = azurerm_resource_group.main.location
  resource_group_name           = azurerm_resource_group.main.name
  workspace_id                  = azurerm_log_analytics_workspace.main.id
  application_type              = "web"
  local_authentication_disabled = true
  tags                          = local.tags
}

# Platform logs of the data-holding services go to Log Analytics.
locals {
  diagnostic_targets = {
    key_vault = azurerm_key_vault.main.id
    postgres  = azurerm_postgresql_flexible_server.dagster.id
    ml        = azurerm_machine_learning_workspace.main.id
    acr       = azurerm_container_registry.main.id
  }
}

resource "azurerm_monitor_diagnostic_setting" "main" {
  for_each                   = local.diagnostic_targets
  name                       = "diag-${each.key}"
  target_resource_id         = each.value
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}

# Blob reads, writes and deletes (StorageRead/StorageWrite/StorageDelete) of both accounts.
resource "azurerm_monitor_diagnostic_setting" "blob" {
  for_each = {
    data = azurerm_storage_account.data.id
    ml   = azurerm_storage_account.ml.id
  }
  name                       = "diag-${each.key}-blob"
  target_resource_id         = "${each.value}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "Transaction"
  }
}

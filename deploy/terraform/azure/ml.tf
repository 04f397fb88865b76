# Azure ML workspace: model registry, training compute and the managed online endpoint
# (deploy/azureml). Private endpoint only, managed virtual network with approved outbound only.
resource "azurerm_machine_learning_workspace" "main" {
  name                          = "mlw-${local.name}"
  location                      = azurerm_resource_group.main.location
  resource_group_name           = azurerm_resource_group.main.name
  application_insights_id       = azurerm_application_insights.main.id
  key_vault_id                  = azurerm_key_vault.main.id
  storage_account_id            = azurerm_storage_account.ml.id
  container_registry_id         = azurerm_container_registry.main.id
  public_network_access_enabled = false
  high_business_impact          = true
  image_build_compute_name      = "cpu-cluster"
  sku_name                      = "Basic"

  identity {
    type = "SystemAssigned"
  }

  managed_network {
    isolation_mode = "AllowOnlyApprovedOutbound"
  }

  tags = local.tags
}

resource "azurerm_private_endpoint" "ml_workspace" {
  name                = "pe-${local.name}-mlw"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.private_endpoints.id
  tags                = local.tags

  private_service_connection {
    name                           = "ml-workspace"
    private_connection_resource_id = azurerm_machine_learning_workspace.main.id
    subresource_names              = ["amlworkspace"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name = "amlworkspace"
    private_dns_zone_ids = [
      azurerm_private_dns_zone.zones["ml_api"].id,
      azurerm_private_dns_zone.zones["ml_notebooks"].id,
      azurerm_private_dns_zone.zones["ml_inference"].id,
    ]
  }
}

# CPU training cluster for large training jobs (PipesAzureMLClient). Scales to zero when idle.
resource "azurerm_machine_learning_compute_cluster" "cpu" {
  name                          = "cpu-cluster"
  location                      = azurerm_resource_group.main.location
  machine_learning_workspace_id = azurerm_machine_learning_workspace.main.id
  vm_priority                   = "Dedicated"
  vm_size                       = var.ml_cluster_vm_size
  local_auth_enabled            = false
  node_public_ip_enabled        = false

  scale_settings {
    min_node_count                       = 0
    max_node_count                       = var.ml_cluster_max_nodes
    scale_down_nodes_after_idle_duration = "PT15M"
  }

  identity {
    type = "SystemAssigned"
  }

  tags = local.tags
}

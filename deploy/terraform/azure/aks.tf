# AKS runs Dagster (webserver, daemon, user code and one pod per run through K8sRunLauncher).
# Private API server, Entra ID RBAC only, workload identity for pods, Key Vault CSI driver.
resource "azurerm_kubernetes_cluster" "main" {
  name                      = "aks-${local.name}"
  location                  = azurerm_resource_group.main.location
  resource_group_name       = azurerm_resource_group.main.name
  dns_prefix                = "aks-${local.name}"
  kubernetes_version        = var.kubernetes_version
  sku_tier                  = "Standard"
  automatic_upgrade_channel = "patch"
  node_os_upgrade_channel   = "NodeImage"

  private_cluster_enabled             = true
  private_cluster_public_fqdn_enabled = false
  local_account_disabled              = true
  role_based_access_control_enabled   = true
  oidc_issuer_enabled                 = true
  workload_identity_enabled           = true
  azure_policy_enabled                = true
  image_cleaner_enabled               = true
  image_cleaner_interval_hours        = 48
  disk_encryption_set_id              = azurerm_disk_encryption_set.aks.id

  default_node_pool {
    name                         = "system"
    vm_size                      = var.aks_system_vm_size
    vnet_subnet_id               = azurerm_subnet.aks.id
    auto_scaling_enabled         = true
    min_count                    = 2
    max_count                    = 3
    max_pods                     = 110
    os_disk_type                 = "Ephemeral"
    host_encryption_enabled      = true
    only_critical_addons_enabled = true
    zones                        = ["1", "2", "3"]
    temporary_name_for_rotation  = "systemtmp"

    upgrade_settings {
      max_surge = "33%"
    }
  }

  identity {
    type = "SystemAssigned"
  }

  azure_active_directory_role_based_access_control {
    azure_rbac_enabled     = true
    admin_group_object_ids = var.aks_admin_group_object_ids
  }

  network_profile {
    network_plugin      = "azure"
    network_plugin_mode = "overlay"
    network_policy      = "cilium"
    network_data_plane  = "cilium"
    load_balancer_sku   = "standard"
    outbound_type       = "loadBalancer"
  }

  key_vault_secrets_provider {
    secret_rotation_enabled  = true
    secret_rotation_interval = "5m"
  }

  oms_agent {
    log_analytics_workspace_id      = azurerm_log_analytics_workspace.main.id
    msi_auth_for_monitoring_enabled = true
  }

  microsoft_defender {
    log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id
  }

  tags = local.tags
}

# Run pods land on their own autoscaled pool, so a heavy training run never starves the daemon.
resource "azurerm_kubernetes_cluster_node_pool" "runs" {
  name                    = "runs"
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.main.id
  vm_size                 = var.aks_user_vm_size
  vnet_subnet_id          = azurerm_subnet.aks.id
  mode                    = "User"
  auto_scaling_enabled    = true
  min_count               = 1
  max_count               = var.aks_user_max_count
  max_pods                = 110
  os_disk_type            = "Ephemeral"
  host_encryption_enabled = true
  zones                   = ["1", "2", "3"]
  node_labels             = { "globolatte.io/pool" = "runs" }
  tags                    = local.tags

  upgrade_settings {
    max_surge = "33%"
  }
}

# Nodes pull the user-code image from the private registry.
resource "azurerm_role_assignment" "aks_acr_pull" {
  scope                            = azurerm_container_registry.main.id
  role_definition_name             = "AcrPull"
  principal_id                     = azurerm_kubernetes_cluster.main.kubelet_identity[0].object_id
  skip_service_principal_aad_check = true
}

# The cluster identity manages load balancers and NICs in its own subnet only.
resource "azurerm_role_assignment" "aks_subnet_network" {
  scope                = azurerm_subnet.aks.id
  role_definition_name = "Network Contributor"
  principal_id         = azurerm_kubernetes_cluster.main.identity[0].principal_id
}

# Node disks are encrypted with a customer-managed key (and at host, see host_encryption_enabled).
resource "azurerm_key_vault_key" "aks_disks" {
  name            = "aks-disk-cmk"
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

resource "azurerm_disk_encryption_set" "aks" {
  name                      = "des-${local.name}-aks"
  location                  = azurerm_resource_group.main.location
  resource_group_name       = azurerm_resource_group.main.name
  key_vault_key_id          = azurerm_key_vault_key.aks_disks.versionless_id
  auto_key_rotation_enabled = true
  tags                      = local.tags

  identity {
    type = "SystemAssigned"
  }
}

resource "azurerm_role_assignment" "des_kv_crypto" {
  scope                = azurerm_key_vault.main.id
  role_definition_name = "Key Vault Crypto Service Encryption User"
  principal_id         = azurerm_disk_encryption_set.aks.identity[0].principal_id
}

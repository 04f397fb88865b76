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

# --- training: ml/preference_model as a command job (GLOBOLATTE_TRAINING=azureml, docs/training.md) ------
# CPU training cluster of the tournament's jobs (PipesAzureMLClient); it also builds the workspace's
# images. Scales to zero when idle. No public IP and no subnet of ours: with managed network isolation
# (above) Azure ML places the nodes in the workspace's managed, private virtual network, whose outbound
# traffic is limited to the approved rules and private endpoints (the workspace's storage, registry and
# key vault); a customer subnet would need the managed isolation turned off, which cannot be undone.
resource "azurerm_machine_learning_compute_cluster" "cpu" {
  name                          = "cpu-cluster"
  location                      = azurerm_resource_group.main.location
  machine_learning_workspace_id = azurerm_machine_learning_workspace.main.id
  vm_priority                   = "Dedicated"
  vm_size                       = var.ml_cluster_vm_size
  local_auth_enabled            = false
  node_public_ip_enabled        = false
  ssh_public_access_enabled     = false

  scale_settings {
    min_node_count                       = 0
    max_node_count                       = var.ml_cluster_max_nodes
    scale_down_nodes_after_idle_duration = "PT15M"
  }

  # A user-assigned identity, so that its roles are declared here and nothing else is granted to it.
  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.training.id]
  }

  tags = local.tags
}

resource "azurerm_user_assigned_identity" "training" {
  name                = "id-${local.name}-training"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  tags                = local.tags
}

# The jobs read their training folder, write the model and report through Pipes, all in the training
# container: Storage Blob Data Contributor there only (not on the account, not on the landing data).
resource "azurerm_role_assignment" "training_data" {
  scope                = azurerm_storage_container.training.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.training.principal_id
}

# The nodes pull the job's environment image from the workspace's registry (admin user disabled).
resource "azurerm_role_assignment" "training_acr_pull" {
  scope                = azurerm_container_registry.main.id
  role_definition_name = "AcrPull"
  principal_id         = azurerm_user_assigned_identity.training.principal_id
}

# Training folders (inputs written by the asset, outputs by the job) and Pipes messages, in the
# workspace's own storage account, which the managed network already reaches through private endpoints.
resource "azurerm_storage_container" "training" {
  name                  = "training"
  storage_account_id    = azurerm_storage_account.ml.id
  container_access_type = "private"
}

# The datastore the jobs mount (`azureml://datastores/globolatte_training/paths/runs/<job>/...`).
# Credential-less: jobs read and write as the cluster's identity, the studio as the workspace's; no key.
resource "azurerm_machine_learning_datastore_blobstorage" "training" {
  name                       = "globolatte_training"
  workspace_id               = azurerm_machine_learning_workspace.main.id
  storage_container_id       = azurerm_storage_container.training.id
  service_data_auth_identity = "WorkspaceSystemAssignedIdentity"
  description                = "Training folders of ml/preference_model: runs/<job>/inputs and outputs"
  tags                       = local.tags
}

# A job's folder is kept for replay and audit, then expires (the registered model keeps its lineage).
resource "azurerm_storage_management_policy" "ml" {
  storage_account_id = azurerm_storage_account.ml.id

  rule {
    name    = "training-folders-expire"
    enabled = true

    filters {
      prefix_match = ["${azurerm_storage_container.training.name}/"]
      blob_types   = ["blockBlob"]
    }

    actions {
      base_blob {
        delete_after_days_since_modification_greater_than = var.training_retention_days
      }
      version {
        delete_after_days_since_creation = var.training_retention_days
      }
    }
  }
}

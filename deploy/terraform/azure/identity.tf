# Managed identities for the Dagster pods, bound to Kubernetes service accounts through AKS workload
# identity (federated credentials). Each gets the narrowest role on the narrowest scope it needs.

# --- user code and run pods -----------------------------------------------------------------------
resource "azurerm_user_assigned_identity" "dagster_user_code" {
  name                = "id-${local.name}-user-code"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  tags                = local.tags
}

resource "azurerm_federated_identity_credential" "dagster_user_code" {
  name                = "aks-${var.dagster_namespace}-${var.dagster_user_code_service_account}"
  resource_group_name = azurerm_resource_group.main.name
  parent_id           = azurerm_user_assigned_identity.dagster_user_code.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = azurerm_kubernetes_cluster.main.oidc_issuer_url
  subject             = "system:serviceaccount:${var.dagster_namespace}:${var.dagster_user_code_service_account}"
}

# The sensor and the ingestion runs read landing files; they never write or delete them.
resource "azurerm_role_assignment" "user_code_landing_reader" {
  scope                = azurerm_storage_container.landing.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.dagster_user_code.principal_id
}

# Runs read and write the model artefacts passed between assets, in their own container only.
resource "azurerm_role_assignment" "user_code_artifacts" {
  scope                = azurerm_storage_container.artifacts.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.dagster_user_code.principal_id
}

# Run pods write their stdout/stderr to the compute-log container (AzureBlobComputeLogManager).
resource "azurerm_role_assignment" "user_code_compute_logs" {
  scope                = azurerm_storage_container.compute_logs.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.dagster_user_code.principal_id
}

# Runs register models and deploy the scoring endpoint: Contributor on the ML workspace only, not on
# the resource group or subscription.
resource "azurerm_role_assignment" "user_code_ml_contributor" {
  scope                = azurerm_machine_learning_workspace.main.id
  role_definition_name = "Contributor"
  principal_id         = azurerm_user_assigned_identity.dagster_user_code.principal_id
}

# Model upload goes to the workspace's own storage account (identity-based datastore access).
resource "azurerm_role_assignment" "user_code_ml_storage" {
  scope                = azurerm_storage_account.ml.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.dagster_user_code.principal_id
}

# --- webserver and daemon -------------------------------------------------------------------------
resource "azurerm_user_assigned_identity" "dagster_system" {
  name                = "id-${local.name}-system"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  tags                = local.tags
}

resource "azurerm_federated_identity_credential" "dagster_system" {
  name                = "aks-${var.dagster_namespace}-${var.dagster_system_service_account}"
  resource_group_name = azurerm_resource_group.main.name
  parent_id           = azurerm_user_assigned_identity.dagster_system.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = azurerm_kubernetes_cluster.main.oidc_issuer_url
  subject             = "system:serviceaccount:${var.dagster_namespace}:${var.dagster_system_service_account}"
}

# The webserver only shows compute logs.
resource "azurerm_role_assignment" "system_compute_logs_reader" {
  scope                = azurerm_storage_container.compute_logs.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.dagster_system.principal_id
}

# --- Key Vault secret sync ------------------------------------------------------------------------
# External Secrets Operator (deploy/helm/external-secrets.yaml) reads the vault with this identity,
# through its own service account, and writes the Kubernetes secret `globolatte-secrets`.
# Read-only, on the secrets of this vault only.
resource "azurerm_user_assigned_identity" "secret_sync" {
  name                = "id-${local.name}-secret-sync"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  tags                = local.tags
}

resource "azurerm_federated_identity_credential" "secret_sync" {
  name                = "aks-${var.dagster_namespace}-secret-sync"
  resource_group_name = azurerm_resource_group.main.name
  parent_id           = azurerm_user_assigned_identity.secret_sync.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = azurerm_kubernetes_cluster.main.oidc_issuer_url
  subject             = "system:serviceaccount:${var.dagster_namespace}:globolatte-secret-sync"
}

resource "azurerm_role_assignment" "secret_sync_kv_reader" {
  scope                = azurerm_key_vault.main.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.secret_sync.principal_id
}

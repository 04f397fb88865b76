# Values for deploy/helm/values.yaml and the environment of the `azure` mode (deploy/README.md).

output "resource_group_name" {
  description = "AZURE_RESOURCE_GROUP"
  value       = azurerm_resource_group.main.name
}

output "subscription_id" {
  description = "AZURE_SUBSCRIPTION_ID"
  value       = var.subscription_id
}

output "storage_account_url" {
  description = "AZURE_STORAGE_ACCOUNT_URL"
  value       = azurerm_storage_account.data.primary_blob_endpoint
}

output "storage_account_name" {
  description = "Storage account of the landing and compute-log containers (computeLogManager.storageAccount)."
  value       = azurerm_storage_account.data.name
}

output "landing_container" {
  description = "AZURE_STORAGE_CONTAINER"
  value       = azurerm_storage_container.landing.name
}

output "compute_log_container" {
  description = "computeLogManager.container in the Helm values."
  value       = azurerm_storage_container.compute_logs.name
}

output "acr_login_server" {
  description = "Registry of the user-code image."
  value       = azurerm_container_registry.main.login_server
}

output "aks_name" {
  description = "AKS cluster name (az aks get-credentials)."
  value       = azurerm_kubernetes_cluster.main.name
}

output "key_vault_name" {
  description = "Key Vault holding the runtime secrets."
  value       = azurerm_key_vault.main.name
}

output "key_vault_uri" {
  description = "Key Vault URI for the External Secrets store."
  value       = azurerm_key_vault.main.vault_uri
}

output "postgres_host" {
  description = "PostgreSQL host for Dagster's storage (resolves to the private endpoint inside the VNet)."
  value       = azurerm_postgresql_flexible_server.dagster.fqdn
}

output "postgres_admin_login" {
  description = "PostgreSQL login used by Dagster; its password is the Key Vault secret dagster-postgresql-password."
  value       = azurerm_postgresql_flexible_server.dagster.administrator_login
}

output "ml_workspace_name" {
  description = "AZUREML_WORKSPACE_NAME"
  value       = azurerm_machine_learning_workspace.main.name
}

output "ml_compute_cluster" {
  description = "AZUREML_TRAINING_COMPUTE: the Azure ML CPU cluster of the training jobs."
  value       = azurerm_machine_learning_compute_cluster.cpu.name
}

output "training_identity_client_id" {
  description = "AZUREML_TRAINING_IDENTITY_CLIENT_ID: the training cluster's identity, used by the jobs."
  value       = azurerm_user_assigned_identity.training.client_id
}

output "training_datastore" {
  description = "AZUREML_TRAINING_DATASTORE: the datastore of the training folders."
  value       = azurerm_machine_learning_datastore_blobstorage.training.name
}

output "user_code_identity_client_id" {
  description = "Client id for the azure.workload.identity/client-id annotation of the user-code service account."
  value       = azurerm_user_assigned_identity.dagster_user_code.client_id
}

output "system_identity_client_id" {
  description = "Client id for the webserver and daemon service account."
  value       = azurerm_user_assigned_identity.dagster_system.client_id
}

output "secret_sync_identity_client_id" {
  description = "Client id for the External Secrets service account."
  value       = azurerm_user_assigned_identity.secret_sync.client_id
}

output "tenant_id" {
  description = "Entra tenant (Snowflake storage integration, External Secrets store)."
  value       = data.azurerm_client_config.current.tenant_id
}

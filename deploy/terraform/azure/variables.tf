variable "subscription_id" {
  description = "Azure subscription that hosts the platform."
  type        = string
}

variable "location" {
  description = "Azure region for every resource."
  type        = string
  default     = "eastus2"
}

variable "prefix" {
  description = "Short lowercase prefix for resource names (letters and digits, at most 10)."
  type        = string
  default     = "globolatte"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.prefix))
    error_message = "prefix must be 2-10 lowercase letters or digits, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name, used in names and tags (for example prod)."
  type        = string
  default     = "prod"
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

variable "vnet_address_space" {
  description = "Address space of the platform virtual network."
  type        = string
  default     = "10.40.0.0/16"
}

variable "aks_subnet_prefix" {
  description = "Subnet of the AKS nodes (Azure CNI overlay: pods get addresses outside the VNet)."
  type        = string
  default     = "10.40.0.0/20"
}

variable "private_endpoint_subnet_prefix" {
  description = "Subnet that holds the private endpoints of storage, Key Vault, ACR, PostgreSQL and Azure ML."
  type        = string
  default     = "10.40.16.0/24"
}

variable "kubernetes_version" {
  description = "AKS Kubernetes version (null: the region's default)."
  type        = string
  default     = null
}

variable "aks_system_vm_size" {
  description = "VM size of the AKS system node pool."
  type        = string
  default     = "Standard_D4ds_v5"
}

variable "aks_user_vm_size" {
  description = "VM size of the AKS user node pool that runs Dagster run pods."
  type        = string
  default     = "Standard_D8ds_v5"
}

variable "aks_user_max_count" {
  description = "Upper bound of the run node pool autoscaler."
  type        = number
  default     = 6
}

variable "aks_admin_group_object_ids" {
  description = "Entra ID groups that get cluster-admin on AKS (local accounts are disabled)."
  type        = list(string)
  default     = []
}

variable "dagster_namespace" {
  description = "Kubernetes namespace of the Dagster Helm release."
  type        = string
  default     = "dagster"
}

variable "dagster_user_code_service_account" {
  description = "Kubernetes service account of the user-code deployment and its run pods."
  type        = string
  default     = "globolatte-user-code"
}

variable "dagster_system_service_account" {
  description = "Kubernetes service account of the Dagster webserver and daemon."
  type        = string
  default     = "dagster"
}

variable "landing_container_name" {
  description = "Blob container the business units upload their daily files to."
  type        = string
  default     = "landing"
}

variable "compute_log_container_name" {
  description = "Blob container for Dagster compute logs."
  type        = string
  default     = "dagster-compute-logs"
}

variable "blob_soft_delete_days" {
  description = "Days a deleted blob or container can be restored."
  type        = number
  default     = 30
}

variable "postgres_sku" {
  description = "SKU of the PostgreSQL flexible server holding Dagster's run, event and schedule storage."
  type        = string
  default     = "GP_Standard_D2ds_v5"
}

variable "postgres_version" {
  description = "PostgreSQL major version."
  type        = string
  default     = "16"
}

variable "postgres_storage_mb" {
  description = "PostgreSQL storage size in MB."
  type        = number
  default     = 65536
}

variable "postgres_admin_login" {
  description = "Administrator login name of PostgreSQL (its password is generated into Key Vault)."
  type        = string
  default     = "dagsteradmin"
}

variable "secret_rotation_days" {
  description = "Days after which the generated PostgreSQL password is rotated (and its Key Vault secret expires)."
  type        = number
  default     = 90
}

variable "ml_cluster_vm_size" {
  description = "VM size of the Azure ML CPU training cluster."
  type        = string
  default     = "Standard_DS3_v2"
}

variable "ml_cluster_max_nodes" {
  description = "Maximum nodes of the Azure ML CPU training cluster (it scales to zero)."
  type        = number
  default     = 4
}

variable "training_retention_days" {
  description = "Days a training job's folder (inputs, outputs, Pipes messages) is kept in the training container."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Log Analytics retention in days."
  type        = number
  default     = 90
}

variable "acr_replica_location" {
  description = "Second region the container registry replicates to."
  type        = string
  default     = "centralus"
}

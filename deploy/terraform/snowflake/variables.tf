variable "database_name" {
  description = "Database of the platform (SNOWFLAKE_DATABASE)."
  type        = string
  default     = "GLOBOLATTE"
}

variable "warehouse_name" {
  description = "Virtual warehouse of the platform (SNOWFLAKE_WAREHOUSE)."
  type        = string
  default     = "GLOBOLATTE_WH"
}

variable "warehouse_size" {
  description = "Warehouse size; feature SQL runs here, so scale it before scaling the pods."
  type        = string
  default     = "XSMALL"
}

variable "warehouse_auto_suspend_seconds" {
  description = "Seconds of idleness after which the warehouse suspends."
  type        = number
  default     = 60
}

variable "service_user_name" {
  description = "Service user of the Dagster pods (SNOWFLAKE_USER)."
  type        = string
  default     = "GLOBOLATTE_SVC"
}

variable "service_user_rsa_public_key" {
  description = <<-EOT
    Public half of the service user's key pair, the base64 body of the PEM without header and footer.
    The private half goes to Key Vault as `snowflake-private-key` (SNOWFLAKE_PRIVATE_KEY), never here.
  EOT
  type        = string

  validation {
    condition     = !can(regex("PRIVATE KEY", var.service_user_rsa_public_key))
    error_message = "This must be the PUBLIC key; the private key belongs in Key Vault."
  }
}

variable "azure_tenant_id" {
  description = "Entra tenant of the landing storage account (terraform output tenant_id of deploy/terraform/azure)."
  type        = string
}

variable "landing_storage_account_name" {
  description = "Landing storage account name (terraform output storage_account_name of deploy/terraform/azure)."
  type        = string
}

variable "landing_container_name" {
  description = "Landing container name."
  type        = string
  default     = "landing"
}

output "database" {
  description = "SNOWFLAKE_DATABASE"
  value       = snowflake_database.globolatte.name
}

output "warehouse" {
  description = "SNOWFLAKE_WAREHOUSE"
  value       = snowflake_warehouse.globolatte.name
}

output "platform_role" {
  description = "SNOWFLAKE_ROLE"
  value       = snowflake_account_role.transformer.name
}

output "service_user" {
  description = "SNOWFLAKE_USER"
  value       = snowflake_service_user.platform.name
}

output "landing_integration_consent_url" {
  description = "Open once as an Entra administrator to consent to Snowflake's application."
  value       = snowflake_storage_integration.landing.azure_consent_url
}

output "landing_integration_app_name" {
  description = "Snowflake's Entra application: give it Storage Blob Data Reader on the landing container."
  value       = snowflake_storage_integration.landing.azure_multi_tenant_app_name
}

# Dagster's run, event-log and schedule storage. Private endpoint only; the administrator password is
# generated, rotated and kept in Key Vault (never in a .tf file or a tfvars file).
resource "random_password" "postgres_admin" {
  length           = 40
  special          = true
  override_special = "-_.~"
  min_upper        = 2
  min_lower        = 2
  min_numeric      = 2

  keepers = {
    rotation = time_rotating.secrets.id
  }
}

resource "azurerm_postgresql_flexible_server" "dagster" {
  name                          = "psql-${local.name}-${random_string.suffix.result}"
  resource_group_name           = azurerm_resource_group.main.name
  location                      = azurerm_resource_group.main.location
  version                       = var.postgres_version
  sku_name                      = var.postgres_sku
  storage_mb                    = var.postgres_storage_mb
  auto_grow_enabled             = true
  backup_retention_days         = 35
  geo_redundant_backup_enabled  = true
  public_network_access_enabled = false
  zone                          = "1"

  administrator_login    = var.postgres_admin_login
  administrator_password = random_password.postgres_admin.result

  authentication {
    active_directory_auth_enabled = true
    password_auth_enabled         = true
    tenant_id                     = data.azurerm_client_config.current.tenant_id
  }

  high_availability {
    mode                      = "ZoneRedundant"
    standby_availability_zone = "2"
  }

  tags = local.tags
}

resource "azurerm_postgresql_flexible_server_database" "dagster" {
  name      = "dagster"
  server_id = azurerm_postgresql_flexible_server.dagster.id
  charset   = "UTF8"
  collation = "en_US.utf8"
}

resource "azurerm_postgresql_flexible_server_configuration" "require_tls" {
  name      = "require_secure_transport"
  server_id = azurerm_postgresql_flexible_server.dagster.id
  value     = "on"
}

resource "azurerm_postgresql_flexible_server_configuration" "log_connections" {
  name      = "log_connections"
  server_id = azurerm_postgresql_flexible_server.dagster.id
  value     = "on"
}

resource "azurerm_postgresql_flexible_server_configuration" "log_checkpoints" {
  name      = "log_checkpoints"
  server_id = azurerm_postgresql_flexible_server.dagster.id
  value     = "on"
}

resource "azurerm_postgresql_flexible_server_configuration" "connection_throttling" {
  name      = "connection_throttle.enable"
  server_id = azurerm_postgresql_flexible_server.dagster.id
  value     = "on"
}

resource "azurerm_private_endpoint" "postgres" {
  name                = "pe-${local.name}-psql"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.private_endpoints.id
  tags                = local.tags

  private_service_connection {
    name                           = "postgres"
    private_connection_resource_id = azurerm_postgresql_flexible_server.dagster.id
    subresource_names              = ["postgresqlServer"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "postgres"
    private_dns_zone_ids = [azurerm_private_dns_zone.zones["postgres"].id]
  }
}

# The Helm chart reads the password from the Kubernetes secret `dagster-postgresql-secret`, synced
# from this Key Vault secret.
resource "azurerm_key_vault_secret" "postgres_password" {
  name            = "dagster-postgresql-password"
  value           = random_password.postgres_admin.result
  key_vault_id    = azurerm_key_vault.main.id
  content_type    = "text/plain"
  expiration_date = timeadd(time_rotating.secrets.rotation_rfc3339, "720h")
  tags            = local.tags

  depends_on = [azurerm_role_assignment.terraform_kv_secrets_officer, azurerm_private_endpoint.key_vault]
}

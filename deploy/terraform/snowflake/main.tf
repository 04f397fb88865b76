# Snowflake side of the GloboLatte platform: one database with a schema per layer, one warehouse that
# suspends itself, three functional roles and a key-pair service user for the Dagster pods.
#
#   LOADER      writes RAW (ingestion), reads the landing stage
#   TRANSFORMER reads RAW, writes CORE, ML and MART (the platform's role: SNOWFLAKE_ROLE); inherits LOADER
#   READER      reads MART only (marketing, BI)

locals {
  schemas = toset(["RAW", "CORE", "ML", "MART"])
  # Schemas the TRANSFORMER role owns the contents of.
  transformer_schemas = toset(["CORE", "ML", "MART"])
  table_privileges    = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"]
}

# --- objects ----------------------------------------------------------------------------------------
resource "snowflake_database" "globolatte" {
  provider                    = snowflake.sysadmin
  name                        = var.database_name
  comment                     = "GloboLatte data and ML platform"
  data_retention_time_in_days = 7
}

resource "snowflake_schema" "layers" {
  provider            = snowflake.sysadmin
  for_each            = local.schemas
  database            = snowflake_database.globolatte.name
  name                = each.key
  with_managed_access = true
}

resource "snowflake_warehouse" "globolatte" {
  provider            = snowflake.sysadmin
  name                = var.warehouse_name
  warehouse_size      = var.warehouse_size
  auto_suspend        = var.warehouse_auto_suspend_seconds
  auto_resume         = true
  initially_suspended = true
  comment             = "GloboLatte platform warehouse"
}

# --- roles --------------------------------------------------------------------------------------------
resource "snowflake_account_role" "loader" {
  provider = snowflake.securityadmin
  name     = "LOADER"
  comment  = "Loads landing files into RAW"
}

resource "snowflake_account_role" "transformer" {
  provider = snowflake.securityadmin
  name     = "TRANSFORMER"
  comment  = "Builds CORE, ML and MART from RAW; the platform's role"
}

resource "snowflake_account_role" "reader" {
  provider = snowflake.securityadmin
  name     = "READER"
  comment  = "Reads MART (recommendations) only"
}

# Role hierarchy: TRANSFORMER runs the whole pipeline (it also loads), and every custom role rolls up to
# SYSADMIN, as Snowflake recommends, so administrators can manage what these roles create.
resource "snowflake_grant_account_role" "loader_to_transformer" {
  provider         = snowflake.securityadmin
  role_name        = snowflake_account_role.loader.name
  parent_role_name = snowflake_account_role.transformer.name
}

resource "snowflake_grant_account_role" "to_sysadmin" {
  provider = snowflake.securityadmin
  for_each = {
    transformer = snowflake_account_role.transformer.name
    reader      = snowflake_account_role.reader.name
  }
  role_name        = each.value
  parent_role_name = "SYSADMIN"
}

# --- grants: warehouse and database -------------------------------------------------------------------
resource "snowflake_grant_privileges_to_account_role" "warehouse_usage" {
  provider = snowflake.securityadmin
  for_each = {
    loader      = snowflake_account_role.loader.name
    transformer = snowflake_account_role.transformer.name
    reader      = snowflake_account_role.reader.name
  }
  account_role_name = each.value
  privileges        = ["USAGE"]

  on_account_object {
    object_type = "WAREHOUSE"
    object_name = snowflake_warehouse.globolatte.name
  }
}

resource "snowflake_grant_privileges_to_account_role" "database_usage" {
  provider = snowflake.securityadmin
  for_each = {
    loader      = snowflake_account_role.loader.name
    transformer = snowflake_account_role.transformer.name
    reader      = snowflake_account_role.reader.name
  }
  account_role_name = each.value
  privileges        = ["USAGE"]

  on_account_object {
    object_type = "DATABASE"
    object_name = snowflake_database.globolatte.name
  }
}

# --- grants: LOADER on RAW ------------------------------------------------------------------------------
resource "snowflake_grant_privileges_to_account_role" "loader_raw_schema" {
  provider          = snowflake.securityadmin
  account_role_name = snowflake_account_role.loader.name
  privileges        = ["USAGE", "CREATE TABLE", "CREATE STAGE", "CREATE FILE FORMAT"]

  on_schema {
    schema_name = snowflake_schema.layers["RAW"].fully_qualified_name
  }
}

resource "snowflake_grant_privileges_to_account_role" "loader_raw_future_tables" {
  provider          = snowflake.securityadmin
  account_role_name = snowflake_account_role.loader.name
  privileges        = local.table_privileges

  on_schema_object {
    future {
      object_type_plural = "TABLES"
      in_schema          = snowflake_schema.layers["RAW"].fully_qualified_name
    }
  }
}

# The landing stage uses the storage integration below.
resource "snowflake_grant_privileges_to_account_role" "loader_integration" {
  provider          = snowflake.securityadmin
  account_role_name = snowflake_account_role.loader.name
  privileges        = ["USAGE"]

  on_account_object {
    object_type = "INTEGRATION"
    object_name = snowflake_storage_integration.landing.name
  }
}

# --- grants: TRANSFORMER reads RAW, writes CORE, ML, MART ----------------------------------------------
resource "snowflake_grant_privileges_to_account_role" "transformer_schemas" {
  provider          = snowflake.securityadmin
  for_each          = local.transformer_schemas
  account_role_name = snowflake_account_role.transformer.name
  privileges        = ["USAGE", "CREATE TABLE", "CREATE VIEW"]

  on_schema {
    schema_name = snowflake_schema.layers[each.key].fully_qualified_name
  }
}

resource "snowflake_grant_privileges_to_account_role" "transformer_future_tables" {
  provider          = snowflake.securityadmin
  for_each          = local.transformer_schemas
  account_role_name = snowflake_account_role.transformer.name
  privileges        = local.table_privileges

  on_schema_object {
    future {
      object_type_plural = "TABLES"
      in_schema          = snowflake_schema.layers[each.key].fully_qualified_name
    }
  }
}

# --- grants: READER reads MART --------------------------------------------------------------------------
resource "snowflake_grant_privileges_to_account_role" "reader_mart_schema" {
  provider          = snowflake.securityadmin
  account_role_name = snowflake_account_role.reader.name
  privileges        = ["USAGE"]

  on_schema {
    schema_name = snowflake_schema.layers["MART"].fully_qualified_name
  }
}

resource "snowflake_grant_privileges_to_account_role" "reader_mart_tables" {
  provider          = snowflake.securityadmin
  for_each          = toset(["TABLES", "VIEWS"])
  account_role_name = snowflake_account_role.reader.name
  privileges        = ["SELECT"]

  on_schema_object {
    future {
      object_type_plural = each.key
      in_schema          = snowflake_schema.layers["MART"].fully_qualified_name
    }
  }
}

resource "snowflake_grant_privileges_to_account_role" "reader_mart_existing" {
  provider          = snowflake.securityadmin
  account_role_name = snowflake_account_role.reader.name
  privileges        = ["SELECT"]

  on_schema_object {
    all {
      object_type_plural = "TABLES"
      in_schema          = snowflake_schema.layers["MART"].fully_qualified_name
    }
  }
}

# --- service user ---------------------------------------------------------------------------------------
# Key-pair authentication only: a SERVICE-type user cannot log in with a password or through the UI.
resource "snowflake_service_user" "platform" {
  provider          = snowflake.securityadmin
  name              = var.service_user_name
  comment           = "Dagster pods of the GloboLatte platform"
  rsa_public_key    = var.service_user_rsa_public_key
  default_role      = snowflake_account_role.transformer.name
  default_warehouse = snowflake_warehouse.globolatte.name
  default_namespace = "${snowflake_database.globolatte.name}.CORE"
}

resource "snowflake_grant_account_role" "transformer_to_service_user" {
  provider  = snowflake.securityadmin
  role_name = snowflake_account_role.transformer.name
  user_name = snowflake_service_user.platform.name
}

# --- storage integration for the Azure landing container -------------------------------------------------
# After apply, consent to the integration's Entra application (output landing_integration_consent_url)
# and give it Storage Blob Data Reader on the landing container (see deploy/README.md).
resource "snowflake_storage_integration" "landing" {
  provider                  = snowflake
  name                      = "GLOBOLATTE_LANDING"
  comment                   = "Azure landing container of the business units (read only)"
  type                      = "EXTERNAL_STAGE"
  enabled                   = true
  storage_provider          = "AZURE"
  azure_tenant_id           = var.azure_tenant_id
  storage_allowed_locations = ["azure://${var.landing_storage_account_name}.blob.core.windows.net/${var.landing_container_name}/"]
}

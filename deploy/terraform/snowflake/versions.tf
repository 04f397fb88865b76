terraform {
  required_version = ">= 1.6"

  required_providers {
    snowflake = {
      source  = "snowflakedb/snowflake"
      version = "~> 2.3"
    }
  }

  # Remote state, in the same Azure Storage container as deploy/terraform/azure (another key).
  # Fill in the names and uncomment.
  #
  # backend "azurerm" {
  #   resource_group_name  = "<tfstate resource group>"
  #   storage_account_name = "<tfstate storage account>"
  #   container_name       = "tfstate"
  #   key                  = "globolatte/snowflake.tfstate"
  #   use_azuread_auth     = true
  # }
}

# Credentials come from the environment of whoever applies (an administrator's key pair):
# SNOWFLAKE_ORGANIZATION_NAME, SNOWFLAKE_ACCOUNT_NAME, SNOWFLAKE_USER, SNOWFLAKE_AUTHENTICATOR=SNOWFLAKE_JWT
# and SNOWFLAKE_PRIVATE_KEY (or _FILE). Nothing secret is written here.
provider "snowflake" {
  role = "ACCOUNTADMIN"
  # snowflake_storage_integration is a preview resource of the 2.x provider.
  preview_features_enabled = ["snowflake_storage_integration_resource"]
}

# Objects are created by SYSADMIN, roles and grants by SECURITYADMIN.
provider "snowflake" {
  alias = "sysadmin"
  role  = "SYSADMIN"
}

provider "snowflake" {
  alias = "securityadmin"
  role  = "SECURITYADMIN"
}

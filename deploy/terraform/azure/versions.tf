terraform {
  required_version = ">= 1.6"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.14"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }

  # Remote state: an Azure Storage container created once, by hand, before the first apply
  # (see deploy/README.md, step 2). Fill in the names and uncomment. Authentication is Entra ID
  # (use_azuread_auth), so no storage key is needed.
  #
  # backend "azurerm" {
  #   resource_group_name  = "<tfstate resource group>"
  #   storage_account_name = "<tfstate storage account>"
  #   container_name       = "tfstate"
  #   key                  = "globolatte/azure.tfstate"
  #   use_azuread_auth     = true
  # }
}

provider "azurerm" {
  subscription_id     = var.subscription_id
  storage_use_azuread = true

  features {
    key_vault {
      purge_soft_delete_on_destroy = false
    }
    resource_group {
      prevent_deletion_if_contains_resources = true
    }
  }
}

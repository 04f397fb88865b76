# GloboLatte data and ML platform on Azure.
#
# Everything that holds customer data or secrets (storage, Key Vault, ACR, PostgreSQL, the Azure ML
# workspace) has public network access disabled and is reached only through private endpoints in the
# AKS virtual network. See deploy/README.md for the order of operations.

data "azurerm_client_config" "current" {}

locals {
  name = "${var.prefix}-${var.environment}"
  # Storage accounts, Key Vaults and registries need short (at most 14 here), globally unique names
  # without dashes.
  compact = "${var.prefix}${random_string.suffix.result}"

  tags = merge(
    {
      project     = "globolatte"
      environment = var.environment
      managed-by  = "terraform"
    },
    var.tags,
  )
}

resource "random_string" "suffix" {
  length  = 4
  lower   = true
  upper   = false
  numeric = true
  special = false
}

resource "azurerm_resource_group" "main" {
  name     = "rg-${local.name}"
  location = var.location
  tags     = local.tags
}

"""The `azure` environment: landing zone on Azure Blob Storage, warehouse on Snowflake.

Every value comes from an environment variable named in `settings.py`. Secrets are `dg.EnvVar`s, resolved
when a run starts, so they are never part of the definitions, the UI or a log line. Which credential is
used depends only on which variables are set:

- Blob: `AZURE_STORAGE_CONNECTION_STRING` (Azurite), else `AZURE_STORAGE_SAS_TOKEN`, else
  `AZURE_STORAGE_ACCOUNT_KEY`, else `DefaultAzureCredential` (workload identity on AKS);
- Snowflake: `SNOWFLAKE_PRIVATE_KEY` (+ `SNOWFLAKE_PRIVATE_KEY_PASSWORD`) key-pair, else
  `SNOWFLAKE_PASSWORD`; with neither, key-pair is expected and a run fails naming the missing variable.
"""

from __future__ import annotations

import dagster as dg
from dagster_azure.blob import (
    AzureBlobStorageDefaultCredential,
    AzureBlobStorageKeyCredential,
    AzureBlobStorageSASTokenCredential,
)
from dagster_snowflake import SnowflakeResource

from globolatte_dagster import settings
from globolatte_dagster.resources.artifacts import BlobArtefactStore, BlobPickleIOManager
from globolatte_dagster.resources.blob_landing import BlobLandingZone
from globolatte_dagster.resources.endpoint import DEFAULT_ENDPOINT_NAME, AzureMLScoringEndpoint
from globolatte_dagster.resources.model_registry import AzureMLModelRegistry
from globolatte_dagster.resources.secrets import HashKey
from globolatte_dagster.resources.snowflake import SnowflakeWarehouse, WarehouseSnowflakeIOManager

DEFAULT_CONTAINER = "landing"


ARTIFACTS_CONTAINER = "dagster-artifacts"


def blob_landing_zone(container: str | None = None) -> BlobLandingZone:
    container = container or settings.value("AZURE_STORAGE_CONTAINER") or DEFAULT_CONTAINER
    if settings.is_set("AZURE_STORAGE_CONNECTION_STRING"):
        return BlobLandingZone(
            container=container, connection_string=dg.EnvVar("AZURE_STORAGE_CONNECTION_STRING")
        )
    if settings.is_set("AZURE_STORAGE_SAS_TOKEN"):
        credential = AzureBlobStorageSASTokenCredential(token=dg.EnvVar("AZURE_STORAGE_SAS_TOKEN"))
    elif settings.is_set("AZURE_STORAGE_ACCOUNT_KEY"):
        credential = AzureBlobStorageKeyCredential(key=dg.EnvVar("AZURE_STORAGE_ACCOUNT_KEY"))
    else:
        credential = AzureBlobStorageDefaultCredential()
    return BlobLandingZone(
        container=container, account_url=dg.EnvVar("AZURE_STORAGE_ACCOUNT_URL"), credential=credential
    )


def snowflake_connection_config() -> dict:
    """Account, user, role, warehouse, database and the authentication, as `dg.EnvVar`s."""
    config = {
        name.lower(): dg.EnvVar(f"SNOWFLAKE_{name}")
        for name in ("ACCOUNT", "USER", "ROLE", "WAREHOUSE", "DATABASE")
    }
    if settings.is_set("SNOWFLAKE_PASSWORD") and not settings.is_set("SNOWFLAKE_PRIVATE_KEY"):
        config["password"] = dg.EnvVar("SNOWFLAKE_PASSWORD")
    else:
        config["private_key"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY")  # PEM, or PEM base64-encoded
        if settings.is_set("SNOWFLAKE_PRIVATE_KEY_PASSWORD"):
            config["private_key_password"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSWORD")
    return config


def azure_registry_resources() -> dict:
    """`registry` and `endpoint` for GLOBOLATTE_ENV=azure: the workspace named by the environment."""
    workspace = {
        "subscription_id": dg.EnvVar("AZURE_SUBSCRIPTION_ID"),
        "resource_group": dg.EnvVar("AZURE_RESOURCE_GROUP"),
        "workspace_name": dg.EnvVar("AZUREML_WORKSPACE_NAME"),
    }
    scratch = str(settings.home() / "scratch")
    return {
        "registry": AzureMLModelRegistry(**workspace, scratch_dir=scratch),
        "endpoint": AzureMLScoringEndpoint(
            **workspace,
            endpoint_name=settings.value("AZUREML_ENDPOINT_NAME", DEFAULT_ENDPOINT_NAME),
            auth_mode=settings.value("AZUREML_ENDPOINT_AUTH_MODE", "key"),
        ),
    }


def azure_resources() -> dict:
    config = snowflake_connection_config()
    return {
        "landing": blob_landing_zone(),
        "warehouse": SnowflakeWarehouse(snowflake=SnowflakeResource(paramstyle="qmark", **config)),
        "warehouse_io_manager": WarehouseSnowflakeIOManager(**config),
        "hash_key": HashKey(key=dg.EnvVar("GLOBOLATTE_HASH_KEY")),
        # trained models between assets, in the same storage account as the landing zone
        "model_io_manager": BlobPickleIOManager(
            store=BlobArtefactStore(blob=blob_landing_zone(ARTIFACTS_CONTAINER))
        ),
        **azure_registry_resources(),
    }

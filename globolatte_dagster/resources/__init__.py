"""Resources: one abstract interface each, a local and an Azure implementation.

`environment_definitions()` is the one place that maps `GLOBOLATTE_ENV` to implementations.
"""

from __future__ import annotations

import dagster as dg

from globolatte_dagster import settings


def local_resources() -> dict:
    from globolatte_dagster.resources.endpoint import LocalScoringEndpoint
    from globolatte_dagster.resources.io_managers import WarehouseDuckDBIOManager
    from globolatte_dagster.resources.landing import LocalLandingZone
    from globolatte_dagster.resources.model_registry import LocalModelRegistry
    from globolatte_dagster.resources.secrets import HashKey
    from globolatte_dagster.resources.warehouse import DuckDBWarehouse

    home = settings.home()
    database = str(home / "warehouse.duckdb")
    return {
        "landing": LocalLandingZone(root=str(settings.landing_dir())),
        "warehouse": DuckDBWarehouse(database=database),
        "warehouse_io_manager": WarehouseDuckDBIOManager(database=database),
        # GLOBOLATTE_HASH_KEY wins when it is set; otherwise a key generated once under GLOBOLATTE_HOME.
        "hash_key": HashKey(
            key=dg.EnvVar("GLOBOLATTE_HASH_KEY") if settings.is_set("GLOBOLATTE_HASH_KEY") else None,
            key_file=str(home / "secrets" / "email_hash_key"),
        ),
        # Python objects (trained models) between assets; the registry keeps the versions that matter.
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(home / "artifacts")),
        "registry": LocalModelRegistry(root=str(home / "registry")),
        "endpoint": LocalScoringEndpoint(root=str(home / "endpoint")),
    }


def azure_resources() -> dict:
    from globolatte_dagster.resources.azure import azure_resources as build

    return build()


def environment_definitions(env: str | None = None) -> dg.Definitions:
    """Resources (and the executor) for `GLOBOLATTE_ENV`: `local` (default) or `azure`.

    `training` (where ml/preference_model trains) follows GLOBOLATTE_TRAINING: `subprocess` by default
    locally, `azureml` by default in `azure`; `inprocess` anywhere.
    """
    from globolatte_dagster.resources.model_training import training_resource

    env = env or settings.env()
    training = {"training": training_resource(settings.training(env))}
    if env == "azure":
        return dg.Definitions(resources={**azure_resources(), **training})
    # DuckDB allows one writing process: steps of a local run share the run's process.
    return dg.Definitions(resources={**local_resources(), **training}, executor=dg.in_process_executor)

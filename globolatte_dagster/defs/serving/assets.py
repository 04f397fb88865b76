"""serving/scoring_endpoint: one endpoint serving every region's champion, deployed blue/green."""

import tempfile
from pathlib import Path

import dagster as dg

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.defs.automation import deploy_on_new_champion
from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.resources.endpoint import ScoringEndpoint
from globolatte_dagster.resources.model_registry import ModelRegistry


class EndpointConfig(dg.Config):
    """When to deploy."""

    force_redeploy: bool = False  # deploy a new colour even if the live one serves the same champions


@dg.asset(
    key=asset_keys.SCORING_ENDPOINT,
    deps=[dg.AssetDep(asset_keys.REGISTERED_MODEL, partition_mapping=dg.AllPartitionMapping())],
    kinds={"azureml", "python"},
    group_name="serving",
    automation_condition=deploy_on_new_champion(),
)
def scoring_endpoint(
    context: dg.AssetExecutionContext,
    config: EndpointConfig,
    registry: ModelRegistry,
    endpoint: ScoringEndpoint,
) -> dg.MaterializeResult:
    """Every region's champion behind one scoring endpoint, deployed blue/green after a smoke test."""
    with tempfile.TemporaryDirectory(prefix="globolatte-champions-") as tmp:
        bundle = registry.champion_bundle(Path(tmp) / "champions")
        if not bundle.versions:
            raise dg.Failure(
                description=f"no region has a champion model yet: materialise {asset_keys.REGISTERED_MODEL.to_user_string()} first"
            )
        live = endpoint.current_versions()
        if live == bundle.versions and not config.force_redeploy:
            context.log.info(f"the live deployment already serves {live}")
            return dg.MaterializeResult(
                metadata={"status": "unchanged", "model_versions": dg.MetadataValue.json(live)}
            )
        try:
            result = endpoint.deploy(bundle, log=context.log.info)
        except Exception as exc:
            raise dg.Failure(
                description=f"deployment failed: {exc}", metadata={"model_versions": bundle.versions}
            ) from exc
    missing = sorted(set(REGION_KEYS) - set(bundle.versions))
    metadata = {k: v for k, v in result.items() if isinstance(v, str | int | float | bool) and v is not None}
    return dg.MaterializeResult(
        metadata={
            "status": "switched",
            **metadata,
            "model_versions": dg.MetadataValue.json(bundle.versions),
            "regions_without_champion": ", ".join(missing) or "none",
        }
    )

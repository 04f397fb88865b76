"""The azure model_io_manager: trained objects between assets, pickled into a blob container on Azurite."""

import dagster as dg
import pytest

from globolatte_dagster.defs.partitions import region_partitions
from globolatte_dagster.resources.artifacts import BlobArtefactStore, BlobPickleIOManager

pytestmark = pytest.mark.azure


def test_models_round_trip_per_region_partition_through_blob(azurite_landing):
    @dg.asset(partitions_def=region_partitions, io_manager_key="model_io_manager")
    def model(context: dg.AssetExecutionContext) -> dict:
        return {"region": context.partition_key, "weights": [1.0, 2.0]}

    @dg.asset(partitions_def=region_partitions, io_manager_key="model_io_manager")
    def uses_model(model: dict) -> str:
        return model["region"]

    resources = {"model_io_manager": BlobPickleIOManager(store=BlobArtefactStore(blob=azurite_landing))}
    for region in ("america", "mexico"):
        assert dg.materialize([model, uses_model], partition_key=region, resources=resources).success
    assert azurite_landing.exists("model/mexico.pickle") and azurite_landing.exists(
        "uses_model/america.pickle"
    )
    result = dg.materialize(
        [model, uses_model], selection=[uses_model], partition_key="mexico", resources=resources
    )
    assert result.output_for_node("uses_model") == "mexico"


def test_a_missing_model_names_the_asset_to_materialise(azurite_landing):
    @dg.asset(partitions_def=region_partitions, io_manager_key="model_io_manager")
    def model() -> dict:
        return {}

    @dg.asset(partitions_def=region_partitions, io_manager_key="model_io_manager")
    def uses_model(model: dict) -> int:
        return len(model)

    resources = {"model_io_manager": BlobPickleIOManager(store=BlobArtefactStore(blob=azurite_landing))}
    result = dg.materialize(
        [model, uses_model],
        selection=[uses_model],
        partition_key="canada",
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "materialise model first" in str(failure.step_failure_data.error)

"""The monitors' automation and retrain-on-alert, tick by tick on the real definitions (upstream as runless events)."""

import dagster as dg
import pytest

from globolatte_dagster.defs.monitor.checks import (
    FEATURE_DRIFT_CHECK,
    PERFORMANCE_CHECK,
    PREDICTION_DRIFT_CHECK,
)
from globolatte_dagster.defs.partitions import region_partitions
from globolatte_dagster.lib.schema import (
    DATA_QUALITY,
    DRIFT,
    PRODUCTS,
    RECOMMENDATION_PERFORMANCE,
    SALES,
    SALES_REJECTS,
)

PREFERENCE_MODEL = dg.AssetKey(["ml", "preference_model"])
MONITORS = [dg.AssetKey(t.key) for t in (RECOMMENDATION_PERFORMANCE, DRIFT, DATA_QUALITY)]
UPSTREAM = [["mart", "recommendations"], ["ml", "registered_model"]]


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from globolatte_dagster.definitions import defs as load

    return load()


def _report(instance, key, partition=None) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))


def _land(instance, partition: str) -> None:
    """What raw/sales reports for a landed day: the valid rows and the rejects, together."""
    for key in (SALES.key, SALES_REJECTS.key):
        _report(instance, key, partition)


def _monitor_run(instance, key: list[str], checks: dict[str, bool], region: str) -> None:
    """A monitor run for one region that reports the given check verdicts (a stand-in with the real specs).

    Dagster keeps the status of partitioned checks from runs, not from runless events, hence a real run.
    """
    specs = [
        s
        for s in (PERFORMANCE_CHECK, FEATURE_DRIFT_CHECK, PREDICTION_DRIFT_CHECK)
        if s.asset_key == dg.AssetKey(key)
    ]

    @dg.asset(key=key, partitions_def=region_partitions, check_specs=specs)
    def stand_in():
        yield dg.MaterializeResult()
        for spec in specs:
            yield dg.AssetCheckResult(
                check_name=spec.name, passed=checks.get(spec.name, True), severity=dg.AssetCheckSeverity.WARN
            )

    assert dg.materialize([stand_in], instance=instance, partition_key=region).success


def _tick(defs, instance, cursor=None):
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = {key: result.get_requested_partitions(key) for key in (*MONITORS, PREFERENCE_MODEL)}
    return result.cursor, {k: v for k, v in requested.items() if v}


@pytest.fixture
def ready(defs):
    """An instance where america's models and lists exist and every monitor ran once."""
    instance = dg.DagsterInstance.ephemeral()
    _report(instance, PRODUCTS.key)
    for key in UPSTREAM:
        for region in ("america", "canada"):
            _report(instance, key, region)
    _land(instance, "2025-03-01|america")
    _land(instance, "2025-03-01|canada")
    for key in MONITORS:
        for region in ("america", "canada"):
            _report(instance, key, region)
    cursor, _ = _tick(defs, instance)
    cursor, _ = _tick(defs, instance, cursor)
    return instance, cursor


def test_a_landed_day_runs_its_regions_monitors_only(defs, ready):
    instance, cursor = ready
    _land(instance, "2025-03-02|america")
    cursor, requested = _tick(defs, instance, cursor)
    assert {k: requested.get(k) for k in MONITORS} == {k: {"america"} for k in MONITORS}
    _report(instance, DATA_QUALITY.key, "america")  # handled: not requested again without a new day
    cursor, requested = _tick(defs, instance, cursor)
    assert dg.AssetKey(DATA_QUALITY.key) not in requested


def test_a_failed_performance_or_feature_drift_check_retrains_that_region_once(defs, ready):
    instance, cursor = ready
    _monitor_run(instance, RECOMMENDATION_PERFORMANCE.key, {"realised_hit_rate": False}, "canada")
    cursor, requested = _tick(defs, instance, cursor)
    assert requested.get(PREFERENCE_MODEL) == {"canada"}
    cursor, requested = _tick(defs, instance, cursor)  # requested already: not again on the next tick
    assert PREFERENCE_MODEL not in requested

    _monitor_run(instance, DRIFT.key, {"feature_drift": False}, "america")
    cursor, requested = _tick(defs, instance, cursor)
    assert requested.get(PREFERENCE_MODEL) == {"america"}


def test_a_passed_check_or_prediction_drift_alone_does_not_retrain(defs, ready):
    instance, cursor = ready
    _monitor_run(instance, RECOMMENDATION_PERFORMANCE.key, {"realised_hit_rate": True}, "america")
    # prediction drift is expected after every retrain: it never retrains by itself
    _monitor_run(instance, DRIFT.key, {"prediction_drift": False, "feature_drift": True}, "america")
    cursor, requested = _tick(defs, instance, cursor)
    assert PREFERENCE_MODEL not in requested

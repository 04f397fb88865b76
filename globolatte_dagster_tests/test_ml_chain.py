"""The ML chain through Dagster on a small simulated case: features -> segments -> model -> recommendations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from globolatte_dagster.defs.automation import automation_sensor
from globolatte_dagster.defs.features.assets import customer_features, purchase_history
from globolatte_dagster.defs.mart.assets import recommendations
from globolatte_dagster.defs.ml.assets import customer_segments, preference_model
from globolatte_dagster.defs.ml.registered_model import registered_model
from globolatte_dagster.defs.partitions import region_day, region_day_key
from globolatte_dagster.resources.io_managers import WarehouseDuckDBIOManager
from globolatte_dagster.resources.model_registry import LocalModelRegistry
from globolatte_dagster.resources.model_training import SubprocessModelTraining
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.ml_data import landed_frames, load_duckdb, simulate_case

# The recommendations come from the champion after the registry's gate, so the chain includes it.
CHAIN = [
    purchase_history,
    customer_features,
    customer_segments,
    preference_model,
    registered_model,
    recommendations,
]


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> tuple[str, Path, Path]:
    root = tmp_path_factory.mktemp("ml_chain")
    sim = simulate_case(root, days=36, customers=150, regions=("america", "mexico"))
    db = str(root / "wh.duckdb")
    load_duckdb(db, landed_frames(sim.landing))
    return db, sim.truth, root


def _resources(db: str, root: Path) -> dict:
    return {
        "warehouse": DuckDBWarehouse(database=db),
        "warehouse_io_manager": WarehouseDuckDBIOManager(database=db),
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(root / "artifacts")),
        "registry": LocalModelRegistry(root=str(root / "registry")),
        # the default local path: training.job in a subprocess, through Dagster Pipes
        "training": SubprocessModelTraining(scratch_dir=str(root / "training")),
    }


def _config(truth: Path, model: bool = True) -> dg.RunConfig:
    ops = {"customer_segments": {"config": {"truth_dir": str(truth), "k_max": 8, "n_init": 4}}}
    if model:
        ops["ml__preference_model"] = {"config": {"max_iter": 40, "n_boot": 200}}
    return dg.RunConfig(ops=ops)


def test_chain_materialises_and_recommendations_match_the_model(case):
    db, truth, root = case
    result = dg.materialize(
        CHAIN, partition_key="mexico", resources=_resources(db, root), run_config=_config(truth)
    )
    assert result.success

    seg_meta = next(
        m.metadata
        for m in result.asset_materializations_for_node("customer_segments")
        if m.asset_key == dg.AssetKey(["ml", "customer_segments"])
    )
    assert seg_meta["k"].value >= 2
    assert "persona_ari" in seg_meta and "data:image/png;base64," in seg_meta["plot"].value
    assert "| segment |" in seg_meta["profiles"].value

    model_meta = result.asset_materializations_for_node("ml__preference_model")[0].metadata
    assert model_meta["training"].value == "subprocess"  # trained by training.job, reported through Pipes
    for name in ("popularity", "repeat", "recency_repeat", "tifu_knn", "context_model"):
        assert 0.0 <= model_meta[f"hit_rate_at_3_{name}"].value <= 1.0, name
    assert model_meta["hit_rate_at_3"].value >= model_meta["best_baseline_hit_rate_at_3"].value
    assert "data:image/png;base64," in model_meta["plot"].value
    assert (
        "| list | candidate |" in model_meta["tournament"].value
        and "discover" in model_meta["tournament"].value
    )
    assert "replace" in model_meta["reasons"].value  # the gate's reasons name the figures

    model = result.output_for_node("ml__preference_model")
    conn = duckdb.connect(db, read_only=True)
    try:
        mart = conn.execute("SELECT * FROM mart.recommendations WHERE region = 'mexico'").df()
        features = conn.execute(
            "SELECT COUNT(*) FROM core.customer_features WHERE region = 'mexico'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert list(mart.columns) == [
        "region",
        "customer_id",
        "for_date",
        "list",
        "rank",
        "product_id",
        "score",
        "model_version",
        "candidate",
    ]
    top = mart[mart["list"] == "top"]
    assert top["customer_id"].nunique() == features and (top.groupby("customer_id").size() == 3).all()
    assert (pd.to_datetime(mart["for_date"]).dt.date == model.as_of + timedelta(days=1)).all()
    assert set(top["candidate"]) == {model.champion}
    assert set(mart.loc[mart["list"] == "discover", "candidate"]) == {model.discover_champion}
    assert set(mart["model_version"]) == {
        "globolatte-mexico:1"
    }  # the registered champion, not "unregistered"

    # the endpoint's function gives exactly the batch rows, for both lists
    some = sorted(top["customer_id"].unique())[:20]
    day = (model.as_of + timedelta(days=1)).isoformat()
    for flag, name in ((False, "top"), (True, "discover")):
        reqs = [{"region": "mexico", "customer_id": c, "date": day, "exclude_purchased": flag} for c in some]
        for ans in model.recommend(reqs):
            rows = mart[(mart["customer_id"] == ans["customer_id"]) & (mart["list"] == name)].sort_values(
                "rank"
            )
            assert [r["product_id"] for r in ans["recommendations"]] == list(rows["product_id"])
            assert [r["score"] for r in ans["recommendations"]] == pytest.approx(
                list(rows["score"]), abs=1e-9
            )


def test_served_lists_are_kept_by_for_date(case):
    """A day's lists replace only their own for_date: monitoring can still score the earlier ones."""
    db, _truth, root = case

    def counts() -> list[tuple]:
        conn = duckdb.connect(db, read_only=True)
        try:
            return conn.execute(
                "SELECT for_date, list, COUNT(*) FROM mart.recommendations WHERE region = 'mexico' "
                "GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()
        finally:
            conn.close()

    current = counts()
    assert current, "the chain test wrote the lists first"
    conn = duckdb.connect(db)
    try:  # lists "served" a week earlier
        conn.execute(
            "INSERT INTO mart.recommendations SELECT region, customer_id, for_date - 7, list, rank, product_id, "
            "score, model_version, candidate FROM mart.recommendations WHERE region = 'mexico'"
        )
    finally:
        conn.close()
    dg.materialize(CHAIN, partition_key="mexico", resources=_resources(db, root), selection=[recommendations])
    after = counts()
    assert len(after) == 2 * len(current)  # the earlier for_date is kept, the current one not doubled
    assert [row[1:] for row in after[: len(current)]] == [row[1:] for row in current]
    assert after[len(current) :] == current


def test_second_run_reports_segment_stability(case):
    db, truth, root = case
    for _ in range(2):
        result = dg.materialize(
            CHAIN[:3],
            partition_key="america",
            resources=_resources(db, root),
            run_config=_config(truth, model=False),
        )
    meta = next(
        m.metadata
        for m in result.asset_materializations_for_node("customer_segments")
        if m.asset_key == dg.AssetKey(["ml", "customer_segments"])
    )
    assert meta["stability_ari"].value == pytest.approx(1.0)
    assert meta["stability_shared_customers"].value > 0


def test_lists_are_for_the_day_after_the_last_landed_day_when_the_gate_kept_an_older_champion(case):
    """A new sales day whose challenger the gate rejects still gets lists for the next day (monitoring scores
    every landed day): the kept champion serves from its older snapshot, a day further ahead."""
    db, _truth, root = case
    registry = LocalModelRegistry(root=str(root / "registry"))
    champion = registry.load("mexico", registry.get_alias("mexico", "champion"))
    conn = duckdb.connect(db)
    try:  # one more landed day of mexico's sales (a copy of its last day), with no retraining after it
        last = conn.execute("SELECT MAX(day) FROM raw.sales WHERE region = 'mexico'").fetchone()[0]
        assert last == champion.as_of
        conn.execute(
            "INSERT INTO raw.sales SELECT * REPLACE (day + 1 AS day, transaction_id || '-next' AS transaction_id) "
            "FROM raw.sales WHERE region = 'mexico' AND day = ?",
            [last],
        )
    finally:
        conn.close()
    try:
        result = dg.materialize(
            CHAIN, partition_key="mexico", resources=_resources(db, root), selection=[recommendations]
        )
        assert result.success
        conn = duckdb.connect(db, read_only=True)
        try:
            served = conn.execute(
                "SELECT MAX(for_date), COUNT(DISTINCT customer_id) FROM mart.recommendations "
                "WHERE region = 'mexico' AND model_version = ?",
                [champion.model_version],
            ).fetchone()
        finally:
            conn.close()
        assert served[0] == last + timedelta(days=2)  # the day after the new last landed day
        assert served[1] == len(champion.customers)
    finally:
        conn = duckdb.connect(db)
        try:
            conn.execute(
                "DELETE FROM raw.sales WHERE region = 'mexico' AND day = ?", [last + timedelta(days=1)]
            )
            conn.execute(
                "DELETE FROM mart.recommendations WHERE region = 'mexico' AND for_date = ?",
                [last + timedelta(days=2)],
            )
        finally:
            conn.close()


def test_new_sales_refresh_downstream_once_per_day():
    """Declarative automation: new sales request the region's features, but not twice on the same day."""
    sales = dg.AssetSpec(["raw", "sales"], partitions_def=region_day)
    weather = dg.AssetSpec(["raw", "weather"], partitions_def=region_day)
    refs = [dg.AssetSpec(["core", "products"]), dg.AssetSpec(["core", "calendar"])]
    defs = dg.Definitions(
        assets=[sales, weather, *refs, customer_features],
        resources={
            "warehouse": DuckDBWarehouse(database=":memory:"),
            "warehouse_io_manager": dg.InMemoryIOManager(),
        },
    )
    instance = dg.DagsterInstance.ephemeral()
    key = dg.AssetKey(["core", "customer_features"])

    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0  # nothing landed yet

    for reference in refs:  # the features wait for the catalogue and the calendar (issue 14)
        instance.report_runless_asset_event(dg.AssetMaterialization(reference.key))
    instance.report_runless_asset_event(
        dg.AssetMaterialization(["raw", "sales"], partition=str(region_day_key("canada", "2025-01-05")))
    )
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert second.get_requested_partitions(key) == {"canada"}
    # the requested run succeeds (a failed one would be retried: see test_automation.py)
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition="canada"))

    instance.report_runless_asset_event(
        dg.AssetMaterialization(["raw", "sales"], partition=str(region_day_key("canada", "2025-01-06")))
    )
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert third.get_requested_partitions(key) == set()  # already refreshed today


def test_one_automation_sensor_is_on_and_targets_the_whole_chain(monkeypatch):
    monkeypatch.delenv("GLOBOLATTE_AUTOMATION", raising=False)
    sensor = automation_sensor()
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    keys = sensor.asset_selection.resolve(CHAIN, allow_missing=True)
    assert {k.to_user_string() for k in keys} >= {
        "core/purchase_history",
        "core/customer_features",
        "ml/customer_segments",
        "ml/preference_model",
        "ml/registered_model",
        "mart/recommendations",
    }
    monkeypatch.setenv("GLOBOLATTE_AUTOMATION", "off")  # read when the definitions load, not at import
    assert automation_sensor().default_status == dg.DefaultSensorStatus.STOPPED

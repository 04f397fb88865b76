"""The monitor assets through dg.materialize on a small simulated unit: tables, idempotent re-runs, checks."""

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from globolatte_dagster.defs.mart.assets import RECOMMENDATIONS
from globolatte_dagster.defs.monitor.assets import data_quality, drift, recommendation_performance
from globolatte_dagster.lib.schema import DATA_QUALITY, DRIFT, RECOMMENDATION_PERFORMANCE
from globolatte_dagster.resources.model_registry import LocalModelRegistry
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.ml_data import simulate_case
from globolatte_dagster_tests.monitor_replay import Replay

REGION = "america"
MONITORS = [recommendation_performance, drift, data_quality]


@dataclass
class Served:
    database: str
    registry: str
    case: object
    served_days: list

    def resources(self) -> dict:
        return {
            "warehouse": DuckDBWarehouse(database=self.database),
            "registry": LocalModelRegistry(root=self.registry),
        }


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    """30 days of one unit; a champion trained on the first 24 serves the last 6 days."""
    root = Path(tmp_path_factory.mktemp("monitor-assets"))
    case = simulate_case(root, days=30, customers=80, regions=[REGION])
    replay = Replay(case, root, REGION, policy="never")
    first = case.start + timedelta(days=24)
    replay.train(first - timedelta(days=1))
    days = [first + timedelta(days=i) for i in range(6)]
    for day in days:
        replay.serve(day)
    replay.close()
    return Served(replay.database, str(replay.store.root), case, days)


def _rows(served: Served, table) -> pd.DataFrame:
    return DuckDBWarehouse(database=served.database).query(
        f"SELECT * FROM {table.schema}.{table.name} WHERE region = ? ORDER BY day", [REGION]
    )


def _materialize(served: Served, run_config: dict | None = None, partition: str = REGION, **kw):
    return dg.materialize(
        MONITORS, resources=served.resources(), partition_key=partition, run_config=run_config or {}, **kw
    )


def test_every_landed_day_is_monitored_once_and_a_rerun_replaces_its_rows(served: Served):
    result = _materialize(served)
    assert result.success
    perf, dq, dr = (_rows(served, t) for t in (RECOMMENDATION_PERFORMANCE, DATA_QUALITY, DRIFT))
    served_days = {pd.Timestamp(d) for d in served.served_days}
    # realised hit rate: a top and a discover row for each day that had served lists, scored on real buyers
    assert set(pd.to_datetime(perf["day"])) == served_days
    assert sorted(perf["list"].unique()) == ["discover", "top"]
    top = perf[perf["list"] == "top"]
    assert (top["customers"] > 0).all() and top["hit_rate_at_3"].between(0, 1).all()
    assert top["champion_version"].str.startswith("globolatte-america:").all()
    # data quality: every landed day, every metric; drift: the served days, every signal
    assert dq["day"].nunique() == served.case.days and dq.groupby("day").size().nunique() == 1
    assert set(pd.to_datetime(dr["day"])) == served_days
    assert {"feature", "context", "prediction"} <= set(dr["signal"])
    counts = [len(perf), len(dq), len(dr)]

    again = _materialize(
        served, {"ops": {"monitor__drift": {"config": {"days": [served.served_days[0].isoformat()]}}}}
    )
    assert again.success
    assert [len(_rows(served, t)) for t in (RECOMMENDATION_PERFORMANCE, DATA_QUALITY, DRIFT)] == counts


def test_checks_report_per_region_and_the_asset_page_has_the_plots(served: Served):
    result = _materialize(served)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {"realised_hit_rate", "feature_drift", "prediction_drift", "data_quality"} <= set(evaluations)
    assert all(e.partition == REGION for e in evaluations.values())
    perf_meta = result.asset_materializations_for_node("monitor__recommendation_performance")[0].metadata
    assert perf_meta["plot"].value.startswith("![realised hit rate](data:image/png;base64,")
    assert "by_champion_version" in perf_meta
    drift_meta = result.asset_materializations_for_node("monitor__drift")[0].metadata
    assert drift_meta["plot"].value.startswith("![drift](data:image/png;base64,")


def _failures(result) -> str:
    texts = []
    for event in result.get_step_failure_events():
        data = event.event_specific_data
        if data.user_failure_data is not None:
            texts.append(data.user_failure_data.description or "")
        texts.append(data.error.message if data.error else "")
    return "\n".join(texts)


def test_an_idle_region_and_an_unlanded_day_fail_with_a_reason(served: Served):
    idle = _materialize(served, partition="canada", raise_on_error=False)
    assert not idle.success
    assert "no sales have landed for region 'canada'" in _failures(idle)
    wrong = dg.materialize(
        [data_quality],
        resources=served.resources(),
        partition_key=REGION,
        run_config={"ops": {"monitor__data_quality": {"config": {"days": ["2031-01-01"]}}}},
        raise_on_error=False,
    )
    assert not wrong.success and "no sales landed on 2031-01-01" in _failures(wrong)


def test_lists_worse_than_popularity_fail_the_check_with_an_error(served: Served):
    """Runs last: it replaces the served lists by the region's least bought products, then puts them back."""
    wh = DuckDBWarehouse(database=served.database)
    sql = "SELECT * FROM mart.recommendations WHERE region = ? AND for_date = CAST(? AS DATE)"
    originals = {day: wh.query(sql, [REGION, day.isoformat()]) for day in served.served_days}
    least = wh.query(
        "SELECT product_id FROM raw.sales WHERE region = ? GROUP BY product_id ORDER BY COUNT(*), product_id LIMIT 3",
        [REGION],
    )["product_id"].tolist()
    try:
        for day, lists in originals.items():
            worse = lists.assign(product_id=[least[(r - 1) % 3] for r in lists["rank"]])
            wh.replace_rows(RECOMMENDATIONS, worse, {"region": REGION, "for_date": day.isoformat()})
        result = dg.materialize(
            [recommendation_performance],
            resources=served.resources(),
            partition_key=REGION,
            run_config={"ops": {"monitor__recommendation_performance": {"config": {"recent_days": 6}}}},
        )
        check = result.get_asset_check_evaluations()[0]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        assert "below popularity" in check.description
        alerts = _rows(served, RECOMMENDATION_PERFORMANCE)["alert"].dropna()
        assert alerts.str.startswith("error:").any()
    finally:
        for day, lists in originals.items():
            wh.replace_rows(RECOMMENDATIONS, lists, {"region": REGION, "for_date": day.isoformat()})

"""The monitor tables on Snowflake (fakesnow) and DuckDB: the same columns, and the same rows from the same data."""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from globolatte_dagster.defs.mart.assets import RECOMMENDATIONS
from globolatte_dagster.lib.monitor import compute as C
from globolatte_dagster.lib.schema import (
    DATA_QUALITY,
    DRIFT,
    MONITOR_TABLES,
    RECOMMENDATION_PERFORMANCE,
    SALES_REJECTS,
)
from globolatte_dagster.resources.azure import azure_resources
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.ml_data import FakesnowWarehouse, landed_frames, simulate_case
from globolatte_dagster_tests.monitor_replay import Replay

pytestmark = [pytest.mark.azure, pytest.mark.filterwarnings("ignore:Arrow output:UserWarning")]
REGION = "america"


@pytest.fixture(scope="module")
def duck_case(tmp_path_factory):
    """DuckDB with 30 days of one unit and the lists of its last 6 days, served by a registered champion."""
    root = Path(tmp_path_factory.mktemp("monitor-azure"))
    case = simulate_case(root, days=30, customers=60, regions=[REGION])
    replay = Replay(case, root, REGION, policy="never")
    first = case.start + timedelta(days=24)
    replay.train(first - timedelta(days=1))
    days = [first + timedelta(days=i) for i in range(6)]
    for day in days:
        replay.serve(day)
    replay.close()
    return replay, case, days


def _columns(warehouse, table) -> list[str]:
    sql = (
        "SELECT column_name FROM information_schema.columns WHERE lower(table_schema) = ? "
        "AND lower(table_name) = ? ORDER BY ordinal_position"
    )
    return [str(c).lower() for c in warehouse.query(sql, [table.schema, table.name])["column_name"]]


def _rows(warehouse, table) -> pd.DataFrame:
    t = f"{table.schema}.{table.name}"
    out = warehouse.query(f"SELECT * FROM {t} WHERE region = ?", [REGION])
    out.columns = [str(c).lower() for c in out.columns]
    out["day"] = pd.to_datetime(out["day"]).dt.date
    keys = [c for c in ("day", "list", "signal", "feature", "metric") if c in out.columns]
    return out.sort_values(keys, ignore_index=True)


def test_the_monitor_tables_and_rows_are_the_same_on_snowflake(fake_snowflake, duck_case):
    replay, case, days = duck_case
    duck = DuckDBWarehouse(database=replay.database)
    with dg.build_resources({"warehouse": azure_resources()["warehouse"]}) as built:
        snow = built.warehouse
        FakesnowWarehouse().load(landed_frames(case.landing))
        snow.ensure_tables([SALES_REJECTS, RECOMMENDATIONS, *MONITOR_TABLES])
        served = duck.query("SELECT * FROM mart.recommendations WHERE region = ?", [REGION])
        snow.replace_rows(RECOMMENDATIONS, served, {"region": REGION})
        for warehouse in (duck, snow):
            for table, compute in (
                (RECOMMENDATION_PERFORMANCE, C.performance),
                (DRIFT, C.drift),
                (DATA_QUALITY, lambda q, r, d, _m: C.quality(q, r, d)),
            ):
                frame = compute(warehouse.query, REGION, days, replay.metrics_of).frame(table.column_names)
                assert len(frame), table.name
                frame["day"] = pd.to_datetime(frame["day"])
                warehouse.replace_rows(table, frame, {"region": REGION})
        for table in MONITOR_TABLES:
            assert _columns(snow, table) == _columns(duck, table) == table.column_names
            a, b = _rows(duck, table), _rows(snow, table)
            pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=1e-9)

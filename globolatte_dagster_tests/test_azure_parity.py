"""The same landed files give the same tables in both environments.

The raw layer (core/products, core/customers, core/calendar, raw/sales + raw/sales_rejects, raw/weather)
runs once with the local resources (folder + DuckDB) and once with `azure_resources()` (Blob on Azurite +
Snowflake IO manager on fakesnow); every table must be identical up to the case of column names.
"""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from globolatte_dagster.defs.ingestion.assets import sales, weather
from globolatte_dagster.defs.partitions import region_day_key
from globolatte_dagster.defs.reference.assets import calendar, customers, products
from globolatte_dagster.lib.schema import CALENDAR, CUSTOMERS, PRODUCTS, SALES, SALES_REJECTS, WEATHER
from globolatte_dagster.resources import local_resources
from globolatte_dagster.resources.azure import azure_resources
from globolatte_dagster_tests.conftest import CUSTOMERS_CSV, PRODUCTS_CSV, SAMPLE_EXPORT

pytestmark = [pytest.mark.azure, pytest.mark.filterwarnings("ignore:Arrow output:UserWarning")]
HEADER = SAMPLE_EXPORT.splitlines()[0].decode()
TABLES = (PRODUCTS, CUSTOMERS, CALENDAR, SALES, SALES_REJECTS, WEATHER)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

FILES = {
    "reference/products.csv": PRODUCTS_CSV,
    "reference/customers.csv": CUSTOMERS_CSV,
    # wrong and unknown business units, from the sample export
    "sales/america/2024-09-22/sample.csv": SAMPLE_EXPORT,
    # a second file of the day: other column order, an extra column, a guest sale, a multi-row transaction
    "sales/america/2024-09-22/store_2.csv": (
        b"payment_method,transaction_date,total_price,quantity,customer_id,product_id,business_unit,transaction_id,store\n"
        b"mobile,2024-09-22 17:05:10,7.00,2,,P002,BU_US,T100,NYC-5\n"
        b"mobile,2024-09-22 17:05:10,2.80,1,,P003,BU_US,T100,NYC-5\n"
        b'cash,2024-09-22 18:00:00,3.50,1,C002,P001,BU_US,T101,"NYC, 7th Ave"\n'
    ),
    # broken rows: bad quantity, negative price, off-day timestamp, unknown product, bad payment, duplicate, short row
    "sales/america/2024-09-23/day.csv": (
        HEADER + "\n"
        "T200,BU_US,P001,C001,1,3.50,2024-09-23 07:00:00,cash\n"
        "T201,BU_US,P001,C001,0,3.50,2024-09-23 07:10:00,cash\n"
        "T202,BU_US,P001,C001,1,-1,2024-09-23 07:20:00,cash\n"
        "T203,BU_US,P001,C001,1,3.50,2024-09-24 07:30:00,cash\n"
        "T204,BU_US,P999,C001,1,3.50,2024-09-23 07:40:00,cash\n"
        "T205,BU_US,P001,C001,1,3.50,2024-09-23 07:50:00,bitcoin\n"
        "T200,BU_US,P001,C001,1,3.50,2024-09-23 07:00:00,cash\n"
        "T206,BU_US,P001\n"
    ).encode(),
    "sales/canada/2024-09-22/toronto.csv": (
        HEADER + "\n"
        "T300,BU_CA,P002,C003,3,13.50,2024-09-22 12:00:00,debit_card\n"
        "T301,BU_CA,P003,,1,3.10,2024-09-22 12:30:00,credit_card\n"
    ).encode(),
    "weather/america/2024-09-22.csv": b"date,temp_max_c,temp_min_c,precip_mm\n2024-09-22,24.5,15.1,0\n",
    "weather/america/2024-09-23.csv": b"date,temp_max_c,temp_min_c,precip_mm\n2024-09-23,26,16.2,\n",
    "weather/canada/2024-09-22.csv": b"date,temp_max_c,temp_min_c,precip_mm\n2024-09-22,18.0,9.5,1.2\n",
}


def _run_raw_layer(resources: dict) -> None:
    landing = resources["landing"]
    for path, data in FILES.items():
        landing.write_bytes(path, data)
    assert dg.materialize([products, customers, calendar], resources=resources).success
    raw = [sales, weather, products]
    raw_keys = [dg.AssetKey(SALES.key), dg.AssetKey(SALES_REJECTS.key), dg.AssetKey(WEATHER.key)]
    america = {
        RANGE_START: str(region_day_key("america", "2024-09-22")),
        RANGE_END: str(region_day_key("america", "2024-09-23")),
    }
    assert dg.materialize(
        raw, selection=raw_keys, resources=resources, tags=america
    ).success  # one ranged run
    canada = str(region_day_key("canada", "2024-09-22"))
    for _ in range(2):  # a re-run replaces the partition
        assert dg.materialize(raw, selection=raw_keys, resources=resources, partition_key=canada).success


def _tables(warehouse) -> dict[str, pd.DataFrame]:
    out = {}
    for table in TABLES:
        df = warehouse.query(f"SELECT * FROM {table.schema}.{table.name}")
        df.columns = [c.lower() for c in df.columns]
        df = df[sorted(df.columns)]
        out[f"{table.schema}.{table.name}"] = df.sort_values(
            list(df.columns), na_position="first"
        ).reset_index(drop=True)
    return out


def test_local_and_azure_raw_layers_give_identical_tables(tmp_path: Path, monkeypatch, azure_env):
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("GLOBOLATTE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GLOBOLATTE_LANDING", str(tmp_path / "landing"))
    local = local_resources()
    local["hash_key"] = azure_resources()["hash_key"]  # the same key (GLOBOLATTE_HASH_KEY) on both sides
    _run_raw_layer(local)
    expected = _tables(local["warehouse"])

    azure = azure_resources()
    _run_raw_layer(azure)
    with dg.build_resources({"warehouse": azure["warehouse"]}) as built:
        actual = _tables(built.warehouse)

    assert len(expected["raw.sales"]) == 8 and len(expected["raw.sales_rejects"]) == 10
    assert len(expected["raw.weather"]) == 3 and expected["core.customers"]["email_hash"].notna().sum() == 2
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(actual[name], frame, check_dtype=True, obj=name)

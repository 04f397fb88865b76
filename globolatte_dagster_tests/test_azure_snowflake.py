"""The Snowflake side of GLOBOLATTE_ENV=azure against fakesnow: DDL, SQL with bound values, and the IO
manager's partitioned writes, reads and atomic partition replace."""

import dagster as dg
import pandas as pd
import pytest

import globolatte_dagster.resources.snowflake as sf
from globolatte_dagster.defs.partitions import (
    region_day,
    region_day_key,
    region_days_tags,
    region_of_region_day,
    region_partitions,
)
from globolatte_dagster.lib.schema import SCHEMAS, TABLES, WEATHER, Column, Table
from globolatte_dagster.resources.azure import azure_resources
from globolatte_dagster.resources.warehouse import DuckDBWarehouse

pytestmark = pytest.mark.azure
SNOWFLAKE_TYPES = {
    "text": "VARCHAR",
    "int": "NUMBER(38,0)",
    "float": "FLOAT",
    "date": "DATE",
    "timestamp": "TIMESTAMP_NTZ",
    "bool": "BOOLEAN",
}


@pytest.fixture
def sf_resources(fake_snowflake) -> dict:
    res = azure_resources()
    return {"warehouse": res["warehouse"], "warehouse_io_manager": res["warehouse_io_manager"]}


@pytest.fixture
def warehouse(sf_resources):
    with dg.build_resources({"warehouse": sf_resources["warehouse"]}) as built:
        yield built.warehouse


def _weather_asset(values: dict[tuple[str, str], float], fail: bool = False):
    @dg.asset(
        key=WEATHER.key,
        partitions_def=region_day,
        metadata={"partition_expr": {"region": "region", "day": "day"}},
        io_manager_key="warehouse_io_manager",
    )
    def weather(context: dg.AssetExecutionContext) -> pd.DataFrame:
        rows = []
        for key in context.partition_keys:
            k = region_day.get_partition_key_from_str(key) if isinstance(key, str) else key
            region, day = k.keys_by_dimension["region"], k.keys_by_dimension["day"]
            rows.append(
                {
                    "region": region,
                    "day": pd.Timestamp(day),
                    "temp_max_c": values[(region, day)],
                    "temp_min_c": 1.0,
                    "precip_mm": None,
                    "source_file": f"weather/{region}/{day}.csv",
                }
            )
        return pd.DataFrame(rows, columns=WEATHER.column_names)

    return weather


def _write(resources, values, region, day, **kw):
    return dg.materialize(
        [_weather_asset(values)], resources=resources, partition_key=str(region_day_key(region, day)), **kw
    )


def _weather_rows(warehouse) -> list[tuple]:
    df = warehouse.query("SELECT region, day, temp_max_c FROM raw.weather ORDER BY region, day")
    return [(r.region, r.day.date().isoformat(), r.temp_max_c) for r in df.itertuples()]


def test_ddl_creates_every_table_with_the_contract_types_idempotently(warehouse):
    names = warehouse.ensure_tables()
    assert warehouse.ensure_tables() == names  # idempotent
    assert {n.split(".")[0] for n in names} <= set(SCHEMAS)
    schemas = set(
        warehouse.query("SELECT schema_name FROM information_schema.schemata")["schema_name"].str.lower()
    )
    assert set(SCHEMAS) <= schemas
    for table in TABLES.values():
        cols = warehouse.query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [table.schema.upper(), table.name.upper()],
        )
        assert cols["column_name"].str.lower().tolist() == table.column_names, table.name
        described = {r[0].lower(): r for r in _describe(warehouse, table)}
        for col in table.columns:
            kind, nullable = described[col.name][1], described[col.name][3]
            assert kind.startswith(SNOWFLAKE_TYPES[col.type].split("(")[0]), (table.name, col.name, kind)
            assert (nullable == "Y") == col.nullable, (table.name, col.name)


def _describe(warehouse, table: Table) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.cursor().execute(f"DESCRIBE TABLE {table.schema}.{table.name}").fetchall()


@pytest.mark.parametrize("kind", ["snowflake", "duckdb"])
def test_the_same_sql_with_bound_values_runs_on_both_warehouses(kind, warehouse, tmp_path):
    wh = warehouse if kind == "snowflake" else DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))
    wh.ensure_tables()
    insert = "INSERT INTO raw.weather (region, day, temp_max_c, temp_min_c, precip_mm, source_file) VALUES (?, ?, ?, ?, ?, ?)"
    wh.execute(insert, ["canada", "2024-07-01", 28.5, 14.0, None, "weather/canada/2024-07-01.csv"])
    wh.execute(insert, ["canada", "2024-07-02", 31.0, 16.5, 2.5, "x'); DROP TABLE raw.weather; --"])
    df = wh.query(
        "SELECT region, day, COUNT(*) AS n, AVG(temp_max_c) AS t, MAX(source_file) AS f FROM raw.weather "
        "WHERE region = ? AND day >= ? GROUP BY region, day ORDER BY day",
        ["canada", "2024-07-01"],
    )
    assert df.columns.tolist() == ["region", "day", "n", "t", "f"]
    assert df["day"].dt.strftime("%Y-%m-%d").tolist() == ["2024-07-01", "2024-07-02"]
    assert df["t"].tolist() == [28.5, 31.0] and df["n"].tolist() == [1, 1]
    assert df["f"].iloc[1].startswith("x');")  # a bound value, never SQL


def test_region_day_writes_replace_their_slice_and_read_back_by_region(sf_resources, warehouse):
    values = {
        ("america", "2024-09-22"): 20.0,
        ("america", "2024-09-23"): 21.0,
        ("canada", "2024-09-22"): 15.0,
    }
    for region, day in values:
        _write(sf_resources, values, region, day)
    _write(sf_resources, {**values, ("america", "2024-09-22"): 25.5}, "america", "2024-09-22")  # re-run
    assert _weather_rows(warehouse) == [
        ("america", "2024-09-22", 25.5),
        ("america", "2024-09-23", 21.0),
        ("canada", "2024-09-22", 15.0),
    ]

    # one run over a range of days of one region (BackfillPolicy.single_run): a time-window slice
    newer = {**values, ("america", "2024-09-22"): 1.0, ("america", "2024-09-23"): 2.0}
    result = dg.materialize(
        [_weather_asset(newer)],
        resources=sf_resources,
        tags=region_days_tags("america", "2024-09-22", "2024-09-23"),
    )
    assert result.success
    assert _weather_rows(warehouse) == [
        ("america", "2024-09-22", 1.0),
        ("america", "2024-09-23", 2.0),
        ("canada", "2024-09-22", 15.0),
    ]

    # a region-partitioned reader gets every day of its region, typed like the local warehouse
    seen = {}

    @dg.asset(
        partitions_def=region_partitions,
        ins={"weather": dg.AssetIn(key=WEATHER.key, partition_mapping=region_of_region_day)},
    )
    def reader(weather: pd.DataFrame) -> None:
        seen["frame"] = weather

    dg.materialize(
        [_weather_asset(values), reader], selection=[reader], resources=sf_resources, partition_key="america"
    )
    frame = seen["frame"].sort_values("day").reset_index(drop=True)
    assert frame.columns.tolist() == WEATHER.column_names
    assert str(frame["day"].dtype) == "datetime64[us]" and frame["temp_max_c"].tolist() == [1.0, 2.0]
    assert frame["precip_mm"].isna().all() and frame["region"].eq("america").all()


def test_region_partitioned_table_with_partition_expr_region(sf_resources, warehouse, monkeypatch):
    table = Table(
        "ml",
        "segment_sizes",
        (
            Column("region", "text", False),
            Column("segment", "int", False),
            Column("customers", "int"),
            Column("as_of", "timestamp"),
        ),
        "region",
    )
    monkeypatch.setitem(TABLES, ("ml", "segment_sizes"), table)

    def build(n: int):
        @dg.asset(
            key=table.key,
            partitions_def=region_partitions,
            metadata={"partition_expr": "region"},
            io_manager_key="warehouse_io_manager",
        )
        def segment_sizes(context: dg.AssetExecutionContext) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "region": context.partition_key,
                    "segment": range(n),
                    "customers": [10] * n,
                    "as_of": pd.Timestamp("2024-09-22 23:59:59"),
                }
            )

        return segment_sizes

    for region in ("america", "mexico"):
        assert dg.materialize([build(3)], resources=sf_resources, partition_key=region).success
    assert dg.materialize([build(2)], resources=sf_resources, partition_key="america").success
    df = warehouse.query(
        "SELECT region, COUNT(*) AS n, MAX(as_of) AS t FROM ml.segment_sizes GROUP BY region ORDER BY region"
    )
    assert df["n"].tolist() == [2, 3]
    assert df["t"].tolist() == [pd.Timestamp("2024-09-22 23:59:59")] * 2
    assert _describe(warehouse, table)[1][1].startswith("NUMBER")  # created from lib.schema, not inferred


def test_failure_between_delete_and_insert_leaves_the_old_rows(sf_resources, warehouse, monkeypatch):
    values = {("america", "2024-09-22"): 20.0}
    _write(sf_resources, values, "america", "2024-09-22")
    before = _weather_rows(warehouse)
    observed = []
    real = sf.insert_from_staging_sql

    def fail_after_delete(target, staging, columns):
        # runs after the DELETE of the slice: a second session (a reader) must still see the old rows
        observed.append(_weather_rows(warehouse))
        return real(target, f"{staging}_DOES_NOT_EXIST", columns)

    monkeypatch.setattr(sf, "insert_from_staging_sql", fail_after_delete)
    result = _write(
        sf_resources, {("america", "2024-09-22"): 99.0}, "america", "2024-09-22", raise_on_error=False
    )

    assert not result.success
    assert observed == [before]  # a concurrent reader never saw the partition empty
    assert _weather_rows(warehouse) == before == [("america", "2024-09-22", 20.0)]
    leftovers = warehouse.query(
        "SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%STAGING%'"
    )
    assert leftovers.empty  # the staging table is dropped on failure too

    monkeypatch.setattr(sf, "insert_from_staging_sql", real)
    _write(sf_resources, {("america", "2024-09-22"): 99.0}, "america", "2024-09-22")
    assert _weather_rows(warehouse) == [("america", "2024-09-22", 99.0)]


def test_stock_snowflake_io_manager_loses_the_partition_on_the_same_failure(
    fake_snowflake, warehouse, monkeypatch
):
    """Why the wrapper exists (dagster issue 14091): the stock manager deletes, then fails to write."""
    import dagster_snowflake_pandas.snowflake_pandas_type_handler as handler
    from dagster_snowflake_pandas import SnowflakePandasIOManager

    from globolatte_dagster.resources.azure import snowflake_connection_config

    warehouse.ensure_tables()
    stock = {"warehouse_io_manager": SnowflakePandasIOManager(**snowflake_connection_config())}
    _write(stock, {("america", "2024-09-22"): 20.0}, "america", "2024-09-22")
    assert len(_weather_rows(warehouse)) == 1

    def broken_write(*args, **kwargs):
        raise RuntimeError("injected: the warehouse went away during the write")

    monkeypatch.setattr(handler, "write_pandas", broken_write)
    assert not _write(
        stock, {("america", "2024-09-22"): 99.0}, "america", "2024-09-22", raise_on_error=False
    ).success
    assert _weather_rows(warehouse) == []  # the old rows are gone

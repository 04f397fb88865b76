"""The raw layer end to end: landing files -> validated rows and rejects in the warehouse."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest

from globolatte_dagster.defs.ingestion.assets import sales, weather
from globolatte_dagster.defs.partitions import region_day_key, region_days_tags
from globolatte_dagster.defs.reference.assets import calendar, customers, products
from globolatte_dagster_tests.conftest import CUSTOMERS_CSV, PRODUCTS_CSV, SAMPLE_EXPORT

SALES_OUTPUTS = [dg.AssetKey(["raw", "sales"]), dg.AssetKey(["raw", "sales_rejects"])]
HEADER = SAMPLE_EXPORT.splitlines()[0].decode()


def _seed_reference(landing, resources) -> None:
    landing.write_bytes("reference/products.csv", PRODUCTS_CSV)
    landing.write_bytes("reference/customers.csv", CUSTOMERS_CSV)
    assert dg.materialize([products, customers], resources=resources).success


def _load(resources, region: str, day: str, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [sales, products],
        selection=SALES_OUTPUTS,
        resources=resources,
        partition_key=str(region_day_key(region, day)),
        raise_on_error=raise_on_error,
    )


def _table(warehouse_path: str, sql: str) -> pd.DataFrame:
    with duckdb.connect(warehouse_path, read_only=True) as conn:
        return conn.execute(sql).df()


def test_sample_export_loads_two_rows_and_rejects_three_with_reasons(landing, resources, warehouse_path):
    _seed_reference(landing, resources)
    landing.write_bytes("sales/america/2024-09-22/sample.csv", SAMPLE_EXPORT)

    result = _load(resources, "america", "2024-09-22")

    loaded = _table(warehouse_path, "SELECT transaction_id FROM raw.sales ORDER BY 1")
    assert loaded["transaction_id"].tolist() == ["T001", "T005"]
    rejects = _table(warehouse_path, "SELECT * FROM raw.sales_rejects ORDER BY source_line")
    assert rejects["source_line"].tolist() == [3, 4, 5]
    assert set(rejects["source_file"]) == {"sales/america/2024-09-22/sample.csv"}
    assert rejects["column_name"].tolist() == ["business_unit"] * 3
    reasons = rejects["reason"].tolist()
    assert "BU_CA" in reasons[0] and "canada" in reasons[0] and "america" in reasons[0]
    assert "BU_MX" in reasons[1] and "mexico" in reasons[1]
    assert reasons[2].startswith("unknown business unit") and "BU_BR" in reasons[2]
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["rows_loaded"].value == 2
    assert meta["rejected_by_reason"].value == {"unknown business unit": 1, "wrong business unit": 2}
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["has_rows"] and checks["unique_transaction_product"] and checks["products_known"]
    assert checks["rejected_share"] is False  # 3 of 5 rows rejected is far over 10%


def test_rematerialising_three_times_leaves_rows_exactly_once(landing, resources, warehouse_path):
    _seed_reference(landing, resources)
    landing.write_bytes("sales/america/2024-09-22/sample.csv", SAMPLE_EXPORT)
    for _ in range(3):
        _load(resources, "america", "2024-09-22")
    counts = _table(
        warehouse_path,
        "SELECT (SELECT count(*) FROM raw.sales) AS s, (SELECT count(*) FROM raw.sales_rejects) AS r",
    )
    assert counts.iloc[0].tolist() == [2, 3]


def test_failure_midway_leaves_the_previous_rows(landing, resources, warehouse_path, monkeypatch):
    _seed_reference(landing, resources)
    landing.write_bytes("sales/america/2024-09-22/sample.csv", SAMPLE_EXPORT)
    _load(resources, "america", "2024-09-22")
    before = _table(warehouse_path, "SELECT * FROM raw.sales ORDER BY transaction_id")

    # A new upload with one more valid row; the insert fails after the partition's delete ran.
    landing.write_bytes(
        "sales/america/2024-09-22/late.csv",
        (HEADER + "\nT006,BU_US,P003,C001,1,2.80,2024-09-22 15:00:00,cash\n").encode(),
    )
    from globolatte_dagster.resources.io_managers import _ConformingDuckDBArrowTypeHandler

    def explode(self, context, table_slice, obj, connection):
        connection.register("partial", obj.slice(0, 1))
        connection.execute(f"INSERT INTO {table_slice.schema}.{table_slice.table} SELECT * FROM partial")
        raise RuntimeError("injected failure after delete and a partial insert")

    monkeypatch.setattr(_ConformingDuckDBArrowTypeHandler, "handle_output", explode)
    result = _load(resources, "america", "2024-09-22", raise_on_error=False)
    assert not result.success
    after = _table(warehouse_path, "SELECT * FROM raw.sales ORDER BY transaction_id")
    pd.testing.assert_frame_equal(before, after)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
        (SAMPLE_EXPORT.replace(b",", b";"), "wrong delimiter"),
        (b"transaction_id,product_id\nT1,P001\n", "missing required columns"),
        (b"\xff\xfe" + "transaction_id".encode("utf-16-le"), "not UTF-8"),
        ("transaction_id;x\n".encode("latin-1") + b"caf\xe9\n", "not UTF-8"),
        (SAMPLE_EXPORT.replace(b"\n", b"\r"), "CR-only line endings"),
        (SAMPLE_EXPORT + b"T9," + b"x" * 5_000_000 + b"\n", "5,000,003 bytes long"),
        (SAMPLE_EXPORT.splitlines()[0] + b"\n" + b"y" * 5_000_000, "5,000,000 bytes long"),
    ],
    ids=[
        "empty",
        "binary",
        "semicolons",
        "missing-columns",
        "utf16",
        "latin1",
        "cr-only",
        "5mb-line",
        "5mb-no-newline",
    ],
)
def test_unparseable_file_fails_the_partition_naming_the_file_and_loads_nothing(
    landing, resources, warehouse_path, content, problem
):
    _seed_reference(landing, resources)
    landing.write_bytes("sales/america/2024-09-22/sample.csv", SAMPLE_EXPORT)
    _load(resources, "america", "2024-09-22")
    landing.write_bytes("sales/america/2024-09-22/broken.csv", content)

    result = _load(resources, "america", "2024-09-22", raise_on_error=False)

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
    description = (
        failure.step_failure_data.user_failure_data.description
        if failure.step_failure_data.user_failure_data
        else ""
    )
    text = f"{message} {description}"
    assert "sales/america/2024-09-22/broken.csv" in text
    assert problem in text
    # the previous load of the partition is untouched, nothing of the new files was loaded
    assert _table(warehouse_path, "SELECT count(*) AS n FROM raw.sales")["n"].iloc[0] == 2


def test_valid_files_beyond_the_simulator_load(landing, resources, warehouse_path):
    """Numeric product ids, guest sales, multi-row transactions, extra columns, other column order."""
    landing.write_bytes(
        "reference/products.csv",
        b"product_id,product_name,category,price\n101,Espresso,coffee,2.0\n202,Bagel,food,3.0\n",
    )
    landing.write_bytes("reference/customers.csv", CUSTOMERS_CSV)
    assert dg.materialize([products, customers], resources=resources).success
    landing.write_bytes(
        "sales/canada/2025-02-03/pos_export.csv",
        b"payment_method,transaction_date,total_price,quantity,customer_id,product_id,business_unit,transaction_id,till\n"
        b"cash,2025-02-03 07:01:00,2.92,1,,101,BU_CA,900,till-1\n"
        b"mobile,2025-02-03 07:05:00,2.92,1,C001,101,BU_CA,901,till-2\n"
        b"mobile,2025-02-03 07:05:00,4.38,1,C001,202,BU_CA,901,till-2\n",
    )
    result = _load(resources, "canada", "2025-02-03")
    rows = _table(warehouse_path, "SELECT * FROM raw.sales ORDER BY transaction_id, product_id")
    assert rows["product_id"].tolist() == ["101", "101", "202"]
    assert rows["customer_id"].isna().tolist() == [True, False, False]  # the guest sale is kept, as NULL
    assert rows["extra"].str.contains("till").all()
    assert result.get_asset_materialization_events()[0].materialization.metadata["rows_rejected"].value == 0
    # a day with sales but no weather is fine: weather reports it missing, it does not fail
    w = dg.materialize(
        [weather], resources=resources, partition_key=str(region_day_key("canada", "2025-02-03"))
    )
    meta = w.get_asset_materialization_events()[0].materialization.metadata
    assert "2025-02-03|canada" in meta["days_missing"].value  # Dagster's spelling of the key
    assert meta["weather"].value == "no weather: no usable file for these days"


def test_invalid_weather_values_are_rejected_with_the_reason_on_the_asset_page(
    landing, resources, warehouse_path
):
    header = b"date,temp_max_c,temp_min_c,precip_mm\n"
    landing.write_bytes("weather/mexico/2025-05-01.csv", header + b"2025-05-01,29,14,0\n")
    landing.write_bytes("weather/mexico/2025-05-02.csv", header + b"2025-05-02,NaN,14,0\n")
    landing.write_bytes("weather/mexico/2025-05-03.csv", header + b"2025-05-03,95,14,0\n")  # Fahrenheit?
    landing.write_bytes("weather/mexico/2025-05-04.csv", header + b"2025-05-04,25,14,-3\n")
    result = dg.materialize(
        [weather], resources=resources, tags=region_days_tags("mexico", "2025-05-01", "2025-05-04")
    )
    loaded = _table(warehouse_path, "SELECT CAST(day AS VARCHAR) AS day FROM raw.weather")
    assert loaded["day"].tolist() == ["2025-05-01"]
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "values_valid" and not check.passed
    reasons = check.metadata["reasons"].value
    assert "weather/mexico/2025-05-02.csv: line 2: temp_max_c 'NaN' is not a finite number" in reasons
    assert "weather/mexico/2025-05-03.csv: line 2: temp_max_c 95.0 is outside -60..60 °C" in reasons
    assert "weather/mexico/2025-05-04.csv: line 2: precip_mm -3.0 is negative" in reasons


def test_calendar_marks_national_holidays_per_country(resources, warehouse_path):
    assert dg.materialize([calendar], resources=resources).success
    cal = _table(
        warehouse_path,
        "SELECT region, is_holiday FROM core.calendar WHERE day = DATE '2025-07-01' ORDER BY region",
    )
    # Canada Day is a holiday only in Canada
    assert cal.set_index("region")["is_holiday"].to_dict() == {
        "america": False,
        "canada": True,
        "mexico": False,
    }


def test_customers_lose_name_and_email(landing, resources, warehouse_path):
    _seed_reference(landing, resources)
    cust = _table(warehouse_path, "SELECT * FROM core.customers ORDER BY customer_id")
    assert "email" not in cust.columns and "customer_name" not in cust.columns
    assert not cust.astype(str).apply(lambda c: c.str.contains("@|Lima", regex=True)).any().any()
    assert cust["email_hash"].iloc[0] != cust["email_hash"].iloc[1]
    assert pd.isna(cust["email_hash"].iloc[2])


REASON_OF_KIND = {
    "unknown_product": "unknown product",
    "bad_quantity": "bad quantity",
    "wrong_business_unit": "wrong business unit",
    "bad_timestamp": "bad timestamp",
}


def _upload_tree(root, landing) -> int:
    """Copy a simulated landing folder into the landing zone under test; returns the sales data rows."""
    rows = 0
    for path in sorted(root.rglob("*.csv")):
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        landing.write_bytes(rel, data)
        if rel.startswith("sales/"):
            rows += data.count(b"\n") - 1
    return rows


def test_simulated_broken_rows_are_exactly_the_rejects(landing, resources, warehouse_path, tmp_path):
    from datetime import date

    from globolatte_dagster.simulate import simulate

    sim_root, truth = tmp_path / "sim", tmp_path / "truth"
    simulate(sim_root, truth, start=date(2025, 3, 1), days=6, customers=150, seed=11, broken_share=0.03)
    total_rows = _upload_tree(sim_root, landing)
    assert dg.materialize([products, customers], resources=resources).success
    for region in ("america", "canada", "mexico"):
        result = dg.materialize(
            [sales, products],
            selection=SALES_OUTPUTS,
            resources=resources,
            tags=region_days_tags(region, "2025-03-01", "2025-03-06"),
        )
        assert result.success

    broken = pd.read_csv(truth / "broken_rows.csv", dtype=str)
    assert len(broken) > 10
    rejects = _table(warehouse_path, "SELECT source_file, source_line, reason FROM raw.sales_rejects")
    got = {(f, int(n)): r for f, n, r in rejects.itertuples(index=False)}
    want = {
        (f, int(n)): REASON_OF_KIND[k] for f, n, k in broken[["file", "line", "kind"]].itertuples(index=False)
    }
    assert set(got) == set(want)
    assert all(got[key].startswith(reason) for key, reason in want.items())
    loaded = _table(warehouse_path, "SELECT count(*) AS n FROM raw.sales")["n"].iloc[0]
    assert loaded == total_rows - len(broken)

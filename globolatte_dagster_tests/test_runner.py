"""`globolatte run` on real-world shapes of landings: old history, gaps, one unit, a broken file."""

from __future__ import annotations

import re

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner

from globolatte_dagster.cli import main
from globolatte_dagster.defs.ingestion.assets import raw_assets
from globolatte_dagster.defs.partitions import region_day_partitions
from globolatte_dagster.defs.reference.assets import calendar, customers, products
from globolatte_dagster.resources.landing import LocalLandingZone
from globolatte_dagster.runner import IDLE, consecutive_runs, print_summary, run_everything
from globolatte_dagster_tests.conftest import CUSTOMERS_CSV, PRODUCTS_CSV, SAMPLE_EXPORT

HEADER = SAMPLE_EXPORT.splitlines()[0]


def _sales(day: str, unit: str = "BU_US", tid: str = "T1") -> bytes:
    return HEADER + f"\n{tid},{unit},P001,C001,1,3.50,{day} 08:00:00,cash\n".encode()


def _ingestion_defs(resources: dict, first_day: str) -> dg.Definitions:
    """The reference and raw assets only: what the runner loads before anything downstream."""
    raw = raw_assets(region_day_partitions(first_day))
    return dg.Definitions(assets=[products, customers, calendar, *raw], resources=resources)


def _reference(landing) -> None:
    landing.write_bytes("reference/products.csv", PRODUCTS_CSV)
    landing.write_bytes("reference/customers.csv", CUSTOMERS_CSV)


def test_consecutive_runs_never_cover_a_day_without_files():
    days = ["2019-04-01", "2019-04-02", "2019-04-05", "2019-04-06", "2019-04-09"]
    assert consecutive_runs(days) == [
        ("2019-04-01", "2019-04-02", 2),
        ("2019-04-05", "2019-04-06", 2),
        ("2019-04-09", "2019-04-09", 1),
    ]


def test_an_old_export_with_gaps_and_no_weather_loads_exactly_its_days(landing, resources, warehouse_path):
    _reference(landing)
    days = ["2019-04-01", "2019-04-02", "2019-04-05"]
    for day in days:
        landing.write_bytes(f"sales/america/{day}/outlet.csv", _sales(day))
    instance = dg.DagsterInstance.ephemeral()
    lines: list[str] = []
    summary = run_everything(_ingestion_defs(resources, "2015-01-01"), instance, echo=lines.append)

    assert summary.success, summary.problems
    loaded = instance.get_materialized_partitions(dg.AssetKey(["raw", "sales"]))
    assert sorted(loaded) == [f"{d}|america" for d in days]  # the gap days are not empty partitions
    assert [(r.partitions, r.status) for r in summary.runs if r.what == "downstream"] == [
        ("canada", IDLE),
        ("mexico", IDLE),
    ]
    with duckdb.connect(warehouse_path, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw.weather").fetchone() == (0,)  # exists, empty
        assert conn.execute("SELECT count(*) FROM raw.sales").fetchone() == (3,)


def test_a_day_before_the_first_partition_day_is_reported_as_stray_not_a_crash(landing, resources):
    _reference(landing)
    landing.write_bytes("sales/america/2019-04-01/outlet.csv", _sales("2019-04-01"))
    landing.write_bytes("sales/america/2020-02-01/outlet.csv", _sales("2020-02-01"))
    landing.write_bytes(
        "weather/america/2019-04-01.csv", b"date,temp_max_c,temp_min_c,precip_mm\n2019-04-01,20,10,0\n"
    )
    instance = dg.DagsterInstance.ephemeral()
    lines: list[str] = []
    summary = run_everything(_ingestion_defs(resources, "2020-01-01"), instance, echo=lines.append)

    assert summary.success, summary.problems
    assert summary.stray == [
        "sales/america/2019-04-01: before the first partition day 2020-01-01 (GLOBOLATTE_FIRST_DAY)",
        "weather/america/2019-04-01: before the first partition day 2020-01-01 (GLOBOLATTE_FIRST_DAY)",
    ]
    assert sorted(instance.get_materialized_partitions(dg.AssetKey(["raw", "sales"]))) == [
        "2020-02-01|america"
    ]


def test_a_broken_file_fails_the_run_naming_region_and_step(landing, resources):
    _reference(landing)
    landing.write_bytes("sales/canada/2025-02-01/pos.csv", _sales("2025-02-01", "BU_CA"))
    landing.write_bytes("sales/canada/2025-02-01/broken.csv", b"\x00\x01binary")
    instance = dg.DagsterInstance.ephemeral()
    summary = run_everything(_ingestion_defs(resources, "2015-01-01"), instance, echo=lambda _: None)
    assert not summary.success
    assert len(summary.problems) == 1
    problem = summary.problems[0]
    assert problem.startswith("canada: raw/sales failed: sales: Partition not loaded")
    assert "sales/canada/2025-02-01/broken.csv" in problem


def test_the_summary_shows_failed_checks_and_idle_regions(landing, resources):
    _reference(landing)
    landing.write_bytes("sales/america/2024-09-22/sample.csv", SAMPLE_EXPORT)
    instance = dg.DagsterInstance.ephemeral()
    summary = run_everything(_ingestion_defs(resources, "2015-01-01"), instance, echo=lambda _: None)
    lines: list[str] = []
    print_summary(summary, instance, resources["warehouse"], echo=lines.append)
    text = "\n".join(lines)
    assert "check failed: raw/sales rejected_share (error)" in text  # 3 of 5 rows rejected
    assert "canada" in text and "no sales yet" in text
    assert "FAILED" not in text
    assert "result: ok" in text


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """`globolatte run` on a fresh home holding only the seed's 5-row sample for one unit."""
    home = tmp_path_factory.mktemp("sample_home")
    landing = LocalLandingZone(root=str(home / "landing"))
    _reference(landing)
    landing.write_bytes("sales/america/2024-09-22/sample.csv", SAMPLE_EXPORT)
    mp = pytest.MonkeyPatch()
    mp.setenv("GLOBOLATTE_HOME", str(home))
    mp.delenv("DAGSTER_HOME", raising=False)
    mp.delenv("GLOBOLATTE_LANDING", raising=False)
    try:
        result = CliRunner().invoke(main, ["run"], catch_exceptions=False)
    finally:
        mp.undo()
    return result


def test_one_unit_leaves_the_other_regions_idle_not_failed(sample_run):
    out = sample_run.output
    assert (
        "downstream canada: no sales have landed" in out and "downstream mexico: no sales have landed" in out
    )
    assert not any(
        line.startswith("FAILED") and ("canada" in line or "mexico" in line) for line in out.splitlines()
    )
    # whatever fails names its region and its step (today: the model chain on two customers)
    problems = re.findall(r"^FAILED  (\w+): (.*)$", out, flags=re.MULTILINE)
    assert all(
        region == "america" and re.search(r"\b(ml|core|mart|serving)/\w+", why) for region, why in problems
    )
    assert sample_run.exit_code == (1 if problems else 0)


def test_one_day_of_one_unit_is_enough_and_exits_zero(sample_run):
    assert sample_run.exit_code == 0, sample_run.output

"""The whole code location loads, and every asset carries what the UI shows."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.lib.schema import TABLES


def test_definitions_load_locally_with_the_documented_graph(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    # the chain of DESIGN.md's asset graph, from the landed files to the served lists and their monitors
    assert {
        "raw/sales",
        "raw/sales_rejects",
        "raw/weather",
        "core/products",
        "core/customers",
        "core/calendar",
        "core/purchase_history",
        "core/customer_features",
        "ml/customer_segments",
        "ml/segment_model",
        "ml/preference_model",
        "ml/registered_model",
        "serving/scoring_endpoint",
        "mart/recommendations",
        "monitor/recommendation_performance",
        "monitor/drift",
        "monitor/data_quality",
    } == keys
    # ...wired as documented: each stage reads the one before it
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
        for k in graph.get_all_asset_keys()
    }
    assert "core/customer_features" in parents["ml/customer_segments"]
    assert "ml/segment_model" in parents["ml/preference_model"]
    assert "ml/preference_model" in parents["ml/registered_model"]
    assert "ml/registered_model" in parents["serving/scoring_endpoint"]
    assert "ml/registered_model" in parents["mart/recommendations"]
    assert {"raw/sales", "mart/recommendations"} <= parents["monitor/recommendation_performance"]
    # one constant per asset key in globolatte_dagster/keys.py, and no constant without an asset
    constants = {v.to_user_string() for v in vars(asset_keys).values() if isinstance(v, dg.AssetKey)}
    assert constants == keys
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["sales_landing_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["sales_landing_sensor"].minimum_interval_seconds == 30
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == dg.AssetKey(["raw", "sales"])}
    assert {
        "has_rows",
        "unique_transaction_product",
        "timestamps_on_day",
        "rejected_share",
        "products_known",
    } <= checks


def test_every_asset_has_kinds_group_and_a_description(defs: dg.Definitions):
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        assert spec.kinds, f"{name} has no kinds"
        assert spec.group_name and spec.group_name != "default", f"{name} has no group"
        assert spec.description and "\n" not in spec.description.strip(), f"{name} needs a one-line docstring"


def test_warehouse_tables_are_named_as_their_assets(defs: dg.Definitions):
    keys = {tuple(k.path) for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for schema, table in TABLES:
        assert (schema, table) in keys, f"table {schema}.{table} has no asset of the same name"


def test_unknown_environment_is_a_clear_error(monkeypatch):
    from globolatte_dagster import settings

    monkeypatch.setenv("GLOBOLATTE_ENV", "staging")
    with pytest.raises(ValueError, match="local' or 'azure"):
        settings.env()


def _first_day(defs: dg.Definitions, key: list[str]) -> str:
    multi = defs.resolve_asset_graph().get(dg.AssetKey(key)).partitions_def
    return next(d.partitions_def for d in multi.partitions_defs if d.name == "day").get_first_partition_key()


def test_the_first_partition_day_is_read_when_the_definitions_load(monkeypatch):
    from globolatte_dagster.definitions import defs as load

    monkeypatch.setenv("GLOBOLATTE_FIRST_DAY", "not-a-day")
    with pytest.raises(Exception) as err:  # Dagster wraps it with the module that failed to load
        load()
    causes = [err.value]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    assert any(
        isinstance(c, ValueError)
        and "GLOBOLATTE_FIRST_DAY must be a YYYY-MM-DD day, not 'not-a-day'" in str(c)
        for c in causes
    )

    monkeypatch.setenv("GLOBOLATTE_FIRST_DAY", "2019-03-01")
    loaded = load()
    assert _first_day(loaded, ["raw", "sales"]) == "2019-03-01"
    assert _first_day(loaded, ["raw", "weather"]) == "2019-03-01"
    monkeypatch.delenv("GLOBOLATTE_FIRST_DAY")
    assert _first_day(load(), ["raw", "sales"]) < "2023-01-01"  # the default reaches well before 2023


def test_every_warehouse_table_exists_before_its_feed_lands(tmp_path):
    """No weather has landed: the features' LEFT JOIN raw.weather still finds the (empty) table."""
    from globolatte_dagster.resources.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(database=str(tmp_path / "wh.duckdb"))
    with dg.build_resources({"warehouse": warehouse}) as built:
        tables = built.warehouse.query(
            "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables"
        )["t"].tolist()
        assert {f"{s}.{t}" for s, t in TABLES} <= set(tables)
        assert {
            "raw.weather",
            "core.customer_features",
            "ml.customer_segments",
            "mart.recommendations",
        } <= set(tables)
        assert built.warehouse.query("SELECT count(*) AS n FROM raw.weather")["n"].iloc[0] == 0


def test_importing_any_module_reads_no_setting():
    """Every module imports in a fresh process whose settings are all invalid: they are read at load time."""
    import subprocess
    import sys

    import globolatte_dagster

    root = Path(globolatte_dagster.__file__).parent
    modules = sorted(
        ".".join(("globolatte_dagster", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        for p in root.rglob("*.py")
    )
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('imported', len(sys.argv) - 1)"
    bad = {
        "GLOBOLATTE_ENV": "moon",
        "GLOBOLATTE_AUTOMATION": "sometimes",
        "GLOBOLATTE_FIRST_DAY": "not-a-day",
        "GLOBOLATTE_UPLOAD_DEADLINE": "whenever",
        "GLOBOLATTE_TRAINING": "by-hand",
    }
    env = {k: v for k, v in os.environ.items() if k not in bad} | bad
    done = subprocess.run(
        [sys.executable, "-c", code, *modules], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"imported {len(modules)}"
    # ...and the same settings fail loudly when the definitions load
    with_bad = subprocess.run(
        [sys.executable, "-c", "from globolatte_dagster.definitions import defs; defs()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert with_bad.returncode != 0 and "must be" in with_bad.stderr


def test_no_asset_key_literal_outside_the_keys_module():
    """Asset keys are named through globolatte_dagster/keys.py, never spelled out in another module."""
    import re

    import globolatte_dagster

    root = Path(globolatte_dagster.__file__).parent
    schemas = "raw|core|ml|serving|mart|monitor"
    literal = re.compile(rf"AssetKey\(\s*\[|\[\s*[\"'](?:{schemas})[\"']\s*,\s*[\"']\w+[\"']\s*\]")
    found = [
        f"{path.relative_to(root)}:{n}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        if path.name != "keys.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert found == []


def test_automation_is_declared_in_one_module():
    """Conditions and automation sensors live in defs/automation.py; assets only name them."""
    import globolatte_dagster

    root = Path(globolatte_dagster.__file__).parent
    declared = [
        f"{path.relative_to(root)}:{n}"
        for path in sorted(root.rglob("*.py"))
        if path.relative_to(root).as_posix() != "defs/automation.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "AutomationCondition" in line
    ]
    assert declared == []

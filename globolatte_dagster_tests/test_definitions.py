"""The whole code location loads, and every asset carries what the UI shows."""

from __future__ import annotations

import dagster as dg
import pytest

from globolatte_dagster.lib.schema import TABLES


def test_definitions_load_locally_with_the_documented_graph(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "raw/sales",
        "raw/sales_rejects",
        "raw/weather",
        "core/products",
        "core/customers",
        "core/calendar",
    } <= keys
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

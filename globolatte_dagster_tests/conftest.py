"""Shared fixtures: a landing zone, a DuckDB warehouse and the resources that tie them together."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from globolatte_dagster.resources.io_managers import WarehouseDuckDBIOManager
from globolatte_dagster.resources.landing import LandingZone, LocalLandingZone
from globolatte_dagster.resources.secrets import HashKey
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.azure_fixtures import (  # noqa: F401 (fixtures and the marker hook)
    azure_env,
    azurite,
    azurite_container,
    azurite_landing,
    fake_snowflake,
    snowflake_private_key,
)
from globolatte_dagster_tests.azure_fixtures import (
    pytest_collection_modifyitems as mark_azurite_tests,
)

# Files that mostly wait on servers (dagster dev's daemon, the webserver, model servers) start first, so
# that under `-n 2 --dist loadfile` their waiting overlaps the CPU-bound files instead of ending the suite
# (`make test` passes `--no-loadscope-reorder`: by default xdist sends the files with the most tests first).
START_FIRST = (
    "test_first_run.py",
    "test_ui.py",
    "test_make_dev.py",
    "test_monitor_freshness_ui.py",
    "test_endpoint_http.py",
    "test_monitor_scenarios.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_azurite_tests(config, items)
    rank = {name: i for i, name in enumerate(START_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


PRODUCTS_CSV = b"""product_id,product_name,category,price,serving
P001,Latte,coffee,3.50,hot
P002,Iced Latte,coffee,4.00,iced
P003,Croissant,pastry,2.80,none
"""
SAMPLE_EXPORT = b"""transaction_id,business_unit,product_id,customer_id,quantity,total_price,transaction_date,payment_method
T001,BU_US,P001,C001,2,5.00,2024-09-22 08:30:00,credit_card
T002,BU_CA,P002,C002,1,3.50,2024-09-22 09:15:00,debit_card
T003,BU_MX,P003,C001,4,12.00,2024-09-22 10:00:00,cash
T004,BU_BR,P001,C003,3,7.50,2024-09-22 11:45:00,credit_card
T005,BU_US,P002,C002,5,17.50,2024-09-22 13:00:00,credit_card
"""
CUSTOMERS_CSV = b"""customer_id,customer_name,email,location,signup_date
C001,Ana Lima,ana@example.com,New York,2023-01-05
C002,Bo Chen,bo@example.com,New York,2023-03-09
C003,Cy Diaz,,Toronto,
"""

LANDING_KINDS = ["local", "azurite"]


@pytest.fixture(params=LANDING_KINDS)
def landing(request, tmp_path: Path) -> LandingZone:
    """An empty landing zone of each kind (a folder; Azurite where the azure tests add it)."""
    if request.param == "local":
        return LocalLandingZone(root=str(tmp_path / "landing"))
    return request.getfixturevalue(f"{request.param}_landing")


@pytest.fixture
def warehouse_path(tmp_path: Path) -> str:
    return str(tmp_path / "warehouse.duckdb")


@pytest.fixture
def resources(landing: LandingZone, warehouse_path: str, tmp_path: Path) -> dict:
    return {
        "landing": landing,
        "warehouse": DuckDBWarehouse(database=warehouse_path),
        "warehouse_io_manager": WarehouseDuckDBIOManager(database=warehouse_path),
        "hash_key": HashKey(key="test-key-not-a-secret"),
    }


@pytest.fixture
def defs() -> dg.Definitions:
    from globolatte_dagster.definitions import defs as load

    return load()

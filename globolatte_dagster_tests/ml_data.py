"""Generated data for the ML tests: simulator landing files loaded into a warehouse without Dagster.

`load_warehouse` parses landed files with the same lib functions the ingestion assets use and writes
`raw.sales`, `raw.weather`, `core.products`, `core.customers` and `core.calendar`, so feature SQL can be
tested on DuckDB (and on fakesnow, through `FakesnowWarehouse`) quickly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from globolatte_dagster.lib import contract
from globolatte_dagster.lib.ingest import LandedFile, parse_weather, validate_sales
from globolatte_dagster.lib.reference import build_calendar, parse_customers, parse_products
from globolatte_dagster.lib.schema import CALENDAR, CUSTOMERS, PRODUCTS, SALES, WEATHER, Table
from globolatte_dagster.resources.warehouse import Warehouse

START = date(2025, 1, 1)  # the simulator CLI's default start
SEED = 7


@dataclass(frozen=True)
class SimCase:
    landing: Path
    truth: Path
    start: date
    days: int
    customers: int
    seed: int

    @property
    def last_day(self) -> date:
        return self.start + timedelta(days=self.days - 1)


def simulate_case(
    root: Path,
    days: int,
    customers: int,
    seed: int = SEED,
    start: date | None = None,
    regions: Sequence[str] | None = None,
    profile: str = "friendly",
    scenario: str | None = None,
    scenario_from: date | None = None,
) -> SimCase:
    """A simulated landing zone and its ground truth (`start` and `regions`: the profile's defaults)."""
    from globolatte_dagster.simulate import simulate
    from globolatte_dagster.simulate.profiles import PROFILES

    landing, truth = root / "landing", root / "truth"
    start = start or PROFILES[profile].start_date
    simulate(
        landing,
        truth,
        start,
        days,
        customers,
        seed,
        regions=regions,
        profile=profile,
        scenario=scenario,
        scenario_from=scenario_from,
    )
    return SimCase(landing, truth, start, days, customers, seed)


def landed_frames(landing: Path) -> dict[str, pd.DataFrame]:
    """The warehouse tables of everything in a landing folder, parsed by the ingestion lib."""
    products = parse_products("reference/products.csv", (landing / "reference/products.csv").read_bytes())
    customers = parse_customers(
        "reference/customers.csv", (landing / "reference/customers.csv").read_bytes(), "test-key"
    )
    files, weather = [], []
    for path in sorted(landing.rglob("*.csv")):
        rel = path.relative_to(landing).as_posix()
        try:
            lp = contract.parse_landing_path(rel)
        except contract.ContractError:
            continue
        if lp.kind == "sales":
            files.append(LandedFile(rel, lp.region, lp.day, path.read_bytes()))
        elif lp.kind == "weather":
            weather.append(parse_weather(LandedFile(rel, lp.region, lp.day, path.read_bytes())))
    sales = validate_sales(files, products["product_id"]).valid
    days = pd.to_datetime(sales["day"])
    calendar = build_calendar(days.min().date() - timedelta(days=400), days.max().date() + timedelta(days=30))
    return {
        "sales": sales[SALES.column_names],
        "weather": (
            pd.concat(weather, ignore_index=True)[WEATHER.column_names]
            if weather
            else pd.DataFrame(columns=WEATHER.column_names)
        ),
        "products": products,
        "customers": customers,
        "calendar": calendar,
    }


TABLE_OF = {
    "sales": SALES,
    "weather": WEATHER,
    "products": PRODUCTS,
    "customers": CUSTOMERS,
    "calendar": CALENDAR,
}


def load_duckdb(database: str, frames: dict[str, pd.DataFrame]) -> None:
    conn = duckdb.connect(database)
    try:
        for schema in ("raw", "core", "ml", "mart"):
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for name, frame in frames.items():
            table = TABLE_OF[name]
            conn.execute(f"DROP TABLE IF EXISTS {table.schema}.{table.name}")
            conn.execute(table.ddl("duckdb"))
            conn.register("frame_view", frame[table.column_names])
            conn.execute(f"INSERT INTO {table.schema}.{table.name} SELECT * FROM frame_view")
            conn.unregister("frame_view")
    finally:
        conn.close()


class FakesnowWarehouse(Warehouse):
    """A Snowflake-dialect warehouse over fakesnow, for tests (call inside `fakesnow.patch()`)."""

    database: str = "GLOBOLATTE"

    @property
    def dialect(self) -> str:
        return "snowflake"

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        import snowflake.connector

        conn = snowflake.connector.connect(database=self.database, schema="PUBLIC", paramstyle="qmark")
        try:
            yield conn.cursor()
        finally:
            conn.close()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with self._cursor() as cur:
            cur.execute(sql, list(params or []))
            return cur.fetch_pandas_all()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self._cursor() as cur:
            cur.execute(sql, list(params or []))

    def load(self, frames: dict[str, pd.DataFrame]) -> None:
        import snowflake.connector
        from snowflake.connector.pandas_tools import write_pandas

        conn = snowflake.connector.connect(database=self.database, schema="PUBLIC", paramstyle="qmark")
        try:
            cur = conn.cursor()
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            for schema in ("raw", "core", "ml", "mart"):
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for name, frame in frames.items():
                table: Table = TABLE_OF[name]
                cur.execute(table.ddl("snowflake"))
                out = frame[table.column_names].copy()
                out.columns = [c.upper() for c in out.columns]
                write_pandas(
                    conn, out, table.name.upper(), schema=table.schema.upper(), database=self.database
                )
        finally:
            conn.close()

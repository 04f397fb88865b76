"""SQL run in the warehouse: DuckDB locally, Snowflake in production.

Assets that compute in the warehouse (features, DDL, counts) use `Warehouse`; DataFrame tables go through
the IO managers. Parameters are always bound (`?` placeholders), never formatted into SQL text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
import duckdb
import pandas as pd

from globolatte_dagster.lib.schema import SCHEMAS, TABLES, Table


class Warehouse(dg.ConfigurableResource):
    """Abstract warehouse: `query` returns a DataFrame, `execute` runs a statement, `dialect` names it."""

    @property
    def dialect(self) -> str:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        raise NotImplementedError

    def ensure_tables(self, tables: Sequence[Table] | None = None) -> list[str]:
        """Create the schemas and tables (idempotent). Returns the qualified names."""
        tables = list(tables if tables is not None else TABLES.values())
        for schema in SCHEMAS:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for table in tables:
            self.execute(table.ddl(self.dialect))
        return [f"{t.schema}.{t.name}" for t in tables]


class DuckDBWarehouse(Warehouse):
    """The local warehouse file. Connections retry while another process holds DuckDB's write lock."""

    database: str
    lock_timeout_s: float = 120.0

    @property
    def dialect(self) -> str:
        return "duckdb"

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                conn = duckdb.connect(self.database, read_only=read_only)
                break
            except duckdb.IOException as exc:  # the file is locked by another writer
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with self.connect() as conn:
            return conn.execute(sql, list(params or [])).df()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self.connect() as conn:
            conn.execute(sql, list(params or []))

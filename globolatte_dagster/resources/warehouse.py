"""SQL run in the warehouse: DuckDB locally, Snowflake in production.

Assets that compute in the warehouse (features, DDL, counts) use `Warehouse`; DataFrame tables go through
the IO managers. Parameters are always bound (`?` placeholders), never formatted into SQL text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd

from globolatte_dagster.lib.schema import SCHEMAS, TABLES, Table


def connect_duckdb(
    database: str, read_only: bool = False, lock_timeout_s: float = 120.0, config: dict | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, waiting while another process holds DuckDB's write lock.

    Only the lock is retried; any other error (a missing folder, a corrupt file) raises at once.
    """
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(database, read_only=read_only, config=config or {})
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def registered_tables() -> list[Table]:
    """Every warehouse table: the raw and core tables, and those the ML and mart modules register."""
    import globolatte_dagster.defs.mart.assets
    import globolatte_dagster.lib.features
    import globolatte_dagster.lib.segments  # noqa: F401 (importing them registers their tables)

    return list(TABLES.values())


_ENSURED: set[str] = set()  # warehouses whose tables this process has created


class Warehouse(dg.ConfigurableResource):
    """Abstract warehouse: `query` returns a DataFrame, `execute` runs a statement, `dialect` names it.

    Every table is created (empty) before a run's first statement, so that SQL over a feed that has not
    landed (no weather yet) reads no rows instead of failing on a missing table.
    """

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        key = self._ensured_key()
        if key is None or key not in _ENSURED:
            self.ensure_tables()
            if key is not None:
                _ENSURED.add(key)

    def _ensured_key(self) -> str | None:
        """A name for the warehouse under which this process remembers that its tables exist (None: always
        create them)."""
        return None

    @property
    def dialect(self) -> str:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        raise NotImplementedError

    def transaction(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run statements in one transaction: all of them take effect, or none."""
        raise NotImplementedError

    def replace_rows(self, table: Table, frame: pd.DataFrame, where: dict[str, Any]) -> int:
        """Replace the rows of `table` matching `where` (column = value) by `frame`, in one transaction."""
        raise NotImplementedError

    @staticmethod
    def where_clause(table: Table, where: dict[str, Any]) -> tuple[str, list[Any]]:
        """`col = ? AND ...` for columns declared by the table (identifiers from code, values bound)."""
        unknown = [c for c in where if c not in table.column_names]
        if unknown or not where:
            raise ValueError(f"{table.schema}.{table.name}: cannot filter on {unknown or 'nothing'}")
        return " AND ".join(f"{c} = ?" for c in where), list(where.values())

    def ensure_tables(self, tables: Sequence[Table] | None = None) -> list[str]:
        """Create the schemas and tables (idempotent). Returns the qualified names."""
        tables = list(tables if tables is not None else registered_tables())
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

    def _ensured_key(self) -> str | None:
        if self.database == ":memory:":
            return None
        path = Path(self.database)
        # a deleted warehouse file (make clean, a test's new folder) is created again
        return f"duckdb:{path.resolve()}" if path.exists() else None

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = connect_duckdb(self.database, read_only=read_only, lock_timeout_s=self.lock_timeout_s)
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

    def transaction(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                for sql, params in statements:
                    conn.execute(sql, list(params))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def replace_rows(self, table: Table, frame: pd.DataFrame, where: dict[str, Any]) -> int:
        cond, params = self.where_clause(table, where)
        target = f"{table.schema}.{table.name}"
        cols = ", ".join(table.column_names)
        with self.connect() as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
            conn.execute(table.ddl(self.dialect))
            conn.register("_replacement", frame[table.column_names])
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute(f"DELETE FROM {target} WHERE {cond}", params)
                conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM _replacement")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                conn.unregister("_replacement")
        return len(frame)

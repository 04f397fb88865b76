"""DataFrame tables in the warehouse, with partition replace as one transaction.

The stock database IO managers delete a partition's slice and then insert its rows as two separate steps
(dagster issue 14091): a failure in between leaves the partition empty. Here the delete and the insert run
in one transaction, tables are created from `lib.schema` before the first write, and frames are written in
the table's column order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd
from dagster import InputContext, OutputContext
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

from globolatte_dagster.lib.schema import TABLES
from globolatte_dagster.resources.warehouse import connect_duckdb


def conform(table_slice: TableSlice, obj: pd.DataFrame) -> pd.DataFrame:
    """The frame in the declared column order; a missing or unexpected column is a clear error."""
    table = TABLES.get((table_slice.schema, table_slice.table))
    if table is None:
        return obj
    missing = [c for c in table.column_names if c not in obj.columns]
    unexpected = [c for c in obj.columns if c not in table.column_names]
    if missing or unexpected:
        raise ValueError(
            f"{table_slice.schema}.{table_slice.table}: frame columns do not match lib.schema "
            f"(missing {missing}, unexpected {unexpected})"
        )
    return obj[table.column_names]


class _ConformingDuckDBPandasTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
        return super().handle_output(context, table_slice, conform(table_slice, obj), connection)


class _AtomicDuckDbClient(DuckDbClient):
    @staticmethod
    @contextmanager
    def connect(context, table_slice) -> Iterator:
        # The stock client leaves the connection open when the body raises; this one always closes it.
        conn = connect_duckdb(
            context.resource_config["database"],
            config={"custom_user_agent": "dagster", **context.resource_config["connection_config"]},
        )
        try:
            if isinstance(context, InputContext):
                yield conn
                return
            conn.execute("BEGIN TRANSACTION")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @staticmethod
    def ensure_schema_exists(context: OutputContext, table_slice: TableSlice, connection) -> None:
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {table_slice.schema}")
        table = TABLES.get((table_slice.schema, table_slice.table))
        if table is not None:
            connection.execute(table.ddl("duckdb"))


class WarehouseDuckDBIOManager(DuckDBPandasIOManager):
    """DuckDB pandas IO manager whose partition replace is atomic and whose tables come from lib.schema."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_ConformingDuckDBPandasTypeHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_AtomicDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=pd.DataFrame,
            io_manager_name="WarehouseDuckDBIOManager",
        )

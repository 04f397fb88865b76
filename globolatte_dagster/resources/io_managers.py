"""DataFrame tables in the warehouse, with partition replace as one transaction.

The stock database IO managers delete a partition's slice and then insert its rows as two separate steps
(dagster issue 14091): a failure in between leaves the partition empty. Here the delete and the insert run
in one transaction, tables are created from `lib.schema` before the first write, and frames are written in
the table's column order. Outputs may be pandas frames or Arrow tables (the raw layer's bulk loads).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd
import pyarrow as pa
from dagster import InputContext, MetadataValue, OutputContext, TableColumn, TableSchema
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

from globolatte_dagster.lib.schema import TABLES
from globolatte_dagster.resources.warehouse import connect_duckdb


def conform_columns(table_slice: TableSlice, columns: Sequence[str]) -> list[str]:
    """The declared column order; a missing or unexpected column is a clear error."""
    table = TABLES.get((table_slice.schema, table_slice.table))
    if table is None:
        return list(columns)
    missing = [c for c in table.column_names if c not in columns]
    unexpected = [c for c in columns if c not in table.column_names]
    if missing or unexpected:
        raise ValueError(
            f"{table_slice.schema}.{table_slice.table}: columns do not match lib.schema "
            f"(missing {missing}, unexpected {unexpected})"
        )
    return list(table.column_names)


def conform(table_slice: TableSlice, obj: pd.DataFrame) -> pd.DataFrame:
    """The frame in the declared column order (see `conform_columns`)."""
    return obj[conform_columns(table_slice, list(obj.columns))]


class _ConformingDuckDBPandasTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
        return super().handle_output(context, table_slice, conform(table_slice, obj), connection)


class _ConformingDuckDBArrowTypeHandler(DbTypeHandler[pa.Table]):
    """Arrow tables straight into DuckDB: no pandas frame between the validation query and the table.

    DuckDB scans the Arrow buffers in place, so a region-year of sales is inserted without the copy and
    the object columns a pandas frame would need.
    """

    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pa.Table, connection):
        target = f"{table_slice.schema}.{table_slice.table}"
        declared = TABLES.get((table_slice.schema, table_slice.table))
        columns = conform_columns(table_slice, obj.column_names)
        name = f"_arrow_{uuid.uuid4().hex[:12]}"
        connection.register(name, obj)
        try:
            if declared is None:
                connection.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM {name} LIMIT 0")
            select = ", ".join(f'"{c}"' for c in columns)
            connection.execute(f"INSERT INTO {target} ({select}) SELECT {select} FROM {name}")
        finally:
            connection.unregister(name)
        context.add_output_metadata(
            {
                **(
                    TableMetadataSet(partition_row_count=obj.num_rows, storage_kind="duckdb")
                    if context.has_partition_key
                    else TableMetadataSet(row_count=obj.num_rows, storage_kind="duckdb")
                ),
                "dataframe_columns": MetadataValue.table_schema(
                    TableSchema(columns=[TableColumn(name=f.name, type=str(f.type)) for f in obj.schema])
                ),
            }
        )

    def load_input(self, context: InputContext, table_slice: TableSlice, connection) -> pa.Table:
        if table_slice.partition_dimensions and len(context.asset_partition_keys) == 0:
            return pa.table({})
        return connection.execute(DuckDbClient.get_select_statement(table_slice)).to_arrow_table()

    @property
    def supported_types(self):
        return [pa.Table]


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
        return [_ConformingDuckDBPandasTypeHandler(), _ConformingDuckDBArrowTypeHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_AtomicDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=pd.DataFrame,
            io_manager_name="WarehouseDuckDBIOManager",
        )

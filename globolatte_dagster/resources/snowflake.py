"""The warehouse on Snowflake: SQL through `SnowflakeResource`, DataFrame tables through an IO manager.

`WarehouseSnowflakeIOManager` extends `SnowflakePandasIOManager` so that a partition replace is atomic. The
stock manager deletes a partition's slice and then writes its rows as two separate steps (dagster issue
14091), and `write_pandas` runs DDL (a stage, a COPY), which in Snowflake commits any open transaction. So:

1. the target table is created from `lib.schema` (idempotent DDL) before anything else;
2. the frame goes to a fresh transient staging table with `write_pandas` (its DDL commits nothing of ours);
3. `BEGIN; DELETE <slice>; INSERT INTO <target> SELECT ... FROM <staging>; COMMIT` — one transaction, so a
   reader sees the old rows or the new rows, never an empty or doubled partition; any error rolls back;
4. the staging table is dropped.

Values are bound as `?` parameters (qmark), the same SQL text that the DuckDB warehouse runs.
"""

from __future__ import annotations

import decimal
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import snowflake.connector.pandas_tools as pandas_tools
from dagster import InputContext, OutputContext
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.definitions.partitions.utils import TimeWindow
from dagster._core.storage.db_io_manager import DbClient, DbIOManager, DbTypeHandler, TableSlice
from dagster_snowflake import SnowflakeResource
from dagster_snowflake_pandas import SnowflakePandasIOManager

from globolatte_dagster.lib.schema import TABLES, Table
from globolatte_dagster.resources.io_managers import conform
from globolatte_dagster.resources.warehouse import Warehouse

# Snowflake result-metadata type codes (snowflake.connector.constants.FIELD_TYPES).
_FIXED, _REAL, _TEXT, _DATE, _TIMESTAMP, _BOOLEAN = 0, 1, 2, 3, 4, 13
_TIMESTAMPS = {_TIMESTAMP, 6, 7, 8}  # TIMESTAMP, _LTZ, _TZ, _NTZ


# ---- frames in and out ---------------------------------------------------------------------------------
def _typed(series: pd.Series, logical: str) -> pd.Series:
    """A column as the local DuckDB warehouse returns it, so that both environments give equal frames."""
    if logical in ("date", "timestamp"):
        out = pd.to_datetime(series)
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert("UTC").dt.tz_localize(None)
        return out.astype("datetime64[us]")
    if logical == "int":
        values = pd.to_numeric(series.map(lambda v: int(v) if isinstance(v, decimal.Decimal) else v))
        return values.astype("Int64") if values.isna().any() else values.astype("int64")
    if logical == "float":
        return pd.to_numeric(series.map(lambda v: float(v) if isinstance(v, decimal.Decimal) else v)).astype(
            "float64"
        )
    if logical == "bool":
        return series.astype("boolean") if series.isna().any() else series.astype(bool)
    return series.astype(object).where(series.notna(), None)


def _logical_from_description(col: Any) -> str:
    code = col.type_code
    if code == _FIXED:
        return "int" if not col.scale else "float"
    if code == _REAL:
        return "float"
    if code == _DATE:
        return "date"
    if code in _TIMESTAMPS:
        return "timestamp"
    if code == _BOOLEAN:
        return "bool"
    return "text"


def frame_from_cursor(cursor: Any) -> pd.DataFrame:
    """Rows of an executed cursor as a DataFrame with lower-case column names and DuckDB-like dtypes."""
    rows = cursor.fetchall()
    description = cursor.description or []
    names = [col.name.lower() for col in description]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data = {
        name: _typed(pd.Series(list(values), dtype=object), _logical_from_description(col))
        for name, values, col in zip(names, columns, description, strict=True)
    }
    return pd.DataFrame(data, columns=names)


def _to_snowflake(frame: pd.DataFrame, table: Table | None) -> pd.DataFrame:
    """The frame as `write_pandas` should stage it: DATE columns as dates, upper-case column names."""
    out = frame.copy()
    if table is not None:
        for col in table.columns:
            if col.type == "date":
                out[col.name] = (
                    pd.to_datetime(out[col.name]).dt.date.astype(object).where(out[col.name].notna(), None)
                )
            elif col.type == "timestamp":
                out[col.name] = pd.to_datetime(out[col.name]).astype("datetime64[us]")
    return out.rename(columns=str.upper)


# ---- partition slices with bound values ----------------------------------------------------------------
def slice_where(table_slice: TableSlice) -> tuple[str, list[Any]]:
    """`WHERE` text and parameters of a table slice; identifiers come from asset metadata (code)."""
    clauses, params = [], []
    for dim in table_slice.partition_dimensions:
        if isinstance(dim.partitions, TimeWindow):
            start, end = dim.partitions
            clauses.append(f"{dim.partition_expr} >= ? AND {dim.partition_expr} < ?")
            params += [_naive(start), _naive(end)]
        else:
            keys = list(dim.partitions)
            clauses.append(f"{dim.partition_expr} IN ({', '.join('?' for _ in keys)})")
            params += keys
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _naive(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _qualified(table_slice: TableSlice, table: str | None = None) -> str:
    name = table or table_slice.table
    return f"{table_slice.database}.{table_slice.schema}.{name}".upper()


def insert_from_staging_sql(target: str, staging: str, columns: Sequence[str]) -> str:
    cols = ", ".join(c.upper() for c in columns)
    return f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging}"


# ---- the IO manager ------------------------------------------------------------------------------------
class _AtomicSnowflakeDbClient(DbClient):
    @staticmethod
    @contextmanager
    def connect(context, table_slice: TableSlice) -> Iterator:
        fields = set(SnowflakeResource.model_fields) | {"schema"}
        config = {
            k: v
            for k, v in (context.resource_config or {}).items()
            if k in fields and k not in ("schema", "schema_")
        }
        resource = SnowflakeResource(schema=table_slice.schema, paramstyle="qmark", **config)
        with resource.get_connection(raw_conn=False) as conn:
            yield conn

    @staticmethod
    def ensure_schema_exists(context: OutputContext, table_slice: TableSlice, connection) -> None:
        cursor = connection.cursor()
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {table_slice.database}.{table_slice.schema}".upper())
        table = TABLES.get((table_slice.schema, table_slice.table))
        if table is not None:
            cursor.execute(
                table.ddl("snowflake").replace(f"{table.schema}.{table.name}", _qualified(table_slice), 1)
            )

    @staticmethod
    def delete_table_slice(context: OutputContext, table_slice: TableSlice, connection) -> None:
        """Nothing here: the delete runs in the handler's transaction, together with the insert."""

    @staticmethod
    def get_select_statement(table_slice: TableSlice) -> str:
        cols = ", ".join(table_slice.columns) if table_slice.columns else "*"
        where, _ = slice_where(table_slice)
        return f"SELECT {cols} FROM {_qualified(table_slice)}{where}"

    @staticmethod
    def get_table_name(table_slice: TableSlice) -> str:
        return _qualified(table_slice)


class _AtomicSnowflakePandasTypeHandler(DbTypeHandler[pd.DataFrame]):
    def handle_output(
        self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection
    ) -> Mapping[str, Any]:
        table = TABLES.get((table_slice.schema, table_slice.table))
        frame = conform(table_slice, obj)
        target = _qualified(table_slice)
        staging_name = f"{table_slice.table}__staging_{uuid.uuid4().hex[:12]}".upper()
        staging = _qualified(table_slice, staging_name)
        cursor = connection.cursor()
        failed = False
        try:
            if table is not None:
                cursor.execute(f"CREATE TRANSIENT TABLE {staging} LIKE {target}")
            if not frame.empty or table is None:
                pandas_tools.write_pandas(
                    conn=connection,
                    df=_to_snowflake(frame, table),
                    table_name=staging_name,
                    schema=table_slice.schema.upper(),
                    database=table_slice.database.upper() if table_slice.database else None,
                    auto_create_table=table is None,
                    table_type="transient",
                    use_logical_type=True,
                    quote_identifiers=False,
                )
            if table is None:  # a table outside lib.schema: shaped like its first frame
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {target} LIKE {staging}")
            where, params = slice_where(table_slice)
            cursor.execute("BEGIN")
            try:
                cursor.execute(f"DELETE FROM {target}{where}", params)
                cursor.execute(insert_from_staging_sql(target, staging, list(frame.columns)))
                cursor.execute("COMMIT")
            except BaseException:
                with suppress(Exception):  # the original error matters, not a failed rollback
                    cursor.execute("ROLLBACK")
                raise
        except BaseException:
            failed = True
            raise
        finally:
            try:
                cursor.execute(f"DROP TABLE IF EXISTS {staging}")
            except Exception:
                if not failed:
                    raise
        rows = int(frame.shape[0])
        return {
            **(
                TableMetadataSet(partition_row_count=rows, storage_kind="snowflake")
                if context.has_partition_key
                else TableMetadataSet(row_count=rows, storage_kind="snowflake")
            ),
            "dataframe_columns": dg.MetadataValue.table_schema(
                dg.TableSchema(
                    columns=[dg.TableColumn(name=str(n), type=str(t)) for n, t in frame.dtypes.items()]
                )
            ),
        }

    def load_input(self, context: InputContext, table_slice: TableSlice, connection) -> pd.DataFrame:
        if table_slice.partition_dimensions and len(context.asset_partition_keys) == 0:
            return pd.DataFrame()
        cursor = connection.cursor()
        _, params = slice_where(table_slice)
        cursor.execute(_AtomicSnowflakeDbClient.get_select_statement(table_slice), params)
        frame = frame_from_cursor(cursor)
        table = TABLES.get((table_slice.schema, table_slice.table))
        if table is not None:  # the declared types, not what a possibly empty result suggests
            for col in table.columns:
                if col.name in frame.columns:
                    frame[col.name] = _typed(frame[col.name], col.type)
        return frame

    @property
    def supported_types(self):
        return [pd.DataFrame]


class _AtomicSnowflakeArrowTypeHandler(DbTypeHandler[pa.Table]):
    """Arrow tables (the raw layer's bulk loads) through the same staging-table swap as pandas frames."""

    _frames = _AtomicSnowflakePandasTypeHandler()

    def handle_output(
        self, context: OutputContext, table_slice: TableSlice, obj: pa.Table, connection
    ) -> Mapping[str, Any]:
        return self._frames.handle_output(context, table_slice, obj.to_pandas(), connection)

    def load_input(self, context: InputContext, table_slice: TableSlice, connection) -> pa.Table:
        frame = self._frames.load_input(context, table_slice, connection)
        return pa.Table.from_pandas(frame, preserve_index=False)

    @property
    def supported_types(self):
        return [pa.Table]


class WarehouseSnowflakeIOManager(SnowflakePandasIOManager):
    """Snowflake pandas IO manager whose partition replace is one transaction and whose tables come from lib.schema."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_AtomicSnowflakePandasTypeHandler(), _AtomicSnowflakeArrowTypeHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_AtomicSnowflakeDbClient(),
            io_manager_name="WarehouseSnowflakeIOManager",
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=pd.DataFrame,
        )


# ---- SQL run in the warehouse --------------------------------------------------------------------------
class SnowflakeWarehouse(Warehouse):
    """SQL in Snowflake through `SnowflakeResource`, with `?` parameters as on DuckDB."""

    snowflake: SnowflakeResource

    @property
    def dialect(self) -> str:
        return "snowflake"

    @contextmanager
    def connect(self) -> Iterator[Any]:
        if self.snowflake.paramstyle != "qmark":
            raise ValueError(
                "SnowflakeWarehouse binds `?` parameters: configure SnowflakeResource(paramstyle='qmark')"
            )
        # Resolves `dg.EnvVar`s also when the resource is used outside a run (the CLI summary).
        with self.snowflake.process_config_and_initialize().get_connection() as conn:
            yield conn

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with self.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(sql, list(params) if params else None)
            return frame_from_cursor(cursor)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self.connect() as conn:
            conn.cursor().execute(sql, list(params) if params else None)

    def transaction(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        with self.connect() as conn:
            run_in_transaction(conn.cursor(), statements)

    def replace_rows(self, table: Table, frame: pd.DataFrame, where: dict[str, Any]) -> int:
        with self.connect() as conn:
            return replace_rows_via_staging(conn, table, frame, self.where_clause(table, where))


def run_in_transaction(cursor: Any, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """BEGIN; statements; COMMIT, rolling back on any error (the original error is raised)."""
    cursor.execute("BEGIN")
    try:
        for sql, params in statements:
            cursor.execute(sql, list(params) if params else None)
        cursor.execute("COMMIT")
    except BaseException:
        with suppress(Exception):
            cursor.execute("ROLLBACK")
        raise


def replace_rows_via_staging(
    conn: Any, table: Table, frame: pd.DataFrame, where: tuple[str, list[Any]]
) -> int:
    """Rows matching `where` replaced by `frame` in one transaction, the frame staged with `write_pandas`.

    `write_pandas` runs DDL (which commits in Snowflake), so it writes to a transient staging table first;
    the delete and the insert from the staging table then run in one transaction.
    """
    cursor = conn.cursor()
    target = f"{table.schema}.{table.name}".upper()
    staging_name = f"{table.name}__staging_{uuid.uuid4().hex[:12]}".upper()
    staging = f"{table.schema}.{staging_name}".upper()
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}".upper())
    cursor.execute(table.ddl("snowflake"))
    cursor.execute(f"CREATE TRANSIENT TABLE {staging} LIKE {target}")
    try:
        if len(frame):
            pandas_tools.write_pandas(
                conn=conn,
                df=_to_snowflake(frame[table.column_names], table),
                table_name=staging_name,
                schema=table.schema.upper(),
                use_logical_type=True,
                quote_identifiers=False,
            )
        cond, params = where
        run_in_transaction(
            cursor,
            [
                (f"DELETE FROM {target} WHERE {cond}", params),
                (insert_from_staging_sql(target, staging, table.column_names), []),
            ],
        )
    finally:
        cursor.execute(f"DROP TABLE IF EXISTS {staging}")
    return len(frame)

"""Replay a simulated unit day by day, as the platform lives it: serve the lists, land the day, monitor it.

The whole landing zone is loaded into DuckDB once; every step reads only what was known on its day (the
champion is trained on the history up to the day before, the monitors read the day and what came before).
A champion is retrained by a policy: `alert` (after each monitored day whose performance or feature-drift
check fails, what the retrain-on-alert automation does), `daily` or `never`. Models are registered in a real local
registry, so the monitors find the champion's hold-out figure and training window where the assets do.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
from threadpoolctl import threadpool_limits

from globolatte_dagster.defs.mart.assets import RECOMMENDATIONS
from globolatte_dagster.lib.model_store import LocalRegistryStore
from globolatte_dagster.lib.monitor import compute as C
from globolatte_dagster.lib.monitor import drift as Dr
from globolatte_dagster.lib.monitor import performance as P
from globolatte_dagster.lib.recommend import data as D
from globolatte_dagster.lib.recommend.tournament import train_region
from globolatte_dagster.lib.recommend.training import TrainParams
from globolatte_dagster.lib.schema import DATA_QUALITY, DRIFT, RECOMMENDATION_PERFORMANCE
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.ml_data import SimCase, landed_frames, load_duckdb
from globolatte_dagster_tests.serving_fixtures import build_purchase_history

FAST = TrainParams(
    holdout_days=7, n_boot=200, candidates=("popularity", "repeat", "recency_repeat"), lookback_days=365
)


@dataclass
class DayLog:
    day: date
    champion: str
    performance: str | None  # the top list's rolling alert
    feature_drift: list[str]  # features whose drift alerted
    context_drift: list[str]
    prediction_drift: bool
    quality: list[str]
    retrained_after: bool = False


@dataclass
class Replay:
    case: SimCase
    root: Path
    region: str
    policy: str = "alert"
    params: TrainParams = FAST
    drift_params: Dr.DriftParams = field(default_factory=Dr.DriftParams)
    perf_params: P.PerformanceParams = field(default_factory=P.PerformanceParams)
    log: list[DayLog] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.database = str(self.root / "warehouse.duckdb")
        if not Path(self.database).exists():
            load_duckdb(self.database, landed_frames(self.case.landing))
            build_purchase_history(self.warehouse, [self.region])
            self.warehouse.ensure_tables()
        self.store = LocalRegistryStore(self.root / f"registry-{self.region}-{self.policy}")
        self.model = None
        self.conn = duckdb.connect(self.database)  # one connection for the whole replay (speed)
        for table in (RECOMMENDATIONS, RECOMMENDATION_PERFORMANCE, DRIFT, DATA_QUALITY):
            self.conn.execute(f"DELETE FROM {table.schema}.{table.name} WHERE region = ?", [self.region])

    @property
    def warehouse(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(database=self.database)

    def query(self, sql: str, params=None) -> pd.DataFrame:
        return self.conn.execute(sql, list(params or [])).df()

    def replace(self, table, frame: pd.DataFrame, where: dict) -> None:
        """What `Warehouse.replace_rows` does, on the replay's connection."""
        cond, params = DuckDBWarehouse.where_clause(table, where)
        self.conn.register("_replacement", frame[table.column_names])
        self.conn.execute("BEGIN TRANSACTION")
        self.conn.execute(f"DELETE FROM {table.schema}.{table.name} WHERE {cond}", params)
        cols = ", ".join(table.column_names)
        self.conn.execute(f"INSERT INTO {table.schema}.{table.name} ({cols}) SELECT {cols} FROM _replacement")
        self.conn.execute("COMMIT")
        self.conn.unregister("_replacement")

    def close(self) -> None:
        self.conn.close()

    def metrics_of(self, model_version: str) -> dict | None:
        version = model_version.rsplit(":", 1)[-1]
        try:
            return self.store.metrics(self.region, version)
        except (FileNotFoundError, OSError):
            return None

    def train(self, until: date) -> None:
        with threadpool_limits(limits=1):
            history = D.load_history(self.query, self.region, self.params.lookback_days, last_day=until)
            model = train_region(history, self.params).model
        version = self.store.register(self.region, model, model.metrics, {"replay": True}).version
        self.store.set_alias(self.region, "champion", version)
        self.model = copy.deepcopy(model)

    def serve(self, day: date) -> None:
        lists = self.model.lists(day).assign(
            region=self.region, for_date=pd.Timestamp(day), model_version=self.model.model_version
        )
        self.replace(RECOMMENDATIONS, lists, {"region": self.region, "for_date": day.isoformat()})

    def monitor(self, day: date) -> DayLog:
        q = self.query
        for table, result in (
            (
                RECOMMENDATION_PERFORMANCE,
                C.performance(q, self.region, [day], self.metrics_of, self.perf_params),
            ),
            (DRIFT, C.drift(q, self.region, [day], self.metrics_of, self.drift_params)),
            (DATA_QUALITY, C.quality(q, self.region, [day])),
        ):
            frame = result.rows.get(day, pd.DataFrame(columns=table.column_names))
            self.replace(table, frame, {"region": self.region, "day": day.isoformat()})
        perf = self.table(RECOMMENDATION_PERFORMANCE, day)
        drift = self.table(DRIFT, day)
        dq = self.table(DATA_QUALITY, day)
        top = perf[perf["list"] == "top"]["alert"]
        alerted = drift[drift["alert"].astype(bool)]
        return DayLog(
            day,
            self.model.model_version,
            top.iloc[0] if len(top) and isinstance(top.iloc[0], str) else None,
            sorted(
                f"{f}:{m}"
                for f, m, s in zip(alerted["feature"], alerted["metric"], alerted["signal"], strict=True)
                if s == "feature"
            ),
            sorted(alerted.loc[alerted["signal"] == "context", "feature"]),
            bool((alerted["signal"] == "prediction").any()),
            sorted(dq.loc[dq["alert"].astype(bool), "metric"]),
        )

    def table(self, table, day: date | None = None) -> pd.DataFrame:
        sql = f"SELECT * FROM {table.schema}.{table.name} WHERE region = ?"
        params: list = [self.region]
        if day is not None:
            sql += " AND day = CAST(? AS DATE)"
            params.append(day.isoformat())
        return self.query(sql + " ORDER BY day", params)

    def run(self, first: date, last: date) -> list[DayLog]:
        """Champion trained on the days before `first`; then each day served, landed and monitored."""
        self.train(first - timedelta(days=1))
        day = first
        while day <= last:
            self.serve(day)
            entry = self.monitor(day)
            now_failing = entry.performance is not None or bool(entry.feature_drift)
            # retrain-on-alert: each monitored day whose performance or feature-drift check fails
            retrain = self.policy == "daily" or (self.policy == "alert" and now_failing)
            if retrain and day < last:
                self.train(day)
                entry.retrained_after = True
            self.log.append(entry)
            day += timedelta(days=1)
        return self.log

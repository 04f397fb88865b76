"""The monitor tables' rows for a region and a set of landed days, read from the warehouse.

The monitor assets call these; so do the scenario tests, which replay days one at a time. `metrics_of` maps a
served `model_version` (`globolatte-<region>:<n>`) to its registry metrics (None when unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from globolatte_dagster.lib.monitor import drift as Dr
from globolatte_dagster.lib.monitor import performance as P
from globolatte_dagster.lib.monitor import quality as Q
from globolatte_dagster.lib.monitor import sources as S
from globolatte_dagster.lib.recommend.data import Query
from globolatte_dagster.lib.schema import DATA_QUALITY, DRIFT, RECOMMENDATION_PERFORMANCE, Table

MetricsOf = Callable[[str], dict | None]


@dataclass
class Result:
    """Rows per monitored day, and why a day gave none."""

    rows: dict[date, pd.DataFrame] = field(default_factory=dict)
    skipped: dict[date, str] = field(default_factory=dict)

    def frame(self, columns: Sequence[str]) -> pd.DataFrame:
        frames = [f for f in self.rows.values() if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))


def days_to_monitor(
    landed: Sequence[date], monitored: Sequence[date], recent: int, requested: Sequence[date] = ()
) -> list[date]:
    """Landed days not yet monitored, the last `recent` landed days (late corrections), and any requested."""
    landed = sorted(set(landed))
    wanted = (set(landed) - set(monitored)) | set(landed[-recent:] if recent > 0 else []) | set(requested)
    return sorted(d for d in wanted if d in set(landed))


def _frame(rows: list[dict], region: str, day: date, columns: Sequence[str]) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=list(columns))
    out.insert(0, "day", pd.Timestamp(day))
    out.insert(0, "region", region)
    return out[list(columns)]


def performance(
    query: Query,
    region: str,
    days: Sequence[date],
    metrics_of: MetricsOf,
    p: P.PerformanceParams | None = None,
) -> Result:
    """`monitor.recommendation_performance` rows of the days, with the rolling alert of each."""
    p = p or P.PerformanceParams()
    result = Result()
    if not days:
        return result
    history = S.load_history(query, region, min(days) - timedelta(days=p.lookback_days), max(days))
    cols = RECOMMENDATION_PERFORMANCE.column_names
    for day in sorted(days):
        served = S.served_lists(query, region, day)
        if served.empty:
            result.skipped[day] = "no lists were served for this day"
            continue
        result.rows[day] = _frame(P.day_performance(history, served, day, p.recent_days), region, day, cols)
    new = result.frame(cols)
    if new.empty:
        return result
    earlier = _stored(
        query, RECOMMENDATION_PERFORMANCE, region, min(days) - timedelta(days=p.rolling_days), max(days)
    )
    earlier = earlier[~pd.to_datetime(earlier["day"]).dt.date.isin(set(result.rows))]
    parts = [f for f in (earlier, new) if len(f)]
    table = pd.concat(parts, ignore_index=True).sort_values(["day", "list"], ignore_index=True)

    def holdout(version: str | None, list_name: str) -> float | None:
        metrics = metrics_of(version) if version else None
        return P.holdout_figure(metrics, list_name) if metrics else None

    table["alert"] = P.rolling_alerts(table, holdout, p)
    for day in result.rows:
        result.rows[day] = table[pd.to_datetime(table["day"]).dt.date == day][cols].reset_index(drop=True)
    return result


def _stored(query: Query, t: Table, region: str, first: date, last: date) -> pd.DataFrame:
    sql = (
        f"SELECT {', '.join(t.column_names)} FROM {t.schema}.{t.name} "
        "WHERE region = ? AND day >= CAST(? AS DATE) AND day <= CAST(? AS DATE)"
    )
    out = query(sql, [region, first.isoformat(), last.isoformat()])
    out.columns = [str(c).lower() for c in out.columns]
    return out


def drift(
    query: Query,
    region: str,
    days: Sequence[date],
    metrics_of: MetricsOf,
    p: Dr.DriftParams | None = None,
) -> Result:
    """`monitor.drift` rows of the days, each against the champion that served it."""
    p = p or Dr.DriftParams()
    result = Result()
    if not days:
        return result
    landed = S.landed_days(query, region)
    refs: dict[date, Dr.Reference] = {}
    for day in sorted(days):
        served = S.served_lists(query, region, day)
        version = P.served_version(served, "top")
        metrics = metrics_of(version) if version else None
        if version is None or metrics is None:
            result.skipped[day] = "no champion served this day: nothing to compare with"
            continue
        ref = Dr.reference_for(version, metrics, S.first_served(query, region, version), p.reference_max_days)
        if ref is None:
            result.skipped[day] = f"{version} records no training window"
            continue
        refs[day] = ref
    if not refs:
        return result
    first = min(min(r.train_first for r in refs.values()), min(refs) - timedelta(days=p.window_days + 7))
    history = S.load_history(query, region, first - timedelta(days=Dr.REPEAT_LOOKBACK_DAYS), max(refs))
    counts = pd.concat(
        [S.feature_counts(query, region, first, max(refs)), Dr.repeat_counts(history, first, max(refs))],
        ignore_index=True,
    )
    temps = S.temperatures(query, region, first, max(refs))
    served_from = min(
        min(r.served_first for r in refs.values()), *(r.first_served or max(refs) for r in refs.values())
    )
    served = S.served_counts(query, region, served_from, max(refs))
    for day, ref in refs.items():
        rows = Dr.day_drift(day, ref, counts, temps, served, landed, p)
        result.rows[day] = _frame(rows, region, day, DRIFT.column_names)
    earlier = [d for d in landed if d < min(refs)][-(p.sustained_days - 1) :] if p.sustained_days > 1 else []
    stored = _stored(query, DRIFT, region, min(earlier), max(earlier)) if earlier else pd.DataFrame()
    stored = stored[~pd.to_datetime(stored["day"]).dt.date.isin(set(refs))] if len(stored) else stored
    table = pd.concat([f for f in (stored, result.frame(DRIFT.column_names)) if len(f)], ignore_index=True)
    table = table.sort_values("day", kind="stable", ignore_index=True)
    table["alert"] = Dr.sustained(table, p.sustained_days)
    days_of = pd.to_datetime(table["day"]).dt.date
    for day in refs:
        result.rows[day] = table[days_of == day][DRIFT.column_names].reset_index(drop=True)
    return result


def quality(
    query: Query, region: str, days: Sequence[date], thresholds: Q.QualityThresholds | None = None
) -> Result:
    """`monitor.data_quality` rows of the days."""
    result = Result()
    rows = Q.quality_rows(S.quality_counts(query, region, days), thresholds)
    for day, part in rows.groupby("day"):
        result.rows[day] = _frame(
            part.drop(columns="day").to_dict("records"), region, day, DATA_QUALITY.column_names
        )
    return result

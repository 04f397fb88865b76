"""Realised hit rate@K of the served lists once their day's sales land, with the baselines of the same day.

For a landed day and each list (`top`, `discover`), over the loyalty customers who bought that day and had a
served list for it (the mart keeps lists by `for_date`):
- `top`: a hit when one of the served products was bought that day;
- `discover`: over those who bought something new to them (never bought before the day, within the look-back),
  a hit when one of the served discover picks was among the new products.

The baselines are the tournament's own candidates, fitted point in time on the history before the day and
asked the same question for the same customers: popularity (both lists) and repeat (`top` only; for the
discover list it is popularity).

`rolling_alerts` is the rule the asset check applies to the last `rolling_days` days, customer-days pooled:
- error: the served lists are below popularity beyond noise;
- warn: below repeat beyond noise, or below the champion's own hold-out figure by more than `margin` beyond
  noise.
"Beyond noise" is a one-sided z-test on the pooled proportions (`z` standard errors, the rows treated as
independent, which only widens the interval: the pairs are positively correlated).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from globolatte_dagster.lib.recommend.candidates import Popularity, Repeat, customer_product_matrix
from globolatte_dagster.lib.recommend.data import History, Window, label_requests
from globolatte_dagster.lib.recommend.metrics import HIT_RATE, K, hits, top_k

LISTS = ("top", "discover")
CHAMPION, REPEAT, POPULARITY = HIT_RATE, f"repeat_{HIT_RATE}", f"popularity_{HIT_RATE}"


@dataclass(frozen=True)
class PerformanceParams:
    recent_days: int = 28  # popularity's window, as the tournament's
    lookback_days: int = 365  # history before the day that the baselines learn from
    rolling_days: int = 7
    margin: float = 0.05  # how far below its hold-out figure the champion may fall before a warning
    z: float = 1.96
    min_customers: int = 30  # pooled customer-days below this: no verdict


def _picks(served: pd.DataFrame, list_name: str) -> dict[str, list[str]]:
    part = served[served["list"] == list_name].sort_values(["customer_id", "rank"])
    return {str(c): [str(p) for p in g["product_id"]] for c, g in part.groupby("customer_id", sort=False)}


def served_version(served: pd.DataFrame, list_name: str) -> str | None:
    """The model version that served a list (None when nothing was served)."""
    if served.empty:
        return None
    versions = served.loc[served["list"] == list_name, "model_version"]
    return str(versions.mode().iloc[0]) if len(versions) else None


def day_performance(
    history: History, served: pd.DataFrame, day: date, recent_days: int = 28, k: int = K
) -> list[dict]:
    """The rows of one day (without region and day); `history` holds the day, `served` its lists."""
    requests, bought = label_requests(history, Window(day - timedelta(days=1), day, day))
    view = history.until(day - timedelta(days=1))
    ids = history.customers[requests.cust].astype(str) if len(bought) else np.array([], dtype=str)
    products = history.products.astype(str)
    seen = customer_product_matrix(view).tocsr()
    popularity, repeat = Popularity(recent_days).fit(view), Repeat(recent_days).fit(view)
    rows = []
    for list_name in LISTS:
        picks = _picks(served, list_name)
        rows_idx, want = [], []
        for r, cid in enumerate(ids):
            if cid not in picks:
                continue
            got = bought[r]
            if list_name == "discover":
                got = got - set(seen[requests.cust[r]].indices.tolist())
            if got:
                rows_idx.append(r)
                want.append(got)
        row = {
            "list": list_name,
            "customers": len(rows_idx),
            CHAMPION: None,
            REPEAT: None,
            POPULARITY: None,
            "alert": None,
        }
        row["champion_version"] = served_version(served, list_name)
        if rows_idx:
            idx = np.array(rows_idx)
            served_hits = [
                bool({products[i] for i in w} & set(picks[ids[r]][:k]))
                for r, w in zip(idx, want, strict=True)
            ]
            sub = requests.subset(idx)
            exclude = seen[sub.cust].toarray() > 0 if list_name == "discover" else None
            row[CHAMPION] = float(np.mean(served_hits))
            row[POPULARITY] = float(hits(top_k(popularity.score(sub), k, exclude=exclude), want).mean())
            if list_name == "top":
                row[REPEAT] = float(hits(top_k(repeat.score(sub), k), want).mean())
        rows.append(row)
    return rows


def _pooled(part: pd.DataFrame, col: str) -> float:
    ok = part[col].notna()
    n = float(part.loc[ok, "customers"].sum())
    return float((part.loc[ok, col] * part.loc[ok, "customers"]).sum() / n) if n else math.nan


def _below(a: float, b: float, n: float, z: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return False
    se = math.sqrt((a * (1 - a) + b * (1 - b)) / n)
    return a < b - z * se


def rolling_verdict(
    part: pd.DataFrame, holdout: Callable[[str | None, str], float | None], p: PerformanceParams
) -> str | None:
    """The alert of the rows of one list over a rolling window (see the module docstring), or None."""
    n = float(part["customers"].sum())
    if n < p.min_customers:
        return None
    c, r, pop = _pooled(part, CHAMPION), _pooled(part, REPEAT), _pooled(part, POPULARITY)
    bars = [
        (holdout(v, part["list"].iloc[0]), w)
        for v, w in zip(part["champion_version"], part["customers"], strict=True)
    ]
    bars = [(b, w) for b, w in bars if b is not None and w > 0]
    bar = sum(b * w for b, w in bars) / sum(w for _, w in bars) if bars else math.nan
    if _below(c, pop, n, p.z):
        return f"error: {c:.3f} below popularity {pop:.3f} over {int(n)} customer-days"
    reasons = []
    if _below(c, r, n, p.z):
        reasons.append(f"below repeat {r:.3f}")
    if not math.isnan(bar) and c < bar - p.margin - p.z * math.sqrt(c * (1 - c) / n):
        reasons.append(f"below its hold-out figure {bar:.3f} by more than {p.margin:.2f}")
    return f"warn: {c:.3f} " + " and ".join(reasons) + f" over {int(n)} customer-days" if reasons else None


def rolling_alerts(
    table: pd.DataFrame,
    holdout: Callable[[str | None, str], float | None],
    p: PerformanceParams | None = None,
) -> pd.Series:
    """The `alert` of every row of one region's performance table (rolling windows ending on its day)."""
    p = p or PerformanceParams()
    out = pd.Series([None] * len(table), index=table.index, dtype=object)
    days = pd.to_datetime(table["day"]).dt.date
    for idx in table.index:
        day = days[idx]
        window = (
            (days > day - timedelta(days=p.rolling_days))
            & (days <= day)
            & (table["list"] == table.at[idx, "list"])
        )
        out[idx] = rolling_verdict(table[window & (table["customers"] > 0)], holdout, p)
    return out


def holdout_figure(metrics: dict, list_name: str) -> float | None:
    """The champion's hold-out hit rate for a list, from its registry metrics."""
    value = metrics.get(HIT_RATE if list_name == "top" else f"discover_{HIT_RATE}")
    return None if value is None else float(value)

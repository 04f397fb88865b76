"""Feature, context and prediction drift of a landed day against the serving champion's reference.

- `feature` (what customers do): product mix, repeat purchases (the share of a day's loyalty lines on a
  product the customer had bought in the 28 days before) and payment method (Jensen-Shannon), hour of day,
  items per basket and spend per transaction (normalised Wasserstein), the share of lines on products that the
  reference never sold (`unseen_share`) and the share of lines whose price per item is `REPRICED` or more off
  the product's average in the reference (`repriced_share`). Reference: the sales of the champion's training window
  (`train_days` of its registry metrics).
- `context`: the day's maximum temperature against the training window's days (normalised Wasserstein).
- `prediction`: the products in the top lists served for the day against the top lists served over the
  champion's hold-out days (its first served day when none were served then).

A value is above its threshold when it exceeds the configured one (0.1, Azure ML's and Evidently's default),
raised to the reference's own spread (`distances.reference_spread`) and to the sampling noise of the current
window's size where those are larger, so that a small region's noise and the usual swing between weekdays or
warm and cold days stay below; it alerts when it stays above for `sustained_days` landed days in a row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from globolatte_dagster.lib.monitor import distances as M
from globolatte_dagster.lib.recommend.data import History

FEATURES: dict[str, str] = {
    "product_id": M.JENSEN_SHANNON,
    "repeat_purchase": M.JENSEN_SHANNON,
    "payment_method": M.JENSEN_SHANNON,
    "hour_of_day": M.WASSERSTEIN_NORMED,
    "basket_items": M.WASSERSTEIN_NORMED,
    "spend": M.WASSERSTEIN_NORMED,
}
TEMPERATURE = "temp_max_c"
RECOMMENDED = "recommended_product"
REPEAT_LOOKBACK_DAYS = 28
REPRICED = 0.05  # a line is repriced when its price per item is this far (relative) from the reference's
SIGNALS = ("feature", "context", "prediction")


@dataclass(frozen=True)
class DriftParams:
    """Thresholds and windows (defaults: Azure ML's 0.1; windows of 3 landed days; 2 days in a row)."""

    threshold: float = 0.1  # distances (Jensen-Shannon, normalised Wasserstein) and the unseen share
    window_days: int = 3  # current window: this many landed days up to the monitored day, pooled
    spread_quantile: float = 1.0  # of the reference days' own values (1: the furthest reference day); 0: off
    noise_quantile: float = 0.99  # of samples of the current window's size drawn from the reference; 0: off
    min_rows: int = 20  # a current window with fewer counted rows gives no row
    reference_max_days: int = 365  # at most this many days of the training window, the latest
    sustained_days: int = (
        2  # a value alerts when it was above its threshold on this many landed days in a row
    )


@dataclass(frozen=True)
class Reference:
    """The serving champion's windows: its training days and the days whose served lists stand for it."""

    model_version: str
    train_first: date
    train_last: date
    served_first: date
    served_last: date
    first_served: date | None = None  # the champion's first served day


def reference_for(
    model_version: str, metrics: dict, first_served: date | None, max_days: int
) -> Reference | None:
    """The reference windows from a champion's registry metrics (None when it records no training window)."""
    train = metrics.get("train_days") or (
        [metrics["last_day"], metrics["last_day"]] if metrics.get("last_day") else None
    )
    if not train:
        return None
    first, last = (date.fromisoformat(str(d)[:10]) for d in train)
    first = max(first, last - timedelta(days=max_days - 1))
    holdout = metrics.get("holdout_days") or [last.isoformat(), last.isoformat()]
    s_first, s_last = (date.fromisoformat(str(d)[:10]) for d in holdout)
    return Reference(model_version, first, last, s_first, s_last, first_served)


def _by_day(counts: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    """(day x value) counts of one feature within first..last."""
    part = counts[(counts["day"] >= first) & (counts["day"] <= last)]
    if part.empty:
        return pd.DataFrame()
    return part.pivot_table(index="day", columns="value", values="n", aggfunc="sum", fill_value=0.0)


def _row(signal: str, feature: str, metric: str, value: float, threshold: float) -> dict:
    return {
        "signal": signal,
        "feature": feature,
        "metric": metric,
        "value": value,
        "threshold": threshold,
        "alert": bool(not math.isnan(value) and value > threshold),
    }


def _compare(
    signal: str,
    feature: str,
    metric: str,
    ref_days: pd.DataFrame,
    current: pd.Series,
    p: DriftParams,
    sampled: bool = True,
) -> dict | None:
    if ref_days.empty or current.sum() < p.min_rows:
        return None
    pooled = ref_days.sum(axis=0)
    value = M.measure(metric, pooled, current)
    spreads = [
        M.reference_spread(metric, ref_days, p.window_days, p.spread_quantile),
        M.sampling_spread(metric, pooled, float(current.sum()), p.noise_quantile) if sampled else math.nan,
    ]
    threshold = max([p.threshold, *(s for s in spreads if not math.isnan(s))])
    return _row(signal, feature, metric, value, threshold)


def repeat_counts(
    history: History, first: date, last: date, lookback_days: int = REPEAT_LOOKBACK_DAYS
) -> pd.DataFrame:
    """(feature='repeat_purchase', day, value, n): a day's loyalty lines on a product that the customer had
    bought in the `lookback_days` before (`repeat`) or not (`new`), from first to last.

    The product mix of a whole region can stay put while most customers change what they buy (a taste shift
    swaps favourites between customers); this joint feature of customer and product moves.
    """
    if not len(history.day):
        return pd.DataFrame(columns=["feature", "day", "value", "n"])
    order = np.lexsort((history.day, history.prod, history.cust))
    cust, prod, day = history.cust[order], history.prod[order], history.day[order]
    same = np.r_[False, (cust[1:] == cust[:-1]) & (prod[1:] == prod[:-1])]
    gap = np.r_[np.inf, np.diff(day).astype(float)]
    repeat = same & (gap <= lookback_days)
    # a day needs the whole look-back before it: the first days of a history would all look new
    start = max(first.toordinal(), int(history.day.min()) + lookback_days)
    keep = (day >= start) & (day <= last.toordinal())
    frame = pd.DataFrame({"day": day[keep], "value": np.where(repeat[keep], "repeat", "new")})
    out = frame.groupby(["day", "value"]).size().rename("n").reset_index()
    out["day"] = [date.fromordinal(int(d)) for d in out["day"]]
    out["n"] = out["n"].astype(float)
    out.insert(0, "feature", "repeat_purchase")
    return out


def repriced_share(reference: pd.DataFrame, current: pd.DataFrame) -> float:
    """Share of the current lines whose price per item is REPRICED or more off the product's reference mean.

    Both frames hold (product_id, price, n); products the reference never sold are left out.
    """
    ref = (
        reference.assign(total=reference["price"] * reference["n"])
        .groupby("product_id")[["total", "n"]]
        .sum()
    )
    mean = ref["total"] / ref["n"]
    cur = current[current["product_id"].isin(mean.index)]
    if cur["n"].sum() <= 0:
        return math.nan
    usual = mean.reindex(cur["product_id"]).to_numpy(float)
    off = (cur["price"].to_numpy(float) / usual - 1).__abs__() >= REPRICED
    return float(cur["n"].to_numpy(float)[off].sum() / cur["n"].sum())


def _prices(counts: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    part = counts[(counts["feature"] == "product_price") & (counts["day"] >= first) & (counts["day"] <= last)]
    split = part["value"].str.rsplit("|", n=1, expand=True)
    if split.empty:
        return pd.DataFrame(columns=["product_id", "price", "n"])
    return pd.DataFrame({"product_id": split[0], "price": pd.to_numeric(split[1]), "n": part["n"].to_numpy()})


def _repriced(counts: pd.DataFrame, ref: Reference, first: date, last: date, p: DriftParams) -> dict | None:
    current = _prices(counts, first, last)
    reference = _prices(counts, ref.train_first, ref.train_last)
    if reference.empty or current["n"].sum() < p.min_rows:
        return None
    return _row("feature", "unit_price", "repriced_share", repriced_share(reference, current), p.threshold)


def sustained(frame: pd.DataFrame, days: int) -> pd.Series:
    """`alert` of drift rows: above the threshold on each of the last `days` monitored days of its measure.

    A single odd day (a holiday after a weekend) passes; a change that lasts alerts from its second day.
    """
    above = frame["value"].notna() & (frame["value"] > frame["threshold"])
    key = [frame["signal"], frame["feature"], frame["metric"]]
    ordered = above.groupby(key, sort=False).transform(
        lambda s: s.astype(float).rolling(max(days, 1), min_periods=max(days, 1)).min()
    )
    return ordered.fillna(0.0).astype(bool)


def window_days(day: date, landed: Sequence[date], size: int) -> tuple[date, date]:
    """First and last day of the current window: the `size` landed days up to `day`."""
    before = sorted(d for d in landed if d <= day)[-max(size, 1) :]
    return (before[0] if before else day), day


def day_drift(
    day: date,
    ref: Reference,
    counts: pd.DataFrame,
    temps: pd.Series,
    served: pd.DataFrame,
    landed: Sequence[date],
    p: DriftParams | None = None,
) -> list[dict]:
    """The drift rows of one day (without region and day), against the champion's reference.

    `counts`: `sources.feature_counts` over at least the reference and the current window; `temps`: daily
    maximum temperature by day; `served`: `sources.served_counts` over the served reference and the day.
    """
    p = p or DriftParams()
    first, last = window_days(day, landed, p.window_days)
    rows: list[dict] = []
    for feature, metric in FEATURES.items():
        part = counts[counts["feature"] == feature]
        ref_days = _by_day(part, ref.train_first, ref.train_last)
        current = _by_day(part, first, last).sum(axis=0)
        if (row := _compare("feature", feature, metric, ref_days, current, p)) is not None:
            rows.append(row)
        if feature == "product_id" and not ref_days.empty and current.sum() >= p.min_rows:
            share = M.unseen_share(ref_days.sum(axis=0), current)
            rows.append(_row("feature", feature, M.UNSEEN_SHARE, share, p.threshold))
    if (row := _repriced(counts, ref, first, last, p)) is not None:
        rows.append(row)
    weather = pd.DataFrame(
        {"day": list(temps.index), "value": [str(round(float(v), 1)) for v in temps], "n": 1.0}
    )
    ref_days = _by_day(weather, ref.train_first, ref.train_last)
    current = _by_day(weather, first, last).sum(axis=0)
    one_day = replace(p, min_rows=1)  # one temperature per day
    if (
        row := _compare("context", TEMPERATURE, M.WASSERSTEIN_NORMED, ref_days, current, one_day)
    ) is not None:
        rows.append(row)
    # the lists served on the champion's hold-out days; when none were, those of its first served day
    before = day - timedelta(days=1)
    ref_served = _by_day(served, ref.served_first, min(ref.served_last, before))
    if ref_served.empty and ref.first_served is not None and ref.first_served <= before:
        ref_served = _by_day(served, ref.first_served, ref.first_served)
    cur_served = _by_day(served, day, day).sum(axis=0)
    if (row := _compare("prediction", RECOMMENDED, M.JENSEN_SHANNON, ref_served, cur_served, p)) is not None:
        rows.append(row)
    return rows

"""The two drift measures of Azure ML's model monitoring and Evidently, on scipy, over counted values.

- Categorical values: the Jensen-Shannon distance (`scipy.spatial.distance.jensenshannon`, natural log, so it
  lies in [0, sqrt(ln 2)] ~ [0, 0.83]), as Evidently computes it.
- Numeric values: the Wasserstein distance divided by the reference's standard deviation (at least 0.001),
  Evidently's "Wasserstein distance (normed)" (`scipy.stats.wasserstein_distance` with weights).

Both default to a threshold of 0.1 there. Distributions arrive as counts per value (a pandas Series indexed by
the value), so a year of reference rows is a few hundred numbers, counted in the warehouse.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

JENSEN_SHANNON = "jensen_shannon"
WASSERSTEIN_NORMED = "wasserstein_normed"
UNSEEN_SHARE = "unseen_share"


def js_distance(reference: pd.Series, current: pd.Series) -> float:
    """Jensen-Shannon distance between two count Series (values missing on one side count 0); NaN if either is empty."""
    idx = reference.index.union(current.index)
    p = reference.reindex(idx, fill_value=0.0).to_numpy(float)
    q = current.reindex(idx, fill_value=0.0).to_numpy(float)
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    return float(jensenshannon(p, q))


def _numeric(counts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    values = pd.to_numeric(pd.Series(counts.index, dtype=object), errors="coerce").to_numpy(float)
    weights = counts.to_numpy(float)
    keep = np.isfinite(values) & (weights > 0)
    return values[keep], weights[keep]


def wasserstein_normed(reference: pd.Series, current: pd.Series) -> float:
    """Wasserstein distance of two numeric count Series over the reference's standard deviation; NaN if empty."""
    rv, rw = _numeric(reference)
    cv, cw = _numeric(current)
    if not len(rv) or not len(cv):
        return math.nan
    mean = np.average(rv, weights=rw)
    std = math.sqrt(np.average((rv - mean) ** 2, weights=rw))
    return float(wasserstein_distance(cv, rv, cw, rw) / max(std, 0.001))


def unseen_share(reference: pd.Series, current: pd.Series) -> float:
    """Share of the current counts on values that the reference never had; NaN if the current is empty."""
    total = float(current.sum())
    if total <= 0:
        return math.nan
    seen = reference[reference > 0].index
    return float(current[~current.index.isin(seen)].sum() / total)


MEASURES = {JENSEN_SHANNON: js_distance, WASSERSTEIN_NORMED: wasserstein_normed, UNSEEN_SHARE: unseen_share}


def measure(metric: str, reference: pd.Series, current: pd.Series) -> float:
    return MEASURES[metric](reference, current)


def batch(metric: str, reference: pd.Series, rows: np.ndarray) -> np.ndarray:
    """The measure between the reference and each row of `rows` (counts over the reference's index), vectorised.

    The same values as `measure` (a test checks them against scipy) for many windows at once.
    """
    p = reference.to_numpy(float)
    q = np.asarray(rows, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == JENSEN_SHANNON:
            p, q = p / p.sum(), q / q.sum(axis=1, keepdims=True)
            m = (p + q) / 2
            kl = lambda a: np.where(a > 0, a * np.log(a / m), 0.0).sum(axis=1)  # noqa: E731
            return np.sqrt(np.maximum((kl(np.broadcast_to(p, q.shape)) + kl(q)) / 2, 0.0))
        if metric == WASSERSTEIN_NORMED:
            x = pd.to_numeric(pd.Series(reference.index, dtype=object), errors="coerce").to_numpy(float)
            order = np.argsort(x)
            x, p, q = x[order], p[order] / p.sum(), q[:, order] / q.sum(axis=1, keepdims=True)
            std = np.sqrt(np.sum(p * (x - np.sum(p * x)) ** 2))
            gaps = np.diff(x)
            cdf_gap = np.abs(np.cumsum(p)[:-1] - np.cumsum(q, axis=1)[:, :-1])
            return (cdf_gap * gaps).sum(axis=1) / max(std, 0.001)
    raise ValueError(f"no batch form for {metric}")


def reference_spread(metric: str, by_day: pd.DataFrame, window: int, quantile: float) -> float:
    """How far the reference's own days (pooled `window` at a time) lie from the whole reference.

    `by_day`: counts with one row per reference day and one column per value. The result is the `quantile`
    of the measure between each day's window and the pooled reference: a current window must lie further
    than this to be drift, so sampling noise and the usual day-to-day swing (weekdays, weather) do not alert.
    NaN when the reference has fewer than two days.
    """
    if len(by_day) < 2 or quantile <= 0:
        return math.nan
    window = max(1, min(window, len(by_day) - 1))
    rolled = by_day.rolling(window, min_periods=window).sum().dropna()
    rolled = rolled[rolled.sum(axis=1) > 0]
    if rolled.empty:
        return math.nan
    values = batch(metric, by_day.sum(axis=0), rolled.to_numpy())
    return float(np.quantile(values, min(quantile, 1.0)))


def sampling_spread(metric: str, reference: pd.Series, n: float, quantile: float, draws: int = 200) -> float:
    """The `quantile` of the measure between the reference and samples of `n` rows drawn from it (seeded).

    What a current window of this size shows by chance alone: a small region's day of a hundred sales lines
    lies further from any reference than a large region's does.
    """
    total = float(reference.sum())
    if total <= 0 or n < 1 or quantile <= 0:
        return math.nan
    samples = np.random.default_rng(0).multinomial(round(n), reference.to_numpy(float) / total, size=draws)
    return float(np.quantile(batch(metric, reference, samples), min(quantile, 1.0)))

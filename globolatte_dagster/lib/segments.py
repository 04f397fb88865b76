"""Customer segments: k-means on scaled behaviour features, with k chosen by silhouette.

The clustering matrix is built from `core.customer_features` only (shares, visit pattern, spend, weather
behaviour and the catalogue's categories), so it works for any catalogue. Segment ids are aligned with
the previous materialisation where possible, so that "segment 2" keeps meaning the same group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from globolatte_dagster.lib.features import TIME_OF_DAY, category_shares
from globolatte_dagster.lib.schema import Column, Table, register

if TYPE_CHECKING:  # scikit-learn and SciPy are imported where they fit (see lib/plots.py)
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

SEGMENTS = register(
    Table(
        "ml",
        "customer_segments",
        (
            Column("region", "text", False),
            Column("customer_id", "text", False),
            Column("segment", "int", False),
            Column("as_of", "date", False),
            Column("low_history", "bool", False),
            Column("distance", "float"),  # scaled distance to the segment's centre
        ),
        "region",
    )
)

# Behaviour columns of core.customer_features used for clustering (category shares are added per catalogue).
BEHAVIOUR: tuple[str, ...] = (
    "visits_per_week",
    "spend_per_visit_usd",
    "items_per_visit",
    "hot_share",
    "iced_share",
    "none_share",
    *(f"{name}_share" for name, _, _ in TIME_OF_DAY),
    "mean_hour",
    "weekend_share",
    "weekend_lift",
    "holiday_lift",
    "weather_sensitivity",
)
LOG_COLUMNS = ("visits_per_week", "spend_per_visit_usd", "items_per_visit", "weekend_lift", "holiday_lift")


def clustering_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """Numeric matrix (one row per customer): behaviour columns, log where skewed, plus category shares."""
    x = features[list(BEHAVIOUR)].astype(float).copy()
    for col in LOG_COLUMNS:
        x[col] = np.log1p(x[col].clip(lower=0))
    x = pd.concat([x, category_shares(features)], axis=1)
    medians = x.median().fillna(0.0)
    return x.fillna(medians).fillna(0.0)


@dataclass
class Segmenter:
    """A fitted scaler and k-means; `assign` places any customer (low history included) in a segment."""

    columns: list[str]
    scaler: StandardScaler
    kmeans: KMeans
    silhouette: dict[int, float] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.kmeans.n_clusters)

    def _scaled(self, features: pd.DataFrame) -> np.ndarray:
        x = clustering_matrix(features).reindex(columns=self.columns, fill_value=0.0)
        return self.scaler.transform(x.to_numpy())

    def assign(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(segment, distance to its centre) per row of `features`."""
        if features.empty:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        z = self._scaled(features)
        d = self.kmeans.transform(z)
        seg = d.argmin(axis=1)
        return seg.astype(np.int64), d[np.arange(len(seg)), seg]

    def relabel(self, mapping: dict[int, int]) -> None:
        """Renumber the segments (old id -> new id), e.g. to match the previous materialisation."""
        order = np.empty(self.k, dtype=np.int64)
        for old, new in mapping.items():
            order[new] = old
        self.kmeans.cluster_centers_ = self.kmeans.cluster_centers_[order]
        if hasattr(self.kmeans, "labels_"):
            inverse = np.empty(self.k, dtype=np.int64)
            inverse[order] = np.arange(self.k)
            self.kmeans.labels_ = inverse[self.kmeans.labels_]


def fit_segments(
    features: pd.DataFrame,
    seed: int = 0,
    k_range: Sequence[int] = range(2, 11),
    k: int | None = None,
    n_init: int = 10,
    silhouette_sample: int = 3000,
    fit_sample: int = 5000,
) -> Segmenter:
    """Fit on customers with enough history; k from `k_range` by the best silhouette unless `k` is given.

    Scaler and k-means are fitted on a seeded sample of `fit_sample` customers when there are more (the
    cost of k-means grows with rows x k x n_init; the centres of 5,000 customers are stable); every
    customer is then assigned with `Segmenter.assign`.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    fit_rows = features[~features["low_history"].astype(bool)] if "low_history" in features else features
    if len(fit_rows) < 4:
        fit_rows = features
    if len(fit_rows) < 2:
        raise ValueError(f"{len(fit_rows)} customer(s): too few to segment")
    if 0 < fit_sample < len(fit_rows):
        fit_rows = fit_rows.sample(n=fit_sample, random_state=seed).sort_index()
    x = clustering_matrix(fit_rows)
    scaler = StandardScaler().fit(x.to_numpy())
    z = scaler.transform(x.to_numpy())
    candidates = [k] if k is not None else [c for c in k_range if 2 <= c < len(fit_rows)]
    if not candidates:
        candidates = [min(2, len(fit_rows))]
    scores: dict[int, float] = {}
    models: dict[int, KMeans] = {}
    for c in candidates:
        km = KMeans(n_clusters=c, n_init=n_init, random_state=seed).fit(z)
        models[c] = km
        if len(set(km.labels_)) > 1:
            scores[c] = float(
                silhouette_score(z, km.labels_, sample_size=min(silhouette_sample, len(z)), random_state=seed)
            )
        else:
            scores[c] = -1.0
    best = max(scores, key=lambda c: (round(scores[c], 6), -c))
    return Segmenter(list(x.columns), scaler, models[best], scores)


def align_to_previous(segmenter: Segmenter, current: pd.DataFrame, previous: pd.DataFrame) -> dict[int, int]:
    """Renumber segments to overlap most with the previous assignment (Hungarian matching on shared customers).

    `current`, `previous`: customer_id, segment. Returns the mapping applied (old id -> new id).
    """
    from scipy.optimize import linear_sum_assignment

    shared = current.merge(previous, on="customer_id", suffixes=("", "_prev"))
    k = segmenter.k
    if shared.empty:
        return {i: i for i in range(k)}
    size = max(k, int(shared["segment_prev"].max()) + 1)
    overlap = np.zeros((k, size))
    np.add.at(overlap, (shared["segment"].to_numpy(), shared["segment_prev"].to_numpy()), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if c < k}
    free = iter(sorted(set(range(k)) - set(mapping.values())))
    for r in range(k):
        if r not in mapping:
            mapping[r] = next(free)
    segmenter.relabel(mapping)
    return mapping


def stability(current: pd.DataFrame, previous: pd.DataFrame | None) -> tuple[float | None, int]:
    """Adjusted Rand index between two assignments on the customers both share (None without overlap)."""
    from sklearn.metrics import adjusted_rand_score

    if previous is None or previous.empty:
        return None, 0
    shared = current.merge(previous, on="customer_id", suffixes=("", "_prev"))
    if len(shared) < 2:
        return None, len(shared)
    return float(adjusted_rand_score(shared["segment_prev"], shared["segment"])), len(shared)


def persona_agreement(segments: pd.DataFrame, personas: pd.DataFrame) -> tuple[float | None, int]:
    """Adjusted Rand index against planted personas (simulator ground truth: customer_id, persona)."""
    from sklearn.metrics import adjusted_rand_score

    shared = segments.merge(personas[["customer_id", "persona"]], on="customer_id")
    if len(shared) < 2:
        return None, len(shared)
    return float(adjusted_rand_score(shared["persona"], shared["segment"])), len(shared)


def profiles(
    features: pd.DataFrame, segments: pd.DataFrame, product_names: dict[str, str], top: int = 3
) -> pd.DataFrame:
    """One row per segment: size, top products (by favourite weight), hot/iced share, visit pattern, spend."""
    df = features.merge(segments[["customer_id", "segment"]], on="customer_id")
    rows = []
    for seg, g in df.groupby("segment", sort=True):
        weights: dict[str, float] = {}
        for i in (1, 2, 3):
            for pid, w in zip(g[f"fav_{i}_product"], g[f"fav_{i}_weight"], strict=True):
                if isinstance(pid, str):
                    weights[pid] = weights.get(pid, 0.0) + float(w)
        tops = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        rows.append(
            {
                "segment": int(seg),
                "customers": len(g),
                "share": round(len(g) / len(df), 3),
                "top_products": ", ".join(product_names.get(p, p) for p, _ in tops),
                "hot_share": round(float(g["hot_share"].mean()), 3),
                "iced_share": round(float(g["iced_share"].mean()), 3),
                "food_share": round(float(g["none_share"].mean()), 3),
                "visits_per_week": round(float(g["visits_per_week"].mean()), 2),
                "mean_hour": round(float(g["mean_hour"].mean()), 1),
                "weekend_share": round(float(g["weekend_share"].mean()), 3),
                "weather_sensitivity": round(float(g["weather_sensitivity"].mean()), 3),
                "spend_per_visit_usd": round(float(g["spend_per_visit_usd"].mean()), 2),
            }
        )
    return pd.DataFrame(rows)

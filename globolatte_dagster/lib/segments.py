"""Customer segments: k-means on what customers buy, with k chosen by silhouette.

The clustering matrix is each customer's purchase mix as of a cutoff, from the purchase history (so the
same fitted segmenter assigns customers at any cutoff, without refitting): shares of their visit days
with each product, category and serving (hot, iced, none), the time of day and day of week of their
visits, and how often they come. Shares enter as square roots (the Hellinger embedding of a composition,
so a handful of big products does not drown the rest) and every block is scaled to the same total weight,
then weighted (`BLOCK_WEIGHTS`): what they buy leads, when and how often they come separate groups that buy
alike. Nothing in it is specific to a catalogue or to the simulator. Segment ids are aligned with the previous materialisation where possible, so that
"segment 2" keeps meaning the same group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from globolatte_dagster.lib.recommend.data import History

if TYPE_CHECKING:  # scikit-learn is imported where it fits (see lib/plots.py)
    from sklearn.cluster import KMeans

TIME_OF_DAY = (("morning", 0, 11), ("midday", 11, 14), ("afternoon", 14, 17), ("evening", 17, 24))
MIN_VISITS = 3  # customers with fewer visit days are assigned, not fitted on
# Per block, a multiplier of its unit total weight. What customers buy leads (the product mix three times a
# behaviour block's weight; categories and serving summarise it, so they add little); when and how often they
# come separate groups that buy alike. Chosen on three generators (ours and two written independently of
# it), where every other weighting tried lost agreement with the planted personas on at least one.
BLOCK_WEIGHTS: dict[str, float] = {
    "product": 3.0,
    "category": 0.5,
    "serving": 0.5,
    "time_of_day": 1.0,
    "rhythm": 0.5,
}


def _shares(
    rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int, weights: np.ndarray | None = None
) -> np.ndarray:
    flat = rows.astype(np.int64) * n_cols + cols
    out = np.bincount(flat, weights=weights, minlength=n_rows * n_cols).astype(float).reshape(n_rows, n_cols)
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


@dataclass(frozen=True)
class PurchaseMix:
    """Per customer with a purchase: the blocks of the clustering matrix (raw shares and rates)."""

    customers: np.ndarray  # (N,) index into the history's customers
    visits: np.ndarray  # (N,) visit days
    blocks: dict[str, pd.DataFrame]


def purchase_mix(history: History) -> PurchaseMix:
    """What each customer with a purchase bought, when and how often, as of the history's cutoff."""
    c_n, p_n = history.n_customers, history.n_products
    cust, prod, day = history.cust, history.prod, history.day
    v_cust, v_day = history.visits()
    hour_by_visit = history.visit_hours()
    visits = np.bincount(v_cust, minlength=c_n).astype(float)
    who = np.flatnonzero(visits > 0)
    pos = np.full(c_n, -1)
    pos[who] = np.arange(len(who))
    n = len(who)
    products = _shares(pos[cust], prod, n, p_n)
    cats, cat_idx = np.unique(history.category, return_inverse=True)
    servs, serv_idx = np.unique(history.serving, return_inverse=True)
    bucket = np.zeros(len(hour_by_visit), dtype=np.int64)
    for j, (_, lo, _) in enumerate(TIME_OF_DAY):
        bucket[hour_by_visit >= lo] = j
    weekend = (v_day.astype(np.int64) - 1) % 7 >= 5  # date.fromordinal(1) is a Monday
    span = max(int(day.max() - day.min()) + 1, 7) if len(day) else 7
    return PurchaseMix(
        customers=who,
        visits=visits[who],
        blocks={
            "product": pd.DataFrame(products, columns=[f"p_{p}" for p in history.products]),
            "category": pd.DataFrame(
                _shares(pos[cust], cat_idx[prod], n, len(cats)), columns=[f"c_{c}" for c in cats]
            ),
            "serving": pd.DataFrame(
                _shares(pos[cust], serv_idx[prod], n, len(servs)), columns=[f"s_{s}" for s in servs]
            ),
            "time_of_day": pd.DataFrame(
                _shares(pos[v_cust], bucket, n, len(TIME_OF_DAY)), columns=[t for t, _, _ in TIME_OF_DAY]
            ),
            "rhythm": pd.DataFrame(
                {
                    "log_visits_per_week": np.log1p(7.0 * visits[who] / span),
                    "weekend_share": np.bincount(pos[v_cust], weights=weekend.astype(float), minlength=n)
                    / np.maximum(visits[who], 1),
                }
            ),
        },
    )


@dataclass
class Segmenter:
    """Fitted block scaling and k-means; `assign` places any customer with a purchase in a segment."""

    columns: dict[str, list[str]]
    centre: dict[str, np.ndarray]  # per block: column means of the fitted customers
    scale: dict[str, float]  # per block: multiplier that gives the block unit total variance
    kmeans: KMeans
    silhouette: dict[int, float] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.kmeans.n_clusters)

    def matrix(self, mix: PurchaseMix) -> np.ndarray:
        parts = []
        for name, cols in self.columns.items():
            block = mix.blocks[name].reindex(columns=cols, fill_value=0.0).to_numpy(dtype=float)
            if name != "rhythm":
                block = np.sqrt(block)
            parts.append((block - self.centre[name]) * self.scale[name])
        return np.hstack(parts)

    def assign_mix(self, mix: PurchaseMix) -> tuple[np.ndarray, np.ndarray]:
        """(segment, distance to its centre) per customer of the mix."""
        if len(mix.customers) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        d = self.kmeans.transform(self.matrix(mix))
        seg = d.argmin(axis=1)
        return seg.astype(np.int64), d[np.arange(len(seg)), seg]

    def assign(self, history: History) -> np.ndarray:
        """(C,) segment of every customer of the history as of its cutoff (-1: no purchase yet)."""
        mix = purchase_mix(history)
        out = np.full(history.n_customers, -1, dtype=np.int64)
        out[mix.customers] = self.assign_mix(mix)[0]
        return out

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
    mix: PurchaseMix,
    seed: int = 0,
    k_range: range | list[int] = range(2, 11),
    k: int | None = None,
    n_init: int = 10,
    silhouette_sample: int = 4000,
    fit_sample: int = 8000,
    weights: dict[str, float] | None = None,
    min_visits: int = MIN_VISITS,
) -> Segmenter:
    """Fit on customers with at least MIN_VISITS visit days; k from `k_range` by the best silhouette."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    fit_rows = np.flatnonzero(mix.visits >= min_visits)
    if len(fit_rows) < 4:
        fit_rows = np.arange(len(mix.customers))
    if len(fit_rows) == 0:
        raise ValueError("no customer with a purchase: nothing to segment")
    if 0 < fit_sample < len(fit_rows):
        fit_rows = np.sort(np.random.default_rng(seed).choice(fit_rows, fit_sample, replace=False))
    columns = {name: list(block.columns) for name, block in mix.blocks.items() if block.shape[1]}
    centre, scale = {}, {}
    for name, _cols in columns.items():
        block = mix.blocks[name].to_numpy(dtype=float)[fit_rows]
        block = block if name == "rhythm" else np.sqrt(block)
        centre[name] = block.mean(axis=0)
        total_sd = float(np.sqrt(block.var(axis=0).sum()))
        scale[name] = (weights or BLOCK_WEIGHTS).get(name, 1.0) / total_sd if total_sd > 0 else 0.0
    seg = Segmenter(columns, centre, scale, KMeans(n_clusters=2))
    sub = PurchaseMix(
        mix.customers[fit_rows], mix.visits[fit_rows], {n: b.iloc[fit_rows] for n, b in mix.blocks.items()}
    )
    z = seg.matrix(sub)
    candidates = [k] if k is not None else [c for c in k_range if 2 <= c < len(fit_rows)]
    # Fewer than three customers cannot be told apart by a silhouette: one segment holds them all.
    candidates = [min(c, len(fit_rows)) for c in candidates] or [1]
    scores: dict[int, float] = {}
    models: dict[int, KMeans] = {}
    for c in candidates:
        # one OpenMP thread: k-means on a few thousand rows is 10-20x slower with threads that wait on a busy machine
        with threadpool_limits(limits=1, user_api="openmp"):
            km = KMeans(n_clusters=c, n_init=n_init, random_state=seed).fit(z)
        models[c] = km
        scores[c] = (
            float(
                silhouette_score(z, km.labels_, sample_size=min(silhouette_sample, len(z)), random_state=seed)
            )
            if len(set(km.labels_)) > 1
            else -1.0
        )
    best = max(scores, key=lambda c: (round(scores[c], 6), -c))
    seg.kmeans, seg.silhouette = models[best], scores
    return seg


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
    mix: PurchaseMix, labels: np.ndarray, product_names: dict[str, str], top: int = 3
) -> pd.DataFrame:
    """One row per segment: size, top products, serving mix, time of day and visit rhythm."""
    rows = []
    prod = mix.blocks["product"]
    serving = mix.blocks["serving"]
    tod = mix.blocks["time_of_day"]
    rhythm = mix.blocks["rhythm"]
    for seg in sorted(set(labels.tolist())):
        m = labels == seg
        shares = prod[m].mean(axis=0).sort_values(ascending=False)
        rows.append(
            {
                "segment": int(seg),
                "customers": int(m.sum()),
                "share": round(float(m.mean()), 3),
                "top_products": ", ".join(product_names.get(c[2:], c[2:]) for c in shares.index[:top]),
                **{c[2:] + "_share": round(float(serving.loc[m, c].mean()), 3) for c in serving.columns},
                "main_time": str(tod[m].mean(axis=0).idxmax()),
                "visits_per_week": round(float(np.expm1(rhythm.loc[m, "log_visits_per_week"]).mean()), 2),
                "weekend_share": round(float(rhythm.loc[m, "weekend_share"].mean()), 3),
                "median_visit_days": float(np.median(mix.visits[m])),
            }
        )
    return pd.DataFrame(rows)

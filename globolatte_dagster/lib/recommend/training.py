"""The learned context model, and the one entry point that trains and judges every candidate of a region.

`ContextModel` is a gradient-boosted classifier over (request, product) rows (`design.py`) whose features
include the other candidates' scores and ranks, so it starts from what they know and learns what weather,
holidays, weekdays, segment and regional taste add. It learns the way it is served: a snapshot as of a
cutoff scores the next `window_days` days (the endpoint serves one snapshot for several days, the horizon is
a feature), over `train_windows` such windows before its own cutoff.

`train_region` is the entry point (pure: data and parameters in, fitted candidates and their report out):
the time-based split, the fits, the hold-out tournament (`evaluation.py`) and the refit for serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar

import numpy as np

from globolatte_dagster.lib.recommend.candidates import (
    Popularity,
    RecencyRepeat,
    Recommender,
    Repeat,
    TifuKnn,
)
from globolatte_dagster.lib.recommend.data import History, Requests, Window, label_requests
from globolatte_dagster.lib.recommend.design import BASE_NAMES, FEATURE_NAMES, Snapshot, design
from globolatte_dagster.lib.recommend.fit_cache import FitCache, SegmentAt, WindowRows

CANDIDATES: tuple[str, ...] = ("popularity", "repeat", "recency_repeat", "tifu_knn", "context_model")
BASELINES: tuple[str, ...] = ("popularity", "repeat")
REQUEST_BLOCK = 20_000  # customer-days per design block (bounds the (R, P, F) block in memory)


@dataclass(frozen=True)
class TrainParams:
    """Split, candidates and the booster's hyperparameters (seeds fixed)."""

    holdout_days: int = 14  # at most; a short history gets a quarter of its days
    lookback_days: int = 365
    recent_days: int = 28
    train_windows: int = 3  # context model: windows of the hold-out's length before its cutoff
    # Products per request the context model ranks: those the customer bought before, and the top
    # `max_candidates` of each base candidate (others keep popularity's order, below every ranked one).
    max_candidates: int = 10
    # Share of the never-bought-that-day rows the booster learns from (seeded, uniform). Every positive row
    # is kept, from every customer and day of the windows. A uniform sample of negatives shifts every logit
    # by the same constant, so the ranking within a request is unchanged; it cuts the rows ~4x.
    negative_share: float = 0.25
    # Named option for scale: the booster learns from a seeded sample of this many rows when there are more
    # (0: every row). Features always use every customer's whole history; the sample bounds only the fit,
    # which grows with rows (B3 measures both ways). Below ~5,000 customers per region it never applies.
    max_train_rows: int = 400_000
    max_iter: int = 120
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 50
    l2_regularization: float = 1.0
    threads: int = 1
    # Score the hold-out in a second thread while the candidates are refitted for serving (same results).
    overlap: bool = True
    seed: int = 0
    n_boot: int = 1000
    candidates: tuple[str, ...] = CANDIDATES

    def __post_init__(self) -> None:
        unknown = set(self.candidates) - set(CANDIDATES)
        if unknown or "popularity" not in self.candidates:
            raise ValueError(
                f"candidates must include popularity and come from {CANDIDATES}: {self.candidates}"
            )
        if not 0 < self.negative_share <= 1:
            raise ValueError(f"negative_share must be in (0, 1], not {self.negative_share}")
        if self.holdout_days < 1 or self.lookback_days < 1 or self.train_windows < 1:
            raise ValueError(f"invalid training parameters {self}")


def candidate_mask(base: dict[str, np.ndarray], bought_before: np.ndarray, limit: int) -> np.ndarray:
    """(R, P) products the context model ranks: bought before, or among the top `limit` of a base candidate."""
    r_n, p_n = base["popularity"].shape
    if p_n <= limit:
        return np.ones((r_n, p_n), dtype=bool)
    mask = bought_before.copy()
    for name in ("popularity", "tifu_knn", "recency_repeat"):
        if name in base:
            top = np.argsort(-base[name], axis=1, kind="stable")[:, :limit]
            np.put_along_axis(mask, top, True, axis=1)
    return mask


@dataclass
class ContextModel:
    """The learned candidate: weather, holidays, weekday, segment and regional taste on top of the others."""

    params: TrainParams = field(default_factory=TrainParams)
    window_days: int = 14
    name: ClassVar[str] = "context_model"
    complexity: ClassVar[int] = 4
    estimator: Any = None
    bases: dict[str, Recommender] = field(default_factory=dict, repr=False)
    snapshot: Snapshot | None = field(default=None, repr=False)
    report: dict[str, Any] = field(default_factory=dict)

    def _block(
        self, snap: Snapshot, bases: dict[str, Recommender], req: Requests
    ) -> tuple[np.ndarray, np.ndarray]:
        base = {n: bases[n].score(req) for n in BASE_NAMES}
        x = design(snap, base, req)
        bought = ~np.isnan(x[:, :, FEATURE_NAMES.index("cp_days_since")])
        return x, candidate_mask(base, bought, self.params.max_candidates)

    def window_rows(
        self, cut: date, cache: FitCache, segment_at: SegmentAt | None, row_budget: int
    ) -> WindowRows | None:
        """Training rows of the window after `cut` (None: nobody bought in it), built once per cache.

        Every positive row of a customer-day is kept with a seeded `negative_share` of its negatives. Above
        `row_budget` rows, the customer-days are taken in a seeded random order, block by block, until the
        budget is reached: a uniform sample of customer-days (each with all its rows), so that the design
        is built only for the rows the booster will learn from.
        """
        p = self.params
        key = (cut, self.window_days, row_budget, p.max_candidates, p.negative_share, p.seed)
        key += tuple(FitCache._key(n, cut, cache.prototypes[n]) for n in BASE_NAMES)
        if key in cache.windows:
            return cache.windows[key]
        window = Window(cut, cut + timedelta(days=1), cut + timedelta(days=self.window_days))
        req, bought = label_requests(cache.history, window)
        if not len(bought):
            return None
        snap = cache.snapshot(cut, segment_at)
        bases = {n: cache.get(n, cut) for n in BASE_NAMES}
        rng = np.random.default_rng([p.seed, cut.toordinal()])
        order = rng.permutation(len(req)) if row_budget else np.arange(len(req))
        xs, ys, used, n_rows = [], [], 0, 0
        while used < len(req) and not (row_budget and n_rows >= row_budget):
            if not row_budget:
                size = REQUEST_BLOCK
            elif not used:  # a first block that measures the rows per customer-day
                size = min(REQUEST_BLOCK, max(100, row_budget // 20))
            else:  # enough customer-days for the rest of the budget (+10%), at the rate so far
                rest = 1.1 * (row_budget - n_rows) * used / max(n_rows, 1)
                size = min(REQUEST_BLOCK, max(100, int(rest)))
            rows = np.sort(order[used : used + size])
            x, mask = self._block(snap, bases, req.subset(rows))
            y = np.zeros(mask.shape, dtype=np.int8)
            for r, b in enumerate(bought[i] for i in rows):
                y[r, list(b)] = 1
            if p.negative_share < 1:
                mask &= (y == 1) | (rng.random(mask.shape) < p.negative_share)
            xs.append(x[mask])
            ys.append(y[mask])
            used += len(rows)
            n_rows += int(mask.sum())
        out = WindowRows(np.concatenate(xs), np.concatenate(ys), len(req), used)
        cache.windows[key] = out
        return out

    def fit_with(self, history: History, cache: FitCache, segment_at: SegmentAt | None) -> ContextModel:
        """Fit on `train_windows` windows before the history's cutoff (bases fitted through `cache`)."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        p = self.params
        cutoff = history.cutoff or history.last_day
        first_day = date.fromordinal(int(history.pop_day.min()))
        budget = -(-p.max_train_rows // p.train_windows) if p.max_train_rows else 0
        parts: list[WindowRows] = []
        windows = []
        for j in range(1, p.train_windows + 1):
            cut = cutoff - timedelta(days=j * self.window_days)
            if cut < first_day:
                break
            rows = self.window_rows(cut, cache, segment_at, budget)
            if rows is None:
                continue
            parts.append(rows)
            windows.append(
                [
                    (cut + timedelta(days=1)).isoformat(),
                    (cut + timedelta(days=self.window_days)).isoformat(),
                    rows.customer_days,
                    rows.customer_days_used,
                ]
            )
        if not parts:
            raise ValueError("not enough history before the cutoff for one training window")
        x, y = np.concatenate([w.x for w in parts]), np.concatenate([w.y for w in parts])
        rows_before_cap = len(y)
        if p.max_train_rows and len(y) > p.max_train_rows:
            keep = np.sort(np.random.default_rng(p.seed).choice(len(y), p.max_train_rows, replace=False))
            x, y = x[keep], y[keep]
        else:
            x = x.copy()  # the cached window rows stay as they are
        if y.min() == y.max():
            raise ValueError("the training rows have a single class: not enough sales to learn from")
        # A feature with no value in any training row (no holiday in the windows, no weather feed) is a
        # constant for the booster, which then never splits on it (scikit-learn cannot bin an all-NaN column).
        empty = np.isnan(x).all(axis=0)
        x[:, empty] = 0.0
        est = HistGradientBoostingClassifier(
            max_iter=p.max_iter,
            learning_rate=p.learning_rate,
            max_leaf_nodes=p.max_leaf_nodes,
            min_samples_leaf=p.min_samples_leaf,
            l2_regularization=p.l2_regularization,
            early_stopping=False,
            random_state=p.seed,
        )
        with threadpool_limits(limits=p.threads, user_api="openmp"):
            self.estimator = est.fit(x, y)
        self.bases = {n: cache.get(n, cutoff) for n in BASE_NAMES}
        self.snapshot = cache.snapshot(cutoff, segment_at)
        customer_days = sum(w.customer_days for w in parts)
        used = sum(w.customer_days_used for w in parts)
        self.report = {
            "train_windows": windows,
            "train_rows": len(y),
            "customer_days": customer_days,
            "customer_days_used": used,
            "rows_before_sampling": rows_before_cap
            if used == customer_days
            else round(rows_before_cap * customer_days / max(used, 1)),
            "rows_before_sampling_estimated": used != customer_days,
            "positive_rows": int(y.sum()),
            "features_without_values": [f for f, e in zip(FEATURE_NAMES, empty, strict=True) if e],
        }
        return self

    def fit(self, history: History) -> ContextModel:  # the protocol's form: bases fitted here
        cache = FitCache(history, default_prototypes(self.params, self.window_days))
        return self.fit_with(history, cache, None)

    def score(self, requests: Requests) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        if self.estimator is None or self.snapshot is None:
            raise RuntimeError("the context model is not fitted")
        out = np.empty((len(requests), len(self.snapshot.serving)))
        for rows in np.array_split(np.arange(len(requests)), max(1, len(requests) // 5000 + 1)):
            sub = requests.subset(rows)
            x, mask = self._block(self.snapshot, self.bases, sub)
            block = self.bases["popularity"].score(sub) - 1.0  # the unranked: below every ranked product
            with threadpool_limits(limits=1, user_api="openmp"):
                block[mask] = self.estimator.predict_proba(x[mask])[:, 1]
            out[rows] = block
        return out

    def describe(self) -> dict[str, Any]:
        p = self.params
        return {
            "kind": self.name,
            "params": {
                "estimator": "HistGradientBoostingClassifier",
                "max_iter": p.max_iter,
                "learning_rate": p.learning_rate,
                "max_leaf_nodes": p.max_leaf_nodes,
                "min_samples_leaf": p.min_samples_leaf,
                "l2_regularization": p.l2_regularization,
                "window_days": self.window_days,
                "train_windows": p.train_windows,
                "max_candidates": p.max_candidates,
                "negative_share": p.negative_share,
                "max_train_rows": p.max_train_rows,
                "features": list(FEATURE_NAMES),
            },
            "training": self.report,
        }

    def fixed(self) -> ContextModel:
        return ContextModel(self.params, self.window_days)


def default_prototypes(p: TrainParams, validation_days: int) -> dict[str, Recommender]:
    return {
        "popularity": Popularity(p.recent_days),
        "repeat": Repeat(p.recent_days),
        "recency_repeat": RecencyRepeat(None, validation_days, p.recent_days),
        "tifu_knn": TifuKnn(validation_days=validation_days, recent_days=p.recent_days),
    }


def holdout_length(n_days: int, p: TrainParams) -> int:
    """Hold-out sales days: up to `holdout_days`, a quarter of a short history, none for a single day."""
    if n_days < 2:
        return 0
    return max(1, min(p.holdout_days, n_days // 4))


@dataclass
class FittedSet:
    """Every candidate fitted at one cutoff, and why any could not be fitted."""

    cutoff: date
    models: dict[str, Recommender]
    skipped: dict[str, str]
    seconds: dict[str, float]


def fit_candidates(
    history: History,
    cutoff: date,
    p: TrainParams,
    window_days: int,
    segment_at: SegmentAt | None,
    tuned: dict[str, Recommender] | None = None,
    log: Callable[[str], None] | None = None,
    cache: FitCache | None = None,
) -> FittedSet:
    """Fit the candidates on `history.until(cutoff)`; `tuned`: reuse these hyperparameters instead of tuning.

    The base candidates are fitted first (the context model needs all of them, candidates or not); their
    tuned copies then fit the context model's training windows through one cache (`cache`: one shared with
    another fit on the same history, see `FitCache`).
    """
    say = log or (lambda _m: None)
    prototypes = default_prototypes(p, window_days)
    if tuned:
        prototypes = {n: (tuned[n].fixed() if n in tuned else m) for n, m in prototypes.items()}
    if cache is None or cache.history is not history:
        cache = FitCache(history, prototypes)
    cache.prototypes = dict(prototypes)
    view = cache.view(cutoff)
    wanted = [n for n in BASE_NAMES if n in p.candidates or "context_model" in p.candidates]
    models: dict[str, Recommender] = {}
    skipped: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for name in [*wanted, *(["context_model"] if "context_model" in p.candidates else [])]:
        t0 = time.perf_counter()
        try:
            if name == "context_model":
                model: Recommender = ContextModel(p, window_days).fit_with(view, cache, segment_at)
            else:
                model = prototypes[name].fit(view)
                cache.put(name, cutoff, model)
                cache.prototypes[name] = model
        except ValueError as exc:
            skipped[name] = str(exc)
            say(f"{history.region}: {name} not fitted as of {cutoff}: {exc}")
            continue
        seconds[name] = round(time.perf_counter() - t0, 2)
        if name in p.candidates:
            models[name] = model
    return FittedSet(cutoff, models, skipped, seconds)


def describe_all(models: dict[str, Recommender]) -> dict[str, Any]:
    return {name: m.describe() for name, m in models.items()}


def params_dict(p: TrainParams) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(p).items()}

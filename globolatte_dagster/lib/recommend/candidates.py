"""The candidate recommenders behind one small protocol: popularity, repeat, recency-weighted repeat, TIFU-KNN.

Every candidate is fitted on a point-in-time view of a region's history (`History.until(cutoff)`), scores a
batch of requests as an (R, P) matrix (higher first) and describes itself. The tournament, the registry,
`serving/score.py` and the benchmarks treat them alike (the learned context model, in `training.py`,
implements the same protocol). Ties are broken by the region's recent popularity, so every list is topped up
from popularity and a customer never seen before gets the region's picks.

Hyperparameters that the data should choose (the recency half-life; TIFU-KNN's alpha and neighbours) are
tuned on the last `validation_days` of the candidate's own training history only: nothing of a hold-out
window reaches a choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Protocol, Self

import numpy as np
from scipy import sparse

from globolatte_dagster.lib.recommend.data import History, Requests, Window, label_requests
from globolatte_dagster.lib.recommend.metrics import K, hits, top_k

TIE = 1e-6  # weight of the popularity tie-break in every score
MIN_TUNING_ROWS = 30  # fewer validation customer-days than this: keep the default hyperparameters


class Recommender(Protocol):
    """What every candidate implements (cornac's Recommender and scikit-learn's estimators, in small)."""

    name: ClassVar[str]
    complexity: ClassVar[int]  # simpler candidates win ties; a more complex one must lead beyond noise

    def fit(self, history: History) -> Self: ...

    def score(self, requests: Requests) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...

    def fixed(self) -> Self:
        """An unfitted copy with the tuned hyperparameters fixed (fitted again at other cutoffs)."""
        ...


def popularity_share(history: History, recent_days: int) -> np.ndarray:
    """(P,) share of the region's transactions with each product over the last `recent_days` (guests too)."""
    if len(history.pop_day) == 0:
        return np.zeros(history.n_products)
    last = int(history.pop_day.max())
    keep = history.pop_day > last - recent_days
    out = np.bincount(history.pop_prod[keep], weights=history.pop_n[keep], minlength=history.n_products)
    total = out.sum()
    return out / total if total > 0 else out


def tie_break(popularity: np.ndarray) -> np.ndarray:
    """(P,) values in (0, TIE]: the more popular, the higher; equal popularity by product order."""
    p = len(popularity)
    rank = np.lexsort((np.arange(p), -popularity))  # most popular first
    out = np.empty(p)
    out[rank] = (p - np.arange(p)) / (p + 1)
    return out * TIE


def customer_product_matrix(history: History, weights: np.ndarray | None = None) -> sparse.csr_matrix:
    """(C, P) sum of `weights` (default 1 per day the customer bought the product) over the history."""
    w = np.ones(len(history.day), dtype=np.float64) if weights is None else weights
    return sparse.csr_matrix(
        (w, (history.cust, history.prod)), shape=(history.n_customers, history.n_products)
    )


def _rows(matrix: sparse.csr_matrix | np.ndarray, cust: np.ndarray) -> np.ndarray:
    """Dense rows of a (C, P) matrix for request customers (-1: a row of zeros)."""
    known = cust >= 0
    out = np.zeros((len(cust), matrix.shape[1]))
    if known.any():
        rows = matrix[cust[known]]
        out[known] = rows.toarray() if sparse.issparse(rows) else rows
    return out


def hit_rate_on(candidate: Recommender, requests: Requests, bought: list[set[int]]) -> float:
    return float(hits(top_k(candidate.score(requests), K), bought).mean()) if len(bought) else float("nan")


def tuning_split(history: History, days: int) -> tuple[History, Requests, list[set[int]]] | None:
    """(training view, validation requests, bought) over the last `days` days of `history`, or None."""
    cutoff = history.cutoff or history.last_day
    first = cutoff - timedelta(days=days - 1)
    if days < 1 or not len(history.day) or first.toordinal() <= int(history.day.min()):
        return None
    window = Window(first - timedelta(days=1), first, cutoff)
    requests, bought = label_requests(history, window)
    if len(bought) < MIN_TUNING_ROWS:
        return None
    return history.until(window.cutoff), requests, bought


# ------------------------------------------------------------------------------------------ popularity
@dataclass
class Popularity:
    """The region's most bought products over the recent window (guests included), for everyone."""

    recent_days: int = 28
    name: ClassVar[str] = "popularity"
    complexity: ClassVar[int] = 0
    share: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def fit(self, history: History) -> Popularity:
        self.share = popularity_share(history, self.recent_days)
        return self

    def score(self, requests: Requests) -> np.ndarray:
        tb = tie_break(self.share)
        return np.broadcast_to(self.share + tb, (len(requests), len(self.share))).copy()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "params": {"recent_days": self.recent_days}}

    def fixed(self) -> Popularity:
        return Popularity(self.recent_days)


# -------------------------------------------------------------------------------------------- repeat
@dataclass
class Repeat:
    """The customer's own purchase frequency (share of their visit days with the product), topped up from popularity."""

    recent_days: int = 28
    name: ClassVar[str] = "repeat"
    complexity: ClassVar[int] = 1
    freq: sparse.csr_matrix | None = field(default=None, repr=False)
    tb: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def fit(self, history: History) -> Repeat:
        counts = customer_product_matrix(history)
        visits = np.bincount(history.visits()[0], minlength=history.n_customers).astype(float)
        self.freq = sparse.diags(1.0 / np.maximum(visits, 1.0)) @ counts
        self.tb = tie_break(popularity_share(history, self.recent_days))
        return self

    def score(self, requests: Requests) -> np.ndarray:
        return _rows(self.freq, requests.cust) + self.tb

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "params": {"tie_break": f"popularity over {self.recent_days} days"}}

    def fixed(self) -> Repeat:
        return Repeat(self.recent_days)


# --------------------------------------------------------------------------------- recency-weighted repeat
HALF_LIVES: tuple[float, ...] = (3.0, 7.0, 14.0, 30.0, 60.0, 120.0, 240.0)


@dataclass
class RecencyRepeat:
    """Each purchase weighted 0.5^(age / half-life); the half-life chosen on the training window only."""

    half_life_days: float | None = None  # None: tune over HALF_LIVES
    validation_days: int = 14
    recent_days: int = 28
    name: ClassVar[str] = "recency_repeat"
    complexity: ClassVar[int] = 2
    weights: sparse.csr_matrix | None = field(default=None, repr=False)
    tb: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    tuning: dict[str, float] = field(default_factory=dict)

    def _fit_at(self, history: History, half_life: float) -> RecencyRepeat:
        cutoff = (history.cutoff or history.last_day).toordinal()
        age = (cutoff - history.day).astype(np.float64)
        w = customer_product_matrix(history, np.power(0.5, age / half_life))
        model = RecencyRepeat(half_life, self.validation_days, self.recent_days)
        model.weights = w
        model.tb = tie_break(popularity_share(history, self.recent_days))
        return model

    def fit(self, history: History) -> RecencyRepeat:
        half_life = self.half_life_days
        if half_life is None:
            half_life = 30.0
            split = tuning_split(history, self.validation_days)
            if split is not None:
                train, requests, bought = split
                self.tuning = {
                    str(h): hit_rate_on(self._fit_at(train, h), requests, bought) for h in HALF_LIVES
                }
                half_life = float(max(HALF_LIVES, key=lambda h: (self.tuning[str(h)], h)))
        fitted = self._fit_at(history, half_life)
        self.weights, self.tb, self.half_life_days = fitted.weights, fitted.tb, half_life
        return self

    def score(self, requests: Requests) -> np.ndarray:
        return _rows(self.weights, requests.cust) + self.tb

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "params": {"half_life_days": self.half_life_days},
            "tuned_on_training_window": {"hit_rate_by_half_life": self.tuning} if self.tuning else None,
        }

    def fixed(self) -> RecencyRepeat:
        return RecencyRepeat(self.half_life_days, self.validation_days, self.recent_days)


# -------------------------------------------------------------------------------------------- TIFU-KNN
def tifu_user_vectors(
    history: History, n_groups: int = 7, within_decay: float = 0.9, group_decay: float = 0.7
) -> sparse.csr_matrix:
    """(C, P) TIFU-KNN user vectors (Hu et al., SIGIR 2020, eqs. 3-5).

    A customer's baskets (one per visit day, multi-hot), oldest first, are split into min(n_groups, n)
    consecutive groups of near-equal size (earlier groups take the remainder). A group's vector is the
    mean of its baskets weighted within_decay^(m - i) (i = 1..m, the latest basket of the group weight 1);
    the user vector is the mean of the group vectors weighted group_decay^(g - j) (the latest group weight 1).
    """
    c, p = history.n_customers, history.n_products
    if len(history.day) == 0:
        return sparse.csr_matrix((c, p))
    order = np.lexsort((history.day, history.cust))
    cust, day, prod = history.cust[order], history.day[order], history.prod[order]
    new_basket = np.ones(len(cust), dtype=bool)
    new_basket[1:] = (cust[1:] != cust[:-1]) | (day[1:] != day[:-1])
    basket = np.cumsum(new_basket) - 1  # basket id per line
    b_cust = cust[new_basket]  # customer per basket, baskets grouped by customer in time order
    first = np.r_[0, np.flatnonzero(b_cust[1:] != b_cust[:-1]) + 1]
    n_per = np.diff(np.r_[first, len(b_cust)])  # baskets per customer (of those with any)
    pos = np.arange(len(b_cust)) - np.repeat(first, n_per)  # 0 = oldest basket of the customer
    n = np.repeat(n_per, n_per)
    g = np.minimum(n_groups, n)
    base, extra = n // g, n % g
    big = extra * (base + 1)  # baskets in the first `extra` groups, which hold base + 1 each
    group = np.where(pos < big, pos // (base + 1), extra + (pos - big) // np.maximum(base, 1))
    size = np.where(group < extra, base + 1, base)
    start = np.where(group < extra, group * (base + 1), big + (group - extra) * base)
    i = pos - start + 1  # 1..m within the group
    w = np.power(within_decay, size - i) / size * np.power(group_decay, g - 1 - group) / g
    return sparse.csr_matrix((w[basket], (cust, prod)), shape=(c, p))


KNN_ALPHAS: tuple[float, ...] = (0.5, 0.7, 0.9)
KNN_NEIGHBOURS: tuple[int, ...] = (30, 100, 300)


def _neighbours(vectors: sparse.csr_matrix, known: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(known customer ids, (len(ids), k') their k' = min(k, len(ids) - 1) nearest other known customers).

    Euclidean, as the paper; nearest first, so the first j columns are the j nearest for any j <= k'.
    """
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    ids = np.flatnonzero(known)
    if len(ids) < 2:
        return ids, np.zeros((len(ids), 0), dtype=np.int32)
    dense = vectors[ids].toarray().astype(np.float32)
    k_max = min(k, len(ids) - 1)
    with threadpool_limits(limits=1):  # threads that wait on a busy machine cost more than they give
        nn = NearestNeighbors(n_neighbors=k_max + 1, algorithm="brute").fit(dense)
        _, nbr = nn.kneighbors(dense)
    # drop each customer itself (usually the first column; identical vectors may order differently)
    own = nbr == np.arange(len(ids))[:, None]
    own[~own.any(axis=1), -1] = True
    return ids, nbr[~own].reshape(len(ids), k_max).astype(np.int32)


def _neighbour_means(
    vectors: sparse.csr_matrix, known: np.ndarray, ks: tuple[int, ...], found: tuple | None = None
) -> dict[int, np.ndarray]:
    """For each k: (C, P) mean of the k nearest other known customers' vectors (`found`: `_neighbours`)."""
    c, p = vectors.shape
    ids, nbr = found if found is not None else _neighbours(vectors, known, max(ks))
    out = {k: np.zeros((c, p), dtype=np.float32) for k in ks}
    if len(ids) < 2:
        return out
    dense = vectors[ids].toarray().astype(np.float32)
    for k in ks:
        kk = min(k, nbr.shape[1])
        rows = np.repeat(np.arange(len(ids)), kk)
        a = sparse.csr_matrix(
            (np.full(len(rows), 1.0 / kk), (rows, nbr[:, :kk].ravel())), shape=(len(ids), len(ids))
        )
        out[k][ids] = a @ dense
    return out


@dataclass
class TifuKnn:
    """TIFU-KNN: alpha * the customer's decayed frequency vector + (1 - alpha) * their neighbours' mean."""

    alpha: float | None = None  # None: tune over KNN_ALPHAS
    neighbours: int | None = None  # None: tune over KNN_NEIGHBOURS
    n_groups: int = 7
    within_decay: float = 0.9
    group_decay: float = 0.7
    validation_days: int = 14
    recent_days: int = 28
    name: ClassVar[str] = "tifu_knn"
    complexity: ClassVar[int] = 3
    scores_: np.ndarray | None = field(default=None, repr=False)
    tb: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    tuning: dict[str, float] = field(default_factory=dict)

    def _parts(self, history: History, ks: tuple[int, ...]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        # The user vectors and the nearest neighbours of a view are kept with it (`History.memo`): the
        # tuning split and the context model's first window are the same view, and need the same search.
        key = ("tifu_knn", self.n_groups, self.within_decay, self.group_decay)
        known = history.known_customers()
        found = history.memo.get(key)
        if found is None or found[2].shape[1] < min(max(ks), max(int(known.sum()) - 1, 0)):
            vectors = tifu_user_vectors(history, self.n_groups, self.within_decay, self.group_decay)
            found = (vectors, *_neighbours(vectors, known, max(ks)))
            history.memo[key] = found
        vectors, ids, nbr = found
        return vectors.toarray().astype(np.float32), _neighbour_means(vectors, known, ks, (ids, nbr))

    def fit(self, history: History) -> TifuKnn:
        alphas = KNN_ALPHAS if self.alpha is None else (self.alpha,)
        ks = KNN_NEIGHBOURS if self.neighbours is None else (self.neighbours,)
        best = (alphas[len(alphas) // 2], ks[len(ks) // 2])
        split = tuning_split(history, self.validation_days) if len(alphas) * len(ks) > 1 else None
        if split is not None:
            train, requests, bought = split
            own, means = self._parts(train, ks)
            tb = tie_break(popularity_share(train, self.recent_days))
            for a in alphas:
                for k in ks:
                    probe = TifuKnn(a, k, recent_days=self.recent_days)
                    probe.scores_, probe.tb = a * own + (1 - a) * means[k], tb
                    self.tuning[f"alpha={a},k={k}"] = hit_rate_on(probe, requests, bought)
            best = max(
                ((a, k) for a in alphas for k in ks),
                key=lambda ak: (self.tuning[f"alpha={ak[0]},k={ak[1]}"], ak[0], -ak[1]),
            )
        self.alpha, self.neighbours = best
        own, means = self._parts(history, (self.neighbours,))
        self.scores_ = self.alpha * own + (1 - self.alpha) * means[self.neighbours]
        self.tb = tie_break(popularity_share(history, self.recent_days))
        return self

    def score(self, requests: Requests) -> np.ndarray:
        return _rows(self.scores_, requests.cust) + self.tb

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "params": {
                "alpha": self.alpha,
                "neighbours": self.neighbours,
                "n_groups": self.n_groups,
                "within_decay": self.within_decay,
                "group_decay": self.group_decay,
            },
            "tuned_on_training_window": {"hit_rate": self.tuning} if self.tuning else None,
        }

    def fixed(self) -> TifuKnn:
        return TifuKnn(
            self.alpha,
            self.neighbours,
            self.n_groups,
            self.within_decay,
            self.group_decay,
            self.validation_days,
            self.recent_days,
        )

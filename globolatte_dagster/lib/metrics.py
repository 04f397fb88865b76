"""Ranking metrics: top-k from scores, hit rate@k as DESIGN.md defines it, catalogue coverage."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def top_k(scores: np.ndarray, k: int, tie_break: np.ndarray | None = None) -> np.ndarray:
    """Column indices of the k best scores per row (ties: lower `tie_break`, else lower index, first)."""
    scores = np.asarray(scores, dtype=float)
    n, p = scores.shape
    k = min(k, p)
    secondary = np.broadcast_to(np.arange(p) if tie_break is None else tie_break, (n, p))
    order = np.lexsort((secondary, -scores), axis=1)
    return order[:, :k]


def hits(recommended: np.ndarray, bought: Sequence[Iterable[int]]) -> np.ndarray:
    """1 where any recommended index of a row is in that row's bought set, else 0."""
    return np.array(
        [int(bool(set(map(int, rec)) & set(b))) for rec, b in zip(recommended, bought, strict=True)],
        dtype=np.int64,
    )


def hit_rate(recommended: np.ndarray, bought: Sequence[Iterable[int]]) -> float:
    """Share of (day, customer who bought that day) rows where one of the recommendations was bought."""
    if len(recommended) == 0:
        raise ValueError("hit rate of no rows: no customer bought anything in the hold-out")
    return float(hits(recommended, bought).mean())


def coverage(recommended: np.ndarray, n_products: int) -> float:
    """Share of the candidate products that appear in at least one recommendation."""
    if n_products == 0:
        return 0.0
    return float(len(np.unique(np.asarray(recommended).ravel())) / n_products)

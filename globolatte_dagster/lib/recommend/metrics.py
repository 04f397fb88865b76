"""Hit rate@K as DESIGN.md defines it, top-k from scores, and bootstrap intervals over customer-days.

`K` is the one constant for the list length that is measured and gated on; metric names derive from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

K = 3
HIT_RATE = f"hit_rate_at_{K}"


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Column indices of the k best scores per row, best first (ties: lower column index first).

    `exclude` (same shape, bool) removes entries (the discover list's already-bought products); a row
    with fewer than k allowed entries is padded with -1.
    """
    scores = np.asarray(scores, dtype=float)
    _n, p = scores.shape
    k = min(k, p)
    if exclude is not None:
        scores = np.where(exclude, -np.inf, scores)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    if exclude is not None:
        taken = np.take_along_axis(scores, order, axis=1)
        order = np.where(np.isneginf(taken), -1, order)
    return order


def hits(recommended: np.ndarray, bought: Sequence[set[int]]) -> np.ndarray:
    """(R,) 1.0 where any recommended index of a row is in that row's bought set, else 0.0."""
    if len(bought) == 0:
        return np.zeros(0)
    n_cols = int(max(recommended.max(initial=0), max((max(b) for b in bought if b), default=0))) + 1
    mask = np.zeros((len(bought), n_cols), dtype=bool)
    rows = np.repeat(np.arange(len(bought)), [len(b) for b in bought])
    cols = np.fromiter((i for b in bought for i in b), dtype=np.int64, count=len(rows))
    mask[rows, cols] = True
    rec = np.where(recommended >= 0, recommended, 0)
    got = np.take_along_axis(mask, rec, axis=1) & (recommended >= 0)
    return got.any(axis=1).astype(float)


def bootstrap(
    hit_arrays: dict[str, np.ndarray],
    reference: str,
    n_boot: int = 1000,
    seed: int = 0,
    draws: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """Per candidate: hit rate with a 95% bootstrap interval, and its paired difference from `reference`.

    Resamples customer-days (rows) with replacement, the same rows for every candidate (paired).
    """
    names = list(hit_arrays)
    if not names:
        return {}
    n = len(hit_arrays[names[0]])
    out: dict[str, dict[str, float]] = {}
    if n == 0:
        return {name: {"hit_rate": float("nan")} for name in names}
    means = draws if draws is not None else boot_means(hit_arrays, n_boot, seed)
    ref = hit_arrays[reference]
    ref_boot = means[reference]
    for name in names:
        h = hit_arrays[name]
        boot = means[name]
        diff = boot - ref_boot
        out[name] = {
            "hit_rate": float(h.mean()),
            "ci_low": float(np.quantile(boot, 0.025)),
            "ci_high": float(np.quantile(boot, 0.975)),
            "diff": float(h.mean() - ref.mean()),
            "diff_ci_low": float(np.quantile(diff, 0.025)),
            "diff_ci_high": float(np.quantile(diff, 0.975)),
        }
    return out


def paired_lead(
    a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0, draws: tuple | None = None
) -> tuple[float, float, float]:
    """Mean of a - b with its 95% bootstrap interval over the same rows (`draws`: their `boot_means`)."""
    if len(a) == 0:
        return float("nan"), float("nan"), float("nan")
    ma, mb = draws if draws is not None else _boot_means([a, b], n_boot, seed)
    diff = ma - mb
    return float(a.mean() - b.mean()), float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))


def boot_means(hit_arrays: dict[str, np.ndarray], n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Per candidate: its mean over each of `n_boot` resamples of the rows, the same resamples for all.

    The tournament's table and its gate read the same draws, so an interval in the table and the
    verdict that names it always agree.
    """
    names = list(hit_arrays)
    if not names or len(hit_arrays[names[0]]) == 0:
        return {name: np.full(n_boot, np.nan) for name in names}
    means = _boot_means([hit_arrays[name] for name in names], n_boot, seed)
    return dict(zip(names, means, strict=True))


MULTINOMIAL_MAX_DISTINCT = 4096


def _boot_means(arrays: list[np.ndarray], n_boot: int, seed: int, chunk: int = 50) -> np.ndarray:
    """(len(arrays), n_boot) means of the arrays over the same bootstrap resamples of their rows.

    When the rows take few distinct values (hits are 0 or 1, so m candidates give at most 2^m rows), a
    resample of n rows is a multinomial draw of how often each distinct row comes up, the same distribution
    as drawing n row indices with replacement, at a cost that does not grow with n.
    """
    n = len(arrays[0])
    stacked = np.vstack([np.asarray(a, dtype=np.float64) for a in arrays])
    rng = np.random.default_rng(seed)
    values, counts = np.unique(stacked.T, axis=0, return_counts=True)
    if len(values) <= MULTINOMIAL_MAX_DISTINCT:
        draws = rng.multinomial(n, counts / n, size=n_boot)  # (n_boot, distinct rows)
        return (draws @ values).T / n
    out = np.empty((len(arrays), n_boot))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(size, n))
        out[:, start : start + size] = stacked[:, idx].mean(axis=2)
    return out

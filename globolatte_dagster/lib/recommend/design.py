"""Feature rows of the learned context model: (request, candidate product) pairs as of a snapshot cutoff.

A `Snapshot` holds what a region's history says as of one cutoff: per customer and product, how often and
how recently they bought it, on which kinds of days (weekend or holiday, temperature band); per customer,
their visits on such days; per product, the region's share in each context, its trend and age; per
segment, its members' recent shares. `design` turns a batch of requests (each with its day's context and
its horizon, the days since the cutoff) into one row per (request, product), with the other candidates'
scores and ranks as features, so the learned model starts from what they know.

No product id is a feature, so the design carries over to any catalogue. Unknown values (no weather, no
history, no holiday in the window) stay NaN, which the gradient-boosted trees handle natively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from globolatte_dagster.lib.recommend.context import N_TEMP_BANDS, is_holiday, temp_band
from globolatte_dagster.lib.recommend.data import History, Requests

RECENT_DAYS = 28
PAIR_COLUMNS = ("n", "last_day", "n_off", "n_holiday", "n_recent", *(f"n_t{j}" for j in range(N_TEMP_BANDS)))
BASE_NAMES = ("popularity", "repeat", "recency_repeat", "tifu_knn")
FEATURE_NAMES: tuple[str, ...] = (
    *(f"score_{b}" for b in BASE_NAMES),
    *(f"rank_{b}" for b in BASE_NAMES),
    "cp_log_n",
    "cp_days_since",
    "cp_share_daytype",
    "cp_share_holiday",
    "cp_share_temp",
    "cust_log_visits",
    "cust_days_since_visit",
    "cust_mean_hour",
    "cust_serving_share_temp",
    "prod_hot",
    "prod_iced",
    "prod_share_daytype",
    "prod_share_holiday",
    "prod_share_temp",
    "prod_trend",
    "prod_age_days",
    "seg_share",
    "temp_max_c",
    "temp_anomaly",
    "precip_mm",
    "weekday",
    "is_weekend",
    "is_holiday",
    "season",
    "horizon_days",
)
WEATHER_FEATURES = (
    "cp_share_temp",
    "cust_serving_share_temp",
    "prod_share_temp",
    "temp_max_c",
    "temp_anomaly",
    "precip_mm",
)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = a / b
    return np.where(b > 0, out, np.nan)


def band_weights(band: np.ndarray) -> np.ndarray:
    """(R, B) kernel weights over temperature bands: 1 at the day's band, 0.5 next to it; zeros if unknown."""
    b = np.arange(N_TEMP_BANDS)[None, :]
    dist = np.abs(b - np.nan_to_num(band, nan=-10.0)[:, None])
    w = np.where(dist == 0, 1.0, np.where(dist == 1, 0.5, 0.0))
    return np.where(np.isnan(band)[:, None], 0.0, w)


def day_attributes(history: History, days: np.ndarray) -> pd.DataFrame:
    """Per distinct day ordinal: off-day (weekend or holiday), holiday, temperature band (NaN: no weather)."""
    uniq = np.unique(days)
    rows = []
    for d in uniq:
        day = date.fromordinal(int(d))
        hol = is_holiday(history.region, day)
        w = history.weather.by_day.get(day)
        rows.append((int(d), day.weekday() >= 5 or hol, hol, float("nan") if w is None else w[0]))
    out = pd.DataFrame(rows, columns=["day", "off", "holiday", "temp"])
    out["band"] = temp_band(out["temp"].to_numpy())
    return out.set_index("day")


@dataclass
class Snapshot:
    """Everything the design needs about a region as of one cutoff (see the module docstring)."""

    cutoff: int  # day ordinal
    pairs: np.ndarray  # (N, len(PAIR_COLUMNS)) float
    pair_index: sparse.csr_matrix  # (C, P) pair row + 1 (0: never bought)
    visits: np.ndarray  # (C, 4 + B): all, off-days, holidays, last visit ordinal, then per band
    mean_hour: np.ndarray  # (C,)
    prod: np.ndarray  # (P, 4 + B): recent share, off-day share, holiday share, weekday share, per band
    prod_trend: np.ndarray  # (P,)
    prod_age: np.ndarray  # (P,) days since the product's first sale in the history (NaN: none)
    seg_share: np.ndarray  # (S, P)
    segment: np.ndarray  # (C,) -1 unknown
    serving: np.ndarray  # (P,)
    median_temp: float
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, history: History, segment: np.ndarray | None = None) -> Snapshot:
        cutoff = (history.cutoff or history.last_day).toordinal()
        c_n, p_n = history.n_customers, history.n_products
        # every loyalty line's day is a sales day (`pop_day` counts every sale, guests and loyalty alike)
        attrs = day_attributes(history, history.pop_day)
        days = attrs.index.to_numpy()
        off_by_day = attrs["off"].to_numpy(dtype=float)
        hol_by_day = attrs["holiday"].to_numpy(dtype=float)
        band_by_day = attrs["band"].to_numpy()
        # per (customer, product) pair: lines sorted by pair, then sums over each pair's run of lines
        code = history.cust.astype(np.int64) * p_n + history.prod
        order = np.argsort(code, kind="stable")
        code_s, day_s = code[order], history.day[order]
        starts = np.flatnonzero(np.r_[True, code_s[1:] != code_s[:-1]]) if len(code_s) else np.zeros(0, int)
        at = np.searchsorted(days, day_s)
        band = band_by_day[at]
        columns = {
            "n": np.ones(len(day_s)),
            "n_off": off_by_day[at],
            "n_holiday": hol_by_day[at],
            "n_recent": (day_s > cutoff - RECENT_DAYS).astype(float),
            **{f"n_t{j}": (band == j).astype(float) for j in range(N_TEMP_BANDS)},
        }
        pairs = np.zeros((len(starts), len(PAIR_COLUMNS)))
        if len(starts):
            for name, values in columns.items():
                pairs[:, PAIR_COLUMNS.index(name)] = np.add.reduceat(values, starts)
            pairs[:, PAIR_COLUMNS.index("last_day")] = np.maximum.reduceat(day_s, starts)
        keys = (
            np.stack([code_s[starts] // p_n, code_s[starts] % p_n], axis=1)
            if len(starts)
            else np.zeros((0, 2), dtype=np.int64)
        )
        pair_index = sparse.csr_matrix(
            (np.arange(1, len(pairs) + 1, dtype=np.float64), (keys[:, 0], keys[:, 1])), shape=(c_n, p_n)
        )
        # per customer: visits (all, off-days, holidays, per band) and the last visit day
        v_cust, v_day = history.visits()
        v_at = np.searchsorted(days, v_day)
        visits = np.zeros((c_n, 4 + N_TEMP_BANDS))
        visits[:, 0] = np.bincount(v_cust, minlength=c_n)
        visits[:, 1] = np.bincount(v_cust, weights=off_by_day[v_at], minlength=c_n)
        visits[:, 2] = np.bincount(v_cust, weights=hol_by_day[v_at], minlength=c_n)
        last_visit = np.full(c_n, np.nan)
        if len(v_cust):  # visits are sorted by customer then day: each customer's last entry is the latest
            ends = np.r_[np.flatnonzero(v_cust[1:] != v_cust[:-1]), len(v_cust) - 1]
            last_visit[v_cust[ends]] = v_day[ends]
        visits[:, 3] = last_visit
        for j in range(N_TEMP_BANDS):
            visits[:, 4 + j] = np.bincount(
                v_cust, weights=(band_by_day[v_at] == j).astype(float), minlength=c_n
            )
        hour = history.hour.astype(float)
        seen = ~np.isnan(hour)
        hour_n = np.bincount(history.cust[seen], minlength=c_n)
        hour_sum = np.bincount(history.cust[seen], weights=hour[seen], minlength=c_n)
        mean_hour = np.where(hour_n > 0, hour_sum / np.maximum(hour_n, 1), np.nan)
        prod, trend, age = _product_context(history, attrs, cutoff)
        seg = np.full(c_n, -1) if segment is None else np.asarray(segment)
        seg_share = _segment_shares(keys, pairs[:, PAIR_COLUMNS.index("n_recent")], seg, p_n)
        return cls(
            cutoff=cutoff,
            pairs=pairs,
            pair_index=pair_index,
            visits=visits,
            mean_hour=mean_hour,
            prod=prod,
            prod_trend=trend,
            prod_age=age,
            seg_share=seg_share,
            segment=seg,
            serving=history.serving,
            median_temp=history.weather.median_temp(date.fromordinal(cutoff - 365), date.fromordinal(cutoff)),
        )

    def pair_block(self, cust: np.ndarray) -> np.ndarray:
        """(R, P, len(PAIR_COLUMNS)) pair aggregates of request customers (NaN where never bought)."""
        known = cust >= 0
        idx = np.zeros((len(cust), self.pair_index.shape[1]), dtype=np.int64)
        if known.any():
            idx[known] = self.pair_index[cust[known]].toarray().astype(np.int64)
        padded = np.vstack([np.full((1, self.pairs.shape[1]), np.nan), self.pairs])
        return padded[idx]


def _product_context(history: History, attrs: pd.DataFrame, cutoff: int) -> tuple[np.ndarray, ...]:
    p_n = history.n_products
    pop = pd.DataFrame({"day": history.pop_day, "prod": history.pop_prod, "n": history.pop_n})
    a = attrs.reindex(pop["day"].to_numpy())
    off, hol, band = a["off"].to_numpy(dtype=bool), a["holiday"].to_numpy(dtype=bool), a["band"].to_numpy()
    prod = np.full((p_n, 4 + N_TEMP_BANDS), np.nan)

    def share(mask: np.ndarray) -> np.ndarray:
        counts = np.bincount(pop["prod"].to_numpy()[mask], weights=pop["n"].to_numpy()[mask], minlength=p_n)
        return _div(counts, np.full(p_n, counts.sum()))

    recent = pop["day"].to_numpy() > cutoff - RECENT_DAYS
    prod[:, 0] = share(recent)
    prod[:, 1] = share(off)
    prod[:, 2] = share(hol)
    prod[:, 3] = share(~off)
    for j in range(N_TEMP_BANDS):
        prod[:, 4 + j] = share(band == j)
    week = share(pop["day"].to_numpy() > cutoff - 7)
    trend = _div(week, prod[:, 0])
    first = pop.groupby("prod")["day"].min()
    age = np.full(p_n, np.nan)
    age[first.index.to_numpy()] = cutoff - first.to_numpy()
    return prod, trend, age


def _segment_shares(keys: np.ndarray, n_recent: np.ndarray, segment: np.ndarray, p_n: int) -> np.ndarray:
    n_seg = int(segment.max()) + 1 if len(segment) and segment.max() >= 0 else 0
    if n_seg == 0 or len(keys) == 0:
        return np.zeros((n_seg, p_n))
    seg = segment[keys[:, 0]]
    ok = seg >= 0
    flat = seg[ok].astype(np.int64) * p_n + keys[ok, 1]
    out = np.bincount(flat, weights=n_recent[ok], minlength=n_seg * p_n).reshape(n_seg, p_n)
    totals = out.sum(axis=1, keepdims=True)
    return np.where(totals > 0, out / np.maximum(totals, 1e-12), 0.0)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1 = best, per row."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :], axis=1)
    return ranks.astype(float)


def design(snap: Snapshot, base_scores: dict[str, np.ndarray], req: Requests) -> np.ndarray:
    """(R, P, len(FEATURE_NAMES)) float32 feature block for the requests (see the module docstring)."""
    r_n = len(req)
    p_n = len(snap.serving)
    col = {c: i for i, c in enumerate(PAIR_COLUMNS)}
    cp = snap.pair_block(req.cust)  # (R, P, K) NaN where never bought
    known = req.cust >= 0
    ci = np.where(known, req.cust, 0)
    vis = np.where(known[:, None], snap.visits[ci], np.nan)  # (R, 4 + B)
    n = np.nan_to_num(cp[:, :, col["n"]])
    ctx = req.ctx
    off, hol = ctx.off_day, ctx.holiday
    w = band_weights(ctx.band)  # (R, B)
    bands_cp = np.nan_to_num(cp[:, :, col["n_t0"] : col["n_t0"] + N_TEMP_BANDS])  # (R, P, B)
    bands_vis = vis[:, 4:]  # (R, B)
    near_cp = np.einsum("rpb,rb->rp", bands_cp, w)
    near_vis = np.nansum(bands_vis * w, axis=1)
    n_off = np.nan_to_num(cp[:, :, col["n_off"]])
    share_daytype = np.where(
        off[:, None], _div(n_off, vis[:, 1:2]), _div(n - n_off, (vis[:, 0] - vis[:, 1])[:, None])
    )
    share_holiday = np.where(
        hol[:, None], _div(np.nan_to_num(cp[:, :, col["n_holiday"]]), vis[:, 2:3]), np.nan
    )
    iced, hot = snap.serving == "iced", snap.serving == "hot"
    iced_share_near = _div(near_cp[:, iced].sum(axis=1), near_cp[:, iced | hot].sum(axis=1))
    serving_share = np.where(
        iced[None, :], iced_share_near[:, None], np.where(hot[None, :], 1 - iced_share_near[:, None], np.nan)
    )
    horizon = req.horizon[:, None]
    prod = snap.prod
    prod_daytype = np.where(off[:, None], prod[None, :, 1], prod[None, :, 3])
    prod_holiday = np.where(hol[:, None], prod[None, :, 2], np.nan)
    prod_temp = _div(w @ np.nan_to_num(prod[:, 4:]).T, w.sum(axis=1)[:, None])
    seg = np.where(known, snap.segment[ci], -1)
    if len(snap.seg_share):
        seg_share = np.where((seg >= 0)[:, None], snap.seg_share[np.clip(seg, 0, None)], np.nan)
    else:
        seg_share = np.full((r_n, p_n), np.nan)

    def rows(x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(x, dtype=float)[:, None], (r_n, p_n))

    def prods(x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(x, dtype=float)[None, :], (r_n, p_n))

    scores = [base_scores[b] for b in BASE_NAMES]
    cols = [
        *scores,
        *(_ranks(s) for s in scores),
        np.log1p(n),
        snap.cutoff - cp[:, :, col["last_day"]] + horizon,
        share_daytype,
        share_holiday,
        _div(near_cp, near_vis[:, None]),
        rows(np.log1p(np.nan_to_num(vis[:, 0]))),
        rows(snap.cutoff - vis[:, 3] + req.horizon),
        rows(np.where(known, snap.mean_hour[ci], np.nan)),
        serving_share,
        prods(hot),
        prods(iced),
        prod_daytype,
        prod_holiday,
        prod_temp,
        prods(snap.prod_trend),
        prods(snap.prod_age) + horizon,
        seg_share,
        rows(ctx.temp),
        rows(ctx.temp - snap.median_temp),
        rows(ctx.precip),
        rows(ctx.weekday),
        rows(ctx.weekend),
        rows(ctx.holiday),
        rows(ctx.season),
        rows(req.horizon),
    ]
    return np.stack([np.broadcast_to(c, (r_n, p_n)) for c in cols], axis=2).astype(np.float32)

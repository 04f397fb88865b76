"""The preference model: P(customer buys product on a day | they visit), as a candidate-scoring classifier.

Each row is (customer, candidate product, day). Its features come from a point-in-time snapshot of the
warehouse features as of the day before (`lib.features`): the customer's own purchase counts of the
product (all, recency weighted, on this kind of day, at similar temperatures), the product's recent
popularity in the same context, the customer's segment's share of the product, the customer's
behaviour and the day's context (temperature, rain, weekday, holiday, season). Repeat buying stays the
strong prior and the model learns what context adds to it. Nothing identifies a product by id, so the
same model design works for any catalogue.

`PreferenceModel` is one self-contained, picklable object per region: estimator, feature layout,
product list, the serving snapshot (as of the last landed day), cold-start popularity, recent and
forecast weather, and metrics. `recommend(requests)` is what the batch mart and the endpoint call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import holidays
import numpy as np
import pandas as pd

from globolatte_dagster.lib import features as F
from globolatte_dagster.lib import metrics as M
from globolatte_dagster.lib.contract import REGIONS, ContractError, parse_day
from globolatte_dagster.lib.reference import season
from globolatte_dagster.lib.segments import Segmenter, fit_segments

if TYPE_CHECKING:  # scikit-learn is imported where a model is fitted or scores (see lib/plots.py)
    from sklearn.ensemble import HistGradientBoostingClassifier

SEASONS = ("winter", "spring", "summer", "autumn")
CP_COLS = (
    "n",
    "rw",
    "last_age",
    "n_weekend",
    "n_holiday",
    "n_recent",
    *(f"n_t{j}" for j in range(F.N_TEMP_BANDS)),
)
CUST_TX = (
    "n_transactions",
    "n_tx_weekend",
    "n_tx_holiday",
    "n_tx_recent",
    *(f"n_tx_t{j}" for j in range(F.N_TEMP_BANDS)),
)
CUST_FEATURES = (
    "visits_per_week",
    "recency_days",
    "spend_per_visit_usd",
    "items_per_visit",
    "weekend_share",
    "iced_share",
    "weather_sensitivity",
    "mean_hour",
)
POP_COLS = ("n", "n_weekend", "n_holiday", "n_week", *(f"n_t{j}" for j in range(F.N_TEMP_BANDS)))
POP_TOT = (
    "n_tx",
    "n_tx_weekend",
    "n_tx_holiday",
    "n_tx_week",
    *(f"n_tx_t{j}" for j in range(F.N_TEMP_BANDS)),
)
FEATURE_NAMES: tuple[str, ...] = (
    "cp_share",
    "cp_rw_share",
    "cp_log_n",
    "cp_days_since",
    "cp_rank",
    "cp_share_daytype",
    "cp_share_holiday",
    "cp_share_temp",
    "cust_serving_share_temp",
    "cust_log_tx",
    *(f"cust_{c}" for c in CUST_FEATURES),
    "prod_hot",
    "prod_iced",
    "prod_share",
    "prod_share_daytype",
    "prod_share_holiday",
    "prod_share_temp",
    "prod_trend",
    "seg_share",
    "temp_max_c",
    "temp_anomaly",
    "precip_mm",
    "weekday",
    "is_weekend",
    "is_holiday",
    "season",
)
BASIS = ("model", "segment", "popularity")
MISSING = -999.0


class BadRequest(ValueError):
    """A scoring request that does not fit the scoring contract (the endpoint answers 400)."""


# ----------------------------------------------------------------------------------------------- context
@lru_cache(maxsize=64)
def _holiday_book(country: str, year: int) -> Any:
    return holidays.country_holidays(country, years=[year])


def is_holiday(region: str, day: date) -> bool:
    return day in _holiday_book(REGIONS[region].country, day.year)


@dataclass(frozen=True)
class DayContext:
    day: date
    temp_max_c: float  # NaN when unknown
    precip_mm: float  # NaN when unknown
    weekday: int
    is_weekend: bool
    is_holiday: bool
    season: int
    weather_source: str  # observed | request | forecast | recent_average | none

    @property
    def off_day(self) -> bool:
        return self.is_weekend or self.is_holiday


def day_context(region: str, day: date, temp: float | None, precip: float | None, source: str) -> DayContext:
    return DayContext(
        day,
        float("nan") if temp is None else float(temp),
        float("nan") if precip is None else float(precip),
        day.weekday(),
        day.weekday() >= 5,
        is_holiday(region, day),
        SEASONS.index(season(day)),
        source,
    )


@dataclass
class WeatherBook:
    """Observed and forecast weather by day, and the recent average used where a day has none."""

    by_day: dict[date, tuple[float, float]]
    average_days: int = 7

    @classmethod
    def from_frame(cls, weather: pd.DataFrame) -> WeatherBook:
        by_day = {
            d: (float(t), float(p) if p == p else float("nan"))
            for d, t, p in weather[["day", "temp_max_c", "precip_mm"]].itertuples(index=False)
            if t == t
        }
        return cls(by_day)

    def recent_average(self, before: date) -> tuple[float, float] | None:
        """Mean of the last `average_days` days with weather on or before `before` (None if none)."""
        days = sorted(d for d in self.by_day if d <= before)[-self.average_days :]
        if not days:
            return None
        temps = [self.by_day[d][0] for d in days]
        precs = [self.by_day[d][1] for d in days if not math.isnan(self.by_day[d][1])]
        return float(np.mean(temps)), float(np.mean(precs)) if precs else float("nan")

    def context(
        self, region: str, day: date, known_until: date, source_if_present: str = "observed"
    ) -> DayContext:
        """The day's weather if there is a file for it, else the recent average as of `known_until`."""
        if day in self.by_day:
            t, p = self.by_day[day]
            return day_context(region, day, t, p, source_if_present if day <= known_until else "forecast")
        avg = self.recent_average(known_until)
        if avg is None:
            return day_context(region, day, None, None, "none")
        return day_context(region, day, avg[0], avg[1], "recent_average")


# ---------------------------------------------------------------------------------------------- snapshot
@dataclass
class Snapshot:
    """Everything the model knows about a region as of one cutoff day, as dense arrays."""

    region: str
    as_of: date
    products: np.ndarray  # (P,) product ids, sorted
    serving: np.ndarray  # (P,) hot | iced | none
    customer_ids: np.ndarray  # (C,)
    cp: np.ndarray  # (C, P, len(CP_COLS)) float32
    cust_tx: np.ndarray  # (C, len(CUST_TX)) float64
    cust: np.ndarray  # (C, len(CUST_FEATURES)) float64
    low_history: np.ndarray  # (C,) bool
    segment: np.ndarray  # (C,) int, -1 unknown
    seg_share: np.ndarray  # (S, P) recent share of each product in each segment
    pop: np.ndarray  # (P, len(POP_COLS))
    pop_tot: np.ndarray  # (len(POP_TOT),)
    median_temp: float
    lookback_days: int
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {str(c): i for i, c in enumerate(self.customer_ids)}

    @property
    def loyalty(self) -> tuple[np.ndarray, np.ndarray]:
        """Counts summed over all customers: (P, len(CP_COLS)) per product and (len(CUST_TX),) totals."""
        if not hasattr(self, "_loyalty"):
            self._loyalty = (self.cp.sum(axis=0, dtype=np.float64), self.cust_tx.sum(axis=0))
        return self._loyalty

    @property
    def prod_share(self) -> np.ndarray:
        return self.pop[:, 0] / max(self.pop_tot[0], 1.0)


def build_snapshot(
    region: str,
    as_of: date,
    cf: pd.DataFrame,
    cp: pd.DataFrame,
    pop: pd.DataFrame,
    catalogue: pd.DataFrame,
    segments: pd.Series | None,
    lookback_days: int,
) -> Snapshot:
    """A snapshot from the feature frames of one cutoff. `segments`: customer_id -> segment."""
    pop = pop[pop["n"] > 0].sort_values("product_id")
    products = pop["product_id"].astype(str).to_numpy()
    serving_of = dict(
        zip(catalogue["product_id"].astype(str), catalogue["serving"].fillna("none"), strict=True)
    )
    serving = np.array([serving_of.get(p, "none") for p in products], dtype=object)
    cf = cf.sort_values("customer_id").reset_index(drop=True)
    customers = cf["customer_id"].astype(str).to_numpy()
    c_index = pd.Index(customers)
    p_index = pd.Index(products)
    arr = np.zeros((len(customers), len(products), len(CP_COLS)), dtype=np.float32)
    if len(cp):
        ci = c_index.get_indexer(cp["customer_id"].astype(str))
        pi = p_index.get_indexer(cp["product_id"].astype(str))
        ok = (ci >= 0) & (pi >= 0)
        arr[ci[ok], pi[ok], :] = cp.loc[ok, list(CP_COLS)].to_numpy(dtype=np.float32)
    cust_tx = cf[list(CUST_TX)].to_numpy(dtype=float)
    seg = (
        np.full(len(customers), -1, dtype=np.int64)
        if segments is None
        else segments.reindex(customers).fillna(-1).to_numpy(dtype=np.int64)
    )
    n_seg = int(seg.max()) + 1 if len(seg) and seg.max() >= 0 else 0
    seg_share = np.zeros((n_seg, len(products)))
    recent = arr[:, :, CP_COLS.index("n_recent")].astype(float)
    for s in range(n_seg):
        members = seg == s
        denom = cust_tx[members, CUST_TX.index("n_tx_recent")].sum()
        seg_share[s] = recent[members].sum(axis=0) / denom if denom > 0 else 0.0
    median = cf["region_median_temp"].dropna()
    pop_tot = pop[list(POP_TOT)].iloc[0].to_numpy(dtype=float) if len(pop) else np.zeros(len(POP_TOT))
    return Snapshot(
        region=region,
        as_of=as_of,
        products=products,
        serving=serving,
        customer_ids=customers,
        cp=arr,
        cust_tx=cust_tx,
        cust=cf[list(CUST_FEATURES)].to_numpy(dtype=float),
        low_history=cf["low_history"].to_numpy(dtype=bool),
        segment=seg,
        seg_share=seg_share,
        pop=pop[list(POP_COLS)].to_numpy(dtype=float),
        pop_tot=pop_tot,
        median_temp=float(median.iloc[0]) if len(median) else float("nan"),
        lookback_days=lookback_days,
    )


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(a, dtype=float) / np.asarray(b, dtype=float)
    return np.where(np.asarray(b) > 0, out, np.nan)


def _band_weights(band: np.ndarray) -> np.ndarray:
    """(R, B) kernel weights over temperature bands: 1 at the day's band, 0.5 next to it; zeros if unknown."""
    b = np.arange(F.N_TEMP_BANDS)[None, :]
    dist = np.abs(b - np.nan_to_num(band, nan=-10.0)[:, None])
    w = np.where(dist == 0, 1.0, np.where(dist == 1, 0.5, 0.0))
    return np.where(np.isnan(band)[:, None], 0.0, w)


def design(
    snap: Snapshot, cust_idx: np.ndarray, contexts: Sequence[DayContext]
) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows (R * P, len(FEATURE_NAMES)) for R (customer, day) requests, and the basis per request.

    `cust_idx[r]` is the customer's row in the snapshot, or -1 for an unknown customer. Customers with
    low history are scored without their own counts (segment picks); unknown ones with region
    popularity in place of a segment (popularity picks).
    """
    r_n, p_n = len(cust_idx), len(snap.products)
    known = cust_idx >= 0
    ci = np.where(known, cust_idx, 0)
    low = np.where(known, snap.low_history[ci], True)
    own = known & ~low
    basis = np.where(own, 0, np.where(known & (snap.segment[ci] >= 0), 1, 2))

    cp = snap.cp[ci].astype(float)  # (R, P, K)
    cp[~own] = 0.0
    tx = snap.cust_tx[ci].copy()  # (R, T)
    tx[~own] = 0.0
    col = {c: i for i, c in enumerate(CP_COLS)}
    txc = {c: i for i, c in enumerate(CUST_TX)}

    temp = np.array([c.temp_max_c for c in contexts], dtype=float)
    precip = np.array([c.precip_mm for c in contexts], dtype=float)
    off = np.array([c.off_day for c in contexts], dtype=bool)
    hol = np.array([c.is_holiday for c in contexts], dtype=bool)
    band = F.temp_band(temp)
    w = _band_weights(band)  # (R, B)

    n = cp[:, :, col["n"]]
    n_tx = tx[:, txc["n_transactions"]][:, None]
    rw = cp[:, :, col["rw"]]
    n_we = cp[:, :, col["n_weekend"]]
    tx_we = tx[:, txc["n_tx_weekend"]][:, None]
    share_daytype = np.where(off[:, None], _div(n_we, tx_we), _div(n - n_we, n_tx - tx_we))
    share_holiday = np.where(
        hol[:, None], _div(cp[:, :, col["n_holiday"]], tx[:, txc["n_tx_holiday"]][:, None]), np.nan
    )
    bands_cp = cp[:, :, col["n_t0"] : col["n_t0"] + F.N_TEMP_BANDS]  # (R, P, B)
    bands_tx = tx[:, txc["n_tx_t0"] : txc["n_tx_t0"] + F.N_TEMP_BANDS]  # (R, B)
    share_temp = _div(np.einsum("rpb,rb->rp", bands_cp, w), (bands_tx * w).sum(axis=1)[:, None])
    iced = snap.serving == "iced"
    hot = snap.serving == "hot"
    near = np.einsum("rpb,rb->rp", bands_cp, w)
    iced_near = near[:, iced].sum(axis=1)
    drink_near = near[:, iced | hot].sum(axis=1)
    iced_share_near = _div(iced_near, drink_near)
    serving_share = np.where(
        iced[None, :], iced_share_near[:, None], np.where(hot[None, :], 1 - iced_share_near[:, None], np.nan)
    )
    rank = (-rw).argsort(axis=1, kind="stable").argsort(axis=1, kind="stable") + 1.0
    rank = np.where(n > 0, rank, p_n + 1.0)
    last_age = cp[:, :, col["last_age"]]
    days_since = np.where(n > 0, last_age + 1.0, snap.lookback_days + 1.0)
    cust = np.where(own[:, None], snap.cust[ci], np.nan)

    pop = snap.pop
    tot = snap.pop_tot
    pc = {c: i for i, c in enumerate(POP_COLS)}
    tc = {c: i for i, c in enumerate(POP_TOT)}
    prod_share = _div(pop[:, pc["n"]], np.full(p_n, tot[tc["n_tx"]]))
    prod_we = _div(pop[:, pc["n_weekend"]], np.full(p_n, tot[tc["n_tx_weekend"]]))
    prod_wd = _div(
        pop[:, pc["n"]] - pop[:, pc["n_weekend"]], np.full(p_n, tot[tc["n_tx"]] - tot[tc["n_tx_weekend"]])
    )
    prod_daytype = np.where(off[:, None], prod_we[None, :], prod_wd[None, :])
    # Holidays and temperatures are rare in a recent window: their product shares use the loyalty
    # customers' whole lookback window instead.
    all_cp, all_tx = snap.loyalty
    prod_hol = _div(all_cp[:, col["n_holiday"]], np.full(p_n, all_tx[txc["n_tx_holiday"]]))
    prod_holiday = np.where(hol[:, None], prod_hol[None, :], np.nan)
    pb = all_cp[:, col["n_t0"] : col["n_t0"] + F.N_TEMP_BANDS]  # (P, B)
    tb = all_tx[txc["n_tx_t0"] : txc["n_tx_t0"] + F.N_TEMP_BANDS]  # (B,)
    prod_temp = _div(w @ pb.T, (w @ tb)[:, None])
    prod_trend = _div(_div(pop[:, pc["n_week"]], np.full(p_n, tot[tc["n_tx_week"]])), prod_share)
    seg = np.where(known, snap.segment[ci], -1)
    seg_share = np.where(
        (seg >= 0)[:, None],
        snap.seg_share[np.clip(seg, 0, None)] if len(snap.seg_share) else 0.0,
        prod_share[None, :],
    )

    def rows(x: np.ndarray) -> np.ndarray:  # (R,) -> (R, P)
        return np.broadcast_to(np.asarray(x, dtype=float)[:, None], (r_n, p_n))

    def prods(x: np.ndarray) -> np.ndarray:  # (P,) -> (R, P)
        return np.broadcast_to(np.asarray(x, dtype=float)[None, :], (r_n, p_n))

    cols = [
        _div(n, n_tx),
        _div(rw, rw.sum(axis=1, keepdims=True)),
        np.log1p(n),
        days_since,
        rank,
        share_daytype,
        share_holiday,
        share_temp,
        serving_share,
        rows(np.log1p(tx[:, txc["n_transactions"]])),
        *(rows(cust[:, j]) for j in range(len(CUST_FEATURES))),
        prods(hot),
        prods(iced),
        prods(prod_share),
        prod_daytype,
        prod_holiday,
        prod_temp,
        prods(prod_trend),
        seg_share,
        rows(temp),
        rows(temp - snap.median_temp),
        rows(precip),
        rows([c.weekday for c in contexts]),
        rows([c.is_weekend for c in contexts]),
        rows(hol),
        rows([c.season for c in contexts]),
    ]
    x = np.stack([np.broadcast_to(c, (r_n, p_n)) for c in cols], axis=2).reshape(r_n * p_n, len(cols))
    # Unknown values (no weather, no holiday in the window, no history) get one sentinel, the same in
    # training and scoring, so that no column is ever entirely missing.
    return np.nan_to_num(x.astype(np.float32), nan=MISSING), basis


# ------------------------------------------------------------------------------------------ training data
@dataclass(frozen=True)
class TrainParams:
    holdout_days: int = 14
    train_days: int = 28
    max_iter: int = 120
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    # Share of never-bought candidates kept in training rows, weighted back. 1.0 keeps every row unweighted:
    # with sample weights scikit-learn's binning takes a weighted percentile per bin edge (~14 s a fit
    # at 200k rows), more than the booster itself; the customer sample below bounds the rows instead.
    negative_sample: float = 1.0
    # Customers whose training and hold-out rows are built (a seeded sample of the region's loyalty
    # customers; every customer when there are fewer). It bounds the feature history (cutoffs x
    # customers x products) and the booster's rows, whatever the size of the region.
    sample_customers: int = 1000
    # Buyers per training day whose rows the booster learns from (a seeded sample of the day's buyers;
    # 0: all). The hold-out evaluation always uses every buyer of the customer sample.
    train_buyers_per_day: int = 200
    seed: int = 0
    k: int = 3
    # OpenMP threads of the booster's fits; the fitted model is the same for any count. One by default, for
    # runs that share the machine; a lone run fits ~1.8x faster with 2 threads on 2 cores (B3).
    threads: int = 1


@dataclass
class FeatureHistory:
    """Feature frames for a range of cutoffs, queried once from the warehouse."""

    region: str
    cf: pd.DataFrame
    cp: pd.DataFrame
    pop: pd.DataFrame
    purchases: pd.DataFrame
    weather: pd.DataFrame
    catalogue: pd.DataFrame
    sales_days: list[date]
    params: F.FeatureParams
    seconds: float = 0.0

    @classmethod
    def load(
        cls,
        query: F.Query,
        region: str,
        first_cutoff: date,
        last_cutoff: date,
        params: F.FeatureParams,
        sales_days: list[date] | None = None,
        customers: Sequence[str] | None = None,
    ) -> FeatureHistory:
        """`customers`: only these customers' rows (None: all); popularity always counts every sale."""
        t0 = time.perf_counter()
        days = sales_days if sales_days is not None else F.sales_days(query, region)
        return cls(
            region=region,
            cf=F.customer_features(query, region, first_cutoff, last_cutoff, params, customers),
            cp=F.customer_products(query, region, first_cutoff, last_cutoff, params, customers),
            pop=F.product_popularity(query, region, first_cutoff, last_cutoff, params),
            purchases=F.purchases(query, region, first_cutoff, last_cutoff + timedelta(days=1), customers),
            weather=F.weather(query, region),
            catalogue=F.products(query),
            sales_days=days,
            params=params,
            seconds=time.perf_counter() - t0,
        )

    def __post_init__(self) -> None:
        self._by_cutoff = {
            name: {pd.Timestamp(k).date(): g for k, g in frame.groupby("as_of", sort=False)}
            for name, frame in (("cf", self.cf), ("cp", self.cp), ("pop", self.pop))
        }
        self._bought = {d: g for d, g in self.purchases.groupby("day", sort=False)}

    def at(self, cutoff: date) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        parts = [self._by_cutoff[name].get(cutoff) for name in ("cf", "cp", "pop")]
        empty = (self.cf.iloc[:0], self.cp.iloc[:0], self.pop.iloc[:0])
        return tuple(p if p is not None else e for p, e in zip(parts, empty, strict=True))  # type: ignore[return-value]

    def snapshot(self, cutoff: date, segments: pd.Series | None) -> Snapshot:
        cf, cp, pop = self.at(cutoff)
        return build_snapshot(
            self.region, cutoff, cf, cp, pop, self.catalogue, segments, self.params.lookback_days
        )

    def bought(self, day: date) -> dict[str, set[str]]:
        rows = self._bought.get(day, self.purchases.iloc[:0])
        out: dict[str, set[str]] = {}
        for cid, pid in rows[["customer_id", "product_id"]].itertuples(index=False):
            out.setdefault(str(cid), set()).add(str(pid))
        return out


@dataclass
class DayRows:
    """Scored or unscored rows of one label day: one request per customer who bought that day."""

    day: date
    snapshot: Snapshot
    customers: list[str]
    x: np.ndarray
    basis: np.ndarray
    bought_idx: list[set[int]]  # indices into snapshot.products
    label: np.ndarray  # (R * P,)


def day_rows(
    history: FeatureHistory,
    day: date,
    segmenter: Segmenter | None,
    book: WeatherBook,
    max_buyers: int = 0,
    seed: int = 0,
) -> DayRows | None:
    """Rows for the customers who bought on `day`, with features as of the day before.

    `max_buyers` > 0 keeps a seeded sample of that many of the day's buyers (training rows only).
    """
    cutoff = day - timedelta(days=1)
    cf, _, _ = history.at(cutoff)
    segments = None
    if segmenter is not None and len(cf):
        seg, _ = segmenter.assign(cf)
        segments = pd.Series(seg, index=cf["customer_id"].astype(str).to_numpy())
    snap = history.snapshot(cutoff, segments)
    if len(snap.products) == 0:
        return None
    bought = history.bought(day)
    customers = sorted(bought)
    if not customers:
        return None
    if 0 < max_buyers < len(customers):
        rng = np.random.default_rng([seed, day.toordinal()])
        customers = sorted(customers[i] for i in rng.choice(len(customers), max_buyers, replace=False))
    idx = np.array([snap.index.get(c, -1) for c in customers], dtype=np.int64)
    ctx = [book.context(history.region, day, known_until=day)] * len(customers)
    x, basis = design(snap, idx, ctx)
    p_index = {p: i for i, p in enumerate(snap.products)}
    bought_idx = [{p_index[p] for p in bought[c] if p in p_index} for c in customers]
    label = np.zeros((len(customers), len(snap.products)), dtype=np.int8)
    for r, b in enumerate(bought_idx):
        label[r, list(b)] = 1
    return DayRows(day, snap, customers, x, basis, bought_idx, label.ravel())


def fit_estimator(rows: Sequence[DayRows], p: TrainParams) -> HistGradientBoostingClassifier:
    x = np.concatenate([r.x for r in rows])
    y = np.concatenate([r.label for r in rows])
    if p.negative_sample >= 1.0:
        keep, weight = slice(None), None
    else:
        never = x[:, FEATURE_NAMES.index("cp_log_n")] == 0
        rng = np.random.default_rng(p.seed)
        keep = (~never) | (y == 1) | (rng.random(len(y)) < p.negative_sample)
        weight = np.where(never & (y == 0), 1.0 / p.negative_sample, 1.0)[keep]
    if y[keep].min() == y[keep].max():
        raise ValueError("training rows have a single class: not enough sales to learn from")
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

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
        return est.fit(x[keep], y[keep], sample_weight=weight)


def _scores(est: HistGradientBoostingClassifier, x: np.ndarray, n_products: int) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        proba = est.predict_proba(x)[:, 1]
    return np.round(proba, 6).reshape(-1, n_products)


def evaluate(
    est: HistGradientBoostingClassifier,
    rows: Sequence[DayRows],
    k: int,
    segment_of: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Hit rate@k of the model and both baselines on the same (day, buyer) rows, coverage, per segment."""
    model_hits, repeat_hits, pop_hits, per_day, recommended = [], [], [], [], set()
    seg_ids, bases = [], []
    for r in rows:
        snap, n_p = r.snapshot, len(r.snapshot.products)
        tie = np.argsort(np.argsort(snap.products))
        rec = M.top_k(_scores(est, r.x, n_p), k, tie)
        pop_rank = M.top_k(snap.prod_share[None, :], n_p, tie)[0]
        pop_rec = np.broadcast_to(pop_rank[:k], (len(r.customers), min(k, n_p)))
        idx = np.array([snap.index.get(c, -1) for c in r.customers])
        counts = np.where(idx[:, None] >= 0, snap.cp[np.clip(idx, 0, None), :, CP_COLS.index("n")], 0.0)
        pop_score = np.empty(n_p)
        pop_score[pop_rank] = -np.arange(n_p)  # popularity as the tie-break of the repeat baseline
        rep = M.top_k(counts * 1e6 + pop_score[None, :], k, tie)
        mh, rh, ph = M.hits(rec, r.bought_idx), M.hits(rep, r.bought_idx), M.hits(pop_rec, r.bought_idx)
        model_hits.append(mh)
        repeat_hits.append(rh)
        pop_hits.append(ph)
        per_day.append(
            {
                "day": r.day.isoformat(),
                "buyers": len(r.customers),
                "model": float(mh.mean()),
                "repeat": float(rh.mean()),
                "popularity": float(ph.mean()),
            }
        )
        recommended |= {str(snap.products[i]) for i in np.unique(rec)}
        seg_ids += [(segment_of or {}).get(c, -1) for c in r.customers]
        bases += list(r.basis)
    mh, rh, ph = (np.concatenate(h) for h in (model_hits, repeat_hits, pop_hits))
    catalogue = {str(p) for r in rows for p in r.snapshot.products}
    seg_arr, basis_arr = np.array(seg_ids), np.array(bases)
    per_segment = [
        {
            "segment": int(s),
            "buyer_days": int((seg_arr == s).sum()),
            "model": float(mh[seg_arr == s].mean()),
            "repeat": float(rh[seg_arr == s].mean()),
            "popularity": float(ph[seg_arr == s].mean()),
        }
        for s in sorted(set(seg_ids))
    ]
    return {
        f"hit_rate_at_{k}_model": float(mh.mean()),
        f"hit_rate_at_{k}_repeat": float(rh.mean()),
        f"hit_rate_at_{k}_popularity": float(ph.mean()),
        "coverage": len(recommended) / max(len(catalogue), 1),
        "holdout_buyer_days": len(mh),
        "holdout_cold_start_share": float((basis_arr != 0).mean()),
        "per_day": per_day,
        "per_segment": per_segment,
    }


# ------------------------------------------------------------------------------------------------ model
@dataclass
class PreferenceModel:
    """One region's preference model, ready to score (see module docstring)."""

    region: str
    estimator: HistGradientBoostingClassifier
    snapshot: Snapshot
    weather: WeatherBook
    product_names: dict[str, str]
    metrics: dict[str, Any]
    params: dict[str, Any]
    trained_at: str
    model_version: str = "unregistered"
    feature_names: tuple[str, ...] = FEATURE_NAMES

    @property
    def products(self) -> list[str]:
        return [str(p) for p in self.snapshot.products]

    @property
    def as_of(self) -> date:
        return self.snapshot.as_of

    def _check(self, req: Any) -> tuple[str, date, float | None, int]:
        if not isinstance(req, dict):
            raise BadRequest("a request must be a JSON object")
        region = req.get("region")
        if not isinstance(region, str) or region not in REGIONS:
            raise BadRequest(f"unknown region {region!r} (known: {', '.join(REGIONS)})")
        if region != self.region:
            raise BadRequest(f"this model serves region '{self.region}', not '{region}'")
        cid = req.get("customer_id")
        if not isinstance(cid, str) or not cid.strip():
            raise BadRequest("customer_id must be a non-empty string")
        day_text = req.get("date")
        if not isinstance(day_text, str):
            raise BadRequest("date must be a string YYYY-MM-DD")
        try:
            day = parse_day(day_text)
        except ContractError as exc:
            raise BadRequest(f"date: {exc}") from exc
        temp = req.get("temp_max_c")
        if temp is not None:
            if isinstance(temp, bool) or not isinstance(temp, int | float) or not math.isfinite(temp):
                raise BadRequest("temp_max_c must be a number")
            if not -60.0 <= float(temp) <= 60.0:
                raise BadRequest("temp_max_c must be between -60 and 60 °C")
        k = req.get("k", 3)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 20:
            raise BadRequest("k must be an integer from 1 to 20")
        return cid.strip(), day, None if temp is None else float(temp), k

    def context(self, day: date, temp: float | None) -> DayContext:
        ctx = self.weather.context(self.region, day, known_until=self.as_of)
        if temp is None:
            return ctx
        return day_context(
            self.region, day, temp, None if math.isnan(ctx.precip_mm) else ctx.precip_mm, "request"
        )

    def _ranked(self, requests: Sequence[dict]) -> list[tuple[str, int | None, str, list[tuple[str, float]]]]:
        """Per request: (customer_id, segment, basis, [(product_id, score), ...]) in rank order."""
        checked = [self._check(r) for r in requests]
        if not checked:
            return []
        snap = self.snapshot
        idx = np.array([snap.index.get(c, -1) for c, _, _, _ in checked], dtype=np.int64)
        ctx_cache: dict[tuple[date, float | None], DayContext] = {}
        for _, d, t, _ in checked:
            if (d, t) not in ctx_cache:
                ctx_cache[(d, t)] = self.context(d, t)
        ctx = [ctx_cache[(d, t)] for _, d, t, _ in checked]
        x, basis = design(snap, idx, ctx)
        scores = _scores(self.estimator, x, len(snap.products))
        tie = np.argsort(np.argsort(snap.products))
        top = M.top_k(scores, max(k for *_, k in checked), tie)
        products = [str(p) for p in snap.products]
        out = []
        for r, (cid, _, _, k) in enumerate(checked):
            i = int(idx[r])
            seg = int(snap.segment[i]) if i >= 0 and snap.segment[i] >= 0 else None
            picks = [(products[j], float(scores[r, j])) for j in top[r, :k]]
            out.append((cid, seg, BASIS[int(basis[r])], picks))
        return out

    def score(self, requests: Sequence[dict]) -> pd.DataFrame:
        """Validated requests scored in one batch: one row per (request, rank), with basis and segment."""
        rows = [
            (r, cid, rank, pid, score, basis, seg)
            for r, (cid, seg, basis, picks) in enumerate(self._ranked(requests))
            for rank, (pid, score) in enumerate(picks, start=1)
        ]
        return pd.DataFrame(
            rows, columns=["request", "customer_id", "rank", "product_id", "score", "basis", "segment"]
        )

    def recommend(self, requests: Sequence[dict]) -> list[dict]:
        """Answers in request order, exactly as the DESIGN.md scoring contract (raises BadRequest)."""
        return [
            {
                "region": self.region,
                "customer_id": cid,
                "recommendations": [{"product_id": p, "score": s} for p, s in picks],
                "segment": seg,
                "model_version": self.model_version,
                "cold_start": basis != "model",
            }
            for cid, seg, basis, picks in self._ranked(requests)
        ]


def recommend(models: dict[str, PreferenceModel], requests: Sequence[dict]) -> list[dict]:
    """Dispatch requests to each region's model; answers in request order (raises BadRequest)."""
    for req in requests:
        region = req.get("region") if isinstance(req, dict) else None
        if not isinstance(region, str) or region not in models:
            raise BadRequest(f"unknown region {region!r} (served: {', '.join(sorted(models))})")
    answers: list[dict | None] = [None] * len(requests)
    for region, model in models.items():
        picks = [i for i, r in enumerate(requests) if r["region"] == region]
        if picks:
            for i, a in zip(picks, model.recommend([requests[i] for i in picks]), strict=True):
                answers[i] = a
    return [a for a in answers if a is not None]


# --------------------------------------------------------------------------------------------- pipeline
@dataclass
class TrainingResult:
    model: PreferenceModel
    evaluation: dict[str, Any]
    timings: dict[str, float]


def sample_customers(customers: Sequence[str], n: int, seed: int) -> list[str] | None:
    """A seeded sample of `n` customer ids, sorted (None when there are no more than `n`: use all)."""
    if n <= 0 or len(customers) <= n:
        return None
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(customers), size=n, replace=False)
    return sorted(str(customers[i]) for i in pick)


def _split(days: list[date], p: TrainParams) -> tuple[list[date], list[date], list[date]]:
    """(evaluation training days, hold-out days, serving training days) from the landed sales days."""
    days = sorted(days)
    if len(days) < p.holdout_days + 8:
        raise ValueError(
            f"{len(days)} landed sales day(s): the model needs at least {p.holdout_days + 8} "
            f"({p.holdout_days} hold-out days and a week to train on)"
        )
    holdout = days[-p.holdout_days :]
    before = [d for d in days if d < holdout[0]][1:]  # the first day has no history to learn from
    train = before[-p.train_days :]
    serve = days[1:][-p.train_days :]
    return train, holdout, serve


def train_region(
    query: F.Query,
    region: str,
    segments: pd.DataFrame,
    params: TrainParams | None = None,
    feature_params: F.FeatureParams | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Evaluate on the time-based hold-out against both baselines, then refit on all data for serving.

    `segments`: the current ml.customer_segments rows (customer_id, segment), used for serving and for
    per-segment reporting. Training rows get segments from a clustering fitted as of their first cutoff.
    """
    p = params or TrainParams()
    fp = feature_params or F.FeatureParams()
    say = log or (lambda _m: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    days = F.sales_days(query, region)
    train, holdout, serve = _split(days, p)
    last = days[-1]
    everyone = F.customer_ids(query, region)
    sample = sample_customers(everyone, p.sample_customers, p.seed)
    history = FeatureHistory.load(query, region, train[0] - timedelta(days=1), last, fp, days, sample)
    timings["feature_sql_s"] = history.seconds
    say(
        f"{region}: features of {len(sample or everyone):,} of {len(everyone):,} customers for "
        f"{len(train) + len(holdout) + 1} cutoffs in {history.seconds:.1f}s"
    )
    book = WeatherBook.from_frame(history.weather)
    k_segments = max(int(segments["segment"].nunique()), 2) if len(segments) else None

    def rows_for(train_days: Iterable[date]) -> tuple[Segmenter, list[DayRows]]:
        train_days = list(train_days)
        cf0, _, _ = history.at(train_days[0] - timedelta(days=1))
        seg = fit_segments(cf0, seed=p.seed, k=k_segments, n_init=4) if len(cf0) >= 4 else None
        out = [day_rows(history, d, seg, book, p.train_buyers_per_day, p.seed) for d in train_days]
        return seg, [r for r in out if r is not None]

    t = time.perf_counter()
    seg_eval, train_rows = rows_for(train)
    est = fit_estimator(train_rows, p)
    holdout_rows = [r for r in (day_rows(history, d, seg_eval, book) for d in holdout) if r is not None]
    segment_of = dict(zip(segments["customer_id"].astype(str), segments["segment"].astype(int), strict=True))
    evaluation = evaluate(est, holdout_rows, p.k, segment_of)
    timings["evaluation_s"] = time.perf_counter() - t
    say(f"{region}: hold-out hit rate@{p.k} model {evaluation[f'hit_rate_at_{p.k}_model']:.3f}")

    t = time.perf_counter()
    _, serve_rows = rows_for(serve)
    final = fit_estimator(serve_rows, p)
    seg_series = pd.Series(
        segments["segment"].astype(int).to_numpy(), index=segments["customer_id"].astype(str).to_numpy()
    )
    # The serving snapshot holds every customer: one cutoff, so it costs what the features asset costs.
    full = history if sample is None else FeatureHistory.load(query, region, last, last, fp, days)
    snap = full.snapshot(last, seg_series)
    timings["refit_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    names = dict(
        zip(
            history.catalogue["product_id"].astype(str),
            history.catalogue["product_name"].fillna(""),
            strict=True,
        )
    )
    metrics = {
        **{k: v for k, v in evaluation.items() if k not in ("per_day", "per_segment")},
        "train_days": [train[0].isoformat(), train[-1].isoformat()],
        "holdout_days": [holdout[0].isoformat(), holdout[-1].isoformat()],
        "region_customers": len(everyone),
        "sample_customers": len(sample or everyone),
        "train_buyer_days": int(sum(len(r.customers) for r in train_rows)),
        "train_rows": int(sum(len(r.label) for r in train_rows)),
        "serving_train_rows": int(sum(len(r.label) for r in serve_rows)),
        "products": len(snap.products),
        "customers": len(snap.customer_ids),
        "weather_days": len(book.by_day),
    }
    model = PreferenceModel(
        region=region,
        estimator=final,
        snapshot=snap,
        weather=book,
        product_names=names,
        metrics=metrics,
        params={**p.__dict__, **{f"feature_{k}": v for k, v in fp.__dict__.items()}},
        trained_at=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    )
    return TrainingResult(model, evaluation, timings)

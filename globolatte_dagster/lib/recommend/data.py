"""A region's purchase history as compact arrays, read from `core.purchase_history`, and request batches.

`core.purchase_history` is computed in the warehouse (SQL, `PURCHASE_HISTORY_SQL`): one row per (day,
loyalty customer, product) with the quantity, the number of transactions and the first hour, plus one row
per (day, product) for guests (customer_id NULL). Everything the recommenders need (frequencies, decayed
counts, baskets, popularity in context) is derived from it here, point in time: a view `until(cutoff)`
holds only days on or before the cutoff, so nothing after a cutoff can leak into what is learned from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from globolatte_dagster.lib.contract import REGIONS
from globolatte_dagster.lib.recommend.context import ContextArrays, DayContext, WeatherBook
from globolatte_dagster.lib.schema import PURCHASE_HISTORY

Query = Callable[[str, Sequence[Any]], pd.DataFrame]
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

_H = f"{PURCHASE_HISTORY.schema}.{PURCHASE_HISTORY.name}"
# Parameters: region (delete), region (insert). Run in one transaction: readers see the old or the new rows.
PURCHASE_HISTORY_DELETE_SQL = f"DELETE FROM {_H} WHERE region = ?"
PURCHASE_HISTORY_SQL = f"""
INSERT INTO {_H} (region, day, customer_id, product_id, quantity, transactions, first_hour)
SELECT s.region, s.day, s.customer_id, s.product_id, SUM(s.quantity), COUNT(DISTINCT s.transaction_id),
       MIN(EXTRACT(HOUR FROM s.transaction_date))
FROM raw.sales s
WHERE s.region = ?
GROUP BY s.region, s.day, s.customer_id, s.product_id
"""
HISTORY_SQL = f"""
SELECT h.day, h.customer_id, h.product_id, h.quantity, h.transactions, h.first_hour
FROM {_H} h WHERE h.region = ? AND h.day >= CAST(? AS DATE) AND h.day <= CAST(? AS DATE)
"""
LAST_DAY_SQL = f"SELECT MAX(h.day) AS last_day, COUNT(*) AS n FROM {_H} h WHERE h.region = ?"
CUSTOMERS_SQL = (
    f"SELECT DISTINCT h.customer_id FROM {_H} h WHERE h.region = ? AND h.customer_id IS NOT NULL "
    "AND h.day <= CAST(? AS DATE)"
)
WEATHER_SQL = "SELECT w.day, w.temp_max_c, w.precip_mm FROM raw.weather w WHERE w.region = ?"
PRODUCTS_SQL = "SELECT p.product_id, p.product_name, p.category, p.serving FROM core.products p"


def _lower(df: pd.DataFrame) -> pd.DataFrame:
    df.columns = [str(c).lower() for c in df.columns]
    return df


@dataclass
class History:
    """Loyalty purchase lines (one per day, customer, product) and every sale's product counts by day."""

    region: str
    products: np.ndarray  # (P,) product ids, sorted
    serving: np.ndarray  # (P,) hot | iced | none
    category: np.ndarray  # (P,)
    product_names: dict[str, str]
    customers: np.ndarray  # (C,) loyalty customer ids, sorted
    day: np.ndarray  # (N,) int32 day ordinal of each loyalty line
    cust: np.ndarray  # (N,) int32 index into customers
    prod: np.ndarray  # (N,) int32 index into products
    quantity: np.ndarray  # (N,) float32
    hour: np.ndarray  # (N,) float32 first hour of the line's transactions
    pop_day: np.ndarray  # (M,) int32 day ordinal, every sale (guests included) by (day, product)
    pop_prod: np.ndarray  # (M,) int32
    pop_n: np.ndarray  # (M,) float32 transactions with the product that day
    weather: WeatherBook
    cutoff: date | None = None  # None: everything loaded
    index: dict[str, int] = field(default_factory=dict, repr=False)
    # What several candidates derive from the same view (the visits), computed once per view.
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.index = {str(c): i for i, c in enumerate(self.customers)}

    def visits(self) -> tuple[np.ndarray, np.ndarray]:
        """(customer, day) of each visit (a day with a loyalty purchase), by customer then day."""
        return self._visits()[:2]

    def visit_hours(self) -> np.ndarray:
        """(V,) the first hour of each visit of `visits()` (NaN: no hour known)."""
        return self._visits()[2]

    def _visits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # One sort of (customer, day, hour) keys gives the visits and each visit's first hour; hours are
        # whole (EXTRACT(HOUR)), unknown ones sort last as 31.
        if "visits" not in self.memo:
            if len(self.day) == 0:
                empty = np.zeros(0, dtype=np.int32)
                self.memo["visits"] = (empty, empty, np.zeros(0))
            else:
                lo = int(self.day.min())
                span = int(self.day.max()) - lo + 1
                hour = np.where(np.isnan(self.hour), 31, np.clip(self.hour, 0, 30)).astype(np.int64)
                key = np.sort((self.cust.astype(np.int64) * span + (self.day - lo)) * 32 + hour)
                visit = key // 32
                first = np.ones(len(key), dtype=bool)
                first[1:] = visit[1:] != visit[:-1]
                visit, h = visit[first], (key[first] % 32).astype(float)
                self.memo["visits"] = (
                    (visit // span).astype(np.int32),
                    (visit % span + lo).astype(np.int32),
                    np.where(h == 31, np.nan, h),
                )
        return self.memo["visits"]

    # ---------------------------------------------------------------------------------------- shape
    @property
    def n_products(self) -> int:
        return len(self.products)

    @property
    def n_customers(self) -> int:
        return len(self.customers)

    @property
    def sales_days(self) -> list[date]:
        return [date.fromordinal(int(d)) for d in np.unique(self.pop_day)]

    @property
    def last_day(self) -> date:
        if len(self.pop_day) == 0:
            raise ValueError(f"{self.region}: no sales in the history")
        return date.fromordinal(int(self.pop_day.max()))

    def until(self, cutoff: date) -> History:
        """Only what was known at the end of `cutoff` (same product and customer index).

        Inside `shared_views()`, one view per cutoff is kept, so that every fit at that cutoff shares it
        and what is derived from it (`memo`); elsewhere each call makes a new view.
        """
        root = self.memo.get("root", self)
        views = root.memo.get("views")
        if views is None or (self.cutoff is not None and cutoff > self.cutoff):
            return self._until(cutoff)
        if cutoff not in views:
            views[cutoff] = self._until(cutoff)
            views[cutoff].memo["root"] = root
        return views[cutoff]

    @contextmanager
    def shared_views(self) -> Iterator[None]:
        """Keep the views `until` makes (one per cutoff) until the block ends, then drop them."""
        root = self.memo.get("root", self)
        if "views" in root.memo:  # an enclosing block already shares them
            yield
            return
        root.memo["views"] = {}
        try:
            yield
        finally:
            del root.memo["views"]

    def _until(self, cutoff: date) -> History:
        c = cutoff.toordinal()
        keep, pkeep = self.day <= c, self.pop_day <= c
        return History(
            self.region,
            self.products,
            self.serving,
            self.category,
            self.product_names,
            self.customers,
            self.day[keep],
            self.cust[keep],
            self.prod[keep],
            self.quantity[keep],
            self.hour[keep],
            self.pop_day[pkeep],
            self.pop_prod[pkeep],
            self.pop_n[pkeep],
            self.weather.until(cutoff),
            cutoff,
        )

    def between(self, first: date, last: date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Loyalty lines (day, cust, prod) with first <= day <= last (labels of a window)."""
        a, b = first.toordinal(), last.toordinal()
        keep = (self.day >= a) & (self.day <= b)
        return self.day[keep], self.cust[keep], self.prod[keep]

    def known_customers(self) -> np.ndarray:
        """(C,) bool: the customer has a purchase in this view."""
        out = np.zeros(self.n_customers, dtype=bool)
        out[self.cust] = True
        return out

    def context(self, day: date) -> DayContext:
        known = self.cutoff or (self.last_day if len(self.pop_day) else day)
        return self.weather.context(self.region, day, known_until=known)

    def contexts(self, days: Sequence[date]) -> ContextArrays:
        cache: dict[date, DayContext] = {}
        out = []
        for d in days:
            if d not in cache:
                cache[d] = self.context(d)
            out.append(cache[d])
        return ContextArrays.of(out)


@dataclass
class HistoryFrames:
    """The warehouse rows a History is built from (what a training job reads from its input folder)."""

    region: str
    lines: pd.DataFrame  # core.purchase_history: day, customer_id, product_id, quantity, ...
    products: pd.DataFrame  # core.products: product_id, product_name, category, serving
    weather: pd.DataFrame  # raw.weather: day, temp_max_c, precip_mm
    customers: list[str]  # every loyalty customer the warehouse has seen in the region

    def history(self) -> History:
        return history_from_frames(self.region, self.lines, self.products, self.weather, self.customers)


def load_history(
    query: Query, region: str, lookback_days: int = 365, last_day: date | None = None
) -> History:
    """The region's history over `lookback_days` up to its last landed day (or `last_day`)."""
    return load_frames(query, region, lookback_days, last_day).history()


def load_frames(
    query: Query, region: str, lookback_days: int = 365, last_day: date | None = None
) -> HistoryFrames:
    """The rows of `load_history`: the region's lines over `lookback_days`, the catalogue, the weather."""
    if region not in REGIONS:
        raise ValueError(f"unknown region '{region}'")
    if last_day is None:
        row = _lower(query(LAST_DAY_SQL, [region])).iloc[0]
        if row["last_day"] is None or pd.isna(row["last_day"]):
            raise ValueError(f"no sales have landed for region '{region}'")
        last_day = pd.Timestamp(row["last_day"]).date()
    first = last_day - timedelta(days=lookback_days)
    lines = _lower(query(HISTORY_SQL, [region, first.isoformat(), last_day.isoformat()]))
    products = _lower(query(PRODUCTS_SQL, []))
    weather = _lower(query(WEATHER_SQL, [region]))
    for col in ("temp_max_c", "precip_mm"):
        weather[col] = pd.to_numeric(weather[col], errors="coerce").astype("float64")
    everyone = _lower(query(CUSTOMERS_SQL, [region, last_day.isoformat()]))["customer_id"].astype(str)
    return HistoryFrames(region, lines, products, weather, everyone.tolist())


def history_from_frames(
    region: str,
    lines: pd.DataFrame,
    products: pd.DataFrame,
    weather: pd.DataFrame,
    customers: Sequence[str] = (),
) -> History:
    """A History from `core.purchase_history` rows, the catalogue and the weather rows.

    `customers`: every customer the warehouse has seen in the region (also those older than the look-back
    window), so that none of them is ever taken for a cold start.
    """
    if lines.empty:
        raise ValueError(f"no sales have landed for region '{region}'")
    # Vectorised over the lines (millions at scale): day ordinals from datetime64 days, products and
    # customers as codes of their sorted ids.
    day = pd.to_datetime(lines["day"]).to_numpy().astype("datetime64[D]").astype(np.int64) + EPOCH_ORDINAL
    prod_code, prod_ids = pd.factorize(lines["product_id"].astype(str), sort=True)
    prod_ids = np.asarray(prod_ids, dtype=object)
    cat = products.assign(product_id=products["product_id"].astype(str)).set_index("product_id")
    cat = cat.reindex(prod_ids)
    serving = cat["serving"].fillna("none").astype(str).str.lower().to_numpy(dtype=object)
    category = cat["category"].fillna("unknown").astype(str).to_numpy(dtype=object)
    names = {p: (n if isinstance(n, str) else p) for p, n in zip(prod_ids, cat["product_name"], strict=True)}

    p_n = len(prod_ids)
    pop_key, pop_at = np.unique(day * p_n + prod_code, return_inverse=True)
    pop_n = np.bincount(pop_at, weights=pd.to_numeric(lines["transactions"]).to_numpy(dtype=float))
    raw_cust = lines["customer_id"]
    loyal = (raw_cust.notna() & (raw_cust.astype(str) != "")).to_numpy()
    cust_code, seen_ids = pd.factorize(raw_cust[loyal].astype(str), sort=True)
    cust_ids = np.array(sorted(set(seen_ids) | {str(c) for c in customers}), dtype=object)
    cust_pos = pd.Index(cust_ids).get_indexer(np.asarray(seen_ids, dtype=object))
    hour = pd.to_numeric(lines["first_hour"][loyal], errors="coerce").astype("float32").to_numpy()
    return History(
        region=region,
        products=prod_ids,
        serving=serving,
        category=category,
        product_names=names,
        customers=cust_ids,
        day=day[loyal].astype(np.int32),
        cust=cust_pos[cust_code].astype(np.int32),
        prod=prod_code[loyal].astype(np.int32),
        quantity=pd.to_numeric(lines["quantity"][loyal]).astype("float32").to_numpy(),
        hour=hour,
        pop_day=(pop_key // p_n).astype(np.int32),
        pop_prod=(pop_key % p_n).astype(np.int32),
        pop_n=pop_n.astype("float32"),
        weather=WeatherBook.from_frame(weather),
    )


@dataclass
class Requests:
    """A batch of (customer, day) requests in a region: what every candidate scores."""

    cust: np.ndarray  # (R,) customer index into the history, -1 for a customer it has never seen
    day: np.ndarray  # (R,) int32 day ordinal
    ctx: ContextArrays
    horizon: np.ndarray  # (R,) days between the snapshot's cutoff and the request day (>= 1)

    def __len__(self) -> int:
        return len(self.cust)

    @classmethod
    def build(
        cls,
        history: History,
        customers: Sequence[int] | np.ndarray,
        days: Sequence[date],
        contexts: ContextArrays | None = None,
    ) -> Requests:
        cutoff = history.cutoff or history.last_day
        ords = np.array([d.toordinal() for d in days], dtype=np.int32)
        return cls(
            cust=np.asarray(customers, dtype=np.int64),
            day=ords,
            ctx=contexts if contexts is not None else history.contexts(days),
            horizon=np.maximum(ords - cutoff.toordinal(), 1).astype(float),
        )

    def subset(self, rows: np.ndarray) -> Requests:
        return Requests(self.cust[rows], self.day[rows], self.ctx.take(rows), self.horizon[rows])


@dataclass(frozen=True)
class Window:
    """Label days (first..last) scored from a snapshot as of `cutoff` (the day before `first`)."""

    cutoff: date
    first: date
    last: date


def label_requests(
    history: History, window: Window, observed_context: bool = True
) -> tuple[Requests, list[set[int]]]:
    """One request per (day, loyalty customer who bought that day) in the window, and what they bought.

    `history` must hold the window's days (the full history); the requests are scored by candidates fitted
    on `history.until(window.cutoff)`. Contexts are each day's observed weather (the day's own context).
    """
    d, c, p = history.between(window.first, window.last)
    known = history.until(window.cutoff) if not observed_context else None  # the forecasts of the cutoff
    if len(d) == 0:
        return Requests.build(known or history.until(window.cutoff), [], []), []
    order = np.lexsort((p, c, d))
    d, c, p = d[order], c[order], p[order]
    start = np.flatnonzero(np.r_[True, (d[1:] != d[:-1]) | (c[1:] != c[:-1])])
    bought = [set(chunk.tolist()) for chunk in np.split(p, start[1:])]
    uniq, at = np.unique(d[start], return_inverse=True)
    days = [date.fromordinal(int(x)) for x in uniq]
    ctx = (history if observed_context else known).contexts(days).take(at)
    ords = d[start].astype(np.int32)
    req = Requests(
        cust=c[start].astype(np.int64),
        day=ords,
        ctx=ctx,
        horizon=np.maximum(ords - window.cutoff.toordinal(), 1).astype(float),
    )
    return req, bought

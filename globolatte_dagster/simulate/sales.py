"""One region-day of sales: who visits, what they buy, when and how they pay, the rows, the deliberately
broken rows, and the files the day arrives in.

The day's stream, keyed by (seed, region, 2, day), is drawn in a fixed order: the friendly profile's files
depend on it byte for byte. Profile and scenario effects (launches, price changes) draw from their own
stream, keyed by (seed, region, 6, day), so they never shift the day's other draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from globolatte_dagster.lib.contract import PAYMENT_METHODS, REGION_KEYS, REGIONS, SALES_COLUMNS, sales_prefix

from .catalogue import FESTIVE, SEASONAL_FESTIVE_DRINK, Catalogue, in_season
from .personas import DAYTYPES, ICED_SCALE, PERSONAS, TREAT_P
from .population import Population
from .weather import DayWeather
from .world import DayWorld

SPLIT_DAY_P = 0.15  # a day arrives as 2-3 store files
THREE_FILES_P = 0.4  # of split days
OPEN_HOURS = (6.0, 22.0)
PREFERRED_PAYMENT_P = 0.85
BROKEN_KINDS: tuple[str, ...] = ("unknown_product", "bad_quantity", "wrong_business_unit", "bad_timestamp")
BROKEN_COLUMNS: tuple[str, ...] = ("region", "day", "file", "line", "transaction_id", "product_id", "kind")

_PAYMENTS = np.array(PAYMENT_METHODS, dtype=object)
_HMS = np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)], dtype=object)
_CENTS = np.array([f"{i:02d}" for i in range(100)], dtype=object)
_SEQ = np.array([f"{i:05d}" for i in range(100000)], dtype=object)


def _per_persona(attr: str) -> np.ndarray:
    return np.array([getattr(p, attr) for p in PERSONAS], dtype=float)


_HOUR = np.array([p.hour_mean for p in PERSONAS])  # (personas, 2)
_HOUR_SD = _per_persona("hour_sd")
_P_DRINK = _per_persona("p_drink")
_P_FOOD = np.array([p.p_food for p in PERSONAS])
_P_THIRD = _per_persona("p_third")
_P_FESTIVE = _per_persona("p_festive")
_HEAT = _per_persona("heat_visit_boost")
_QTY_CUM = np.cumsum(np.array([p.quantity_p for p in PERSONAS]), axis=1)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class DayContext:
    """Everything about a region-day that is not its customers."""

    seed: int
    region: str
    day: date
    daytype: int  # index into DAYTYPES
    weather: DayWeather
    catalogue: Catalogue
    broken_share: float
    single_store: bool = False  # one file, never split
    outlets: int = 0  # >0: always this many outlet files, each with a store_id column

    @property
    def off(self) -> int:
        return int(self.daytype > 0)  # weekend or holiday


@dataclass
class DaySales:
    region: str
    day: date
    files: list[tuple[str, pd.DataFrame]]  # (landing path, frame in file order)
    broken: pd.DataFrame  # BROKEN_COLUMNS
    transactions: int

    @property
    def rows(self) -> int:
        return sum(len(f) for _, f in self.files)


@dataclass
class Baskets:
    """Per visiting customer (in visit order): up to a drink, a food item and a third item."""

    drink: np.ndarray
    food: np.ndarray
    third: np.ndarray
    has_drink: np.ndarray
    has_food: np.ndarray
    has_third: np.ndarray


def day_sales(ctx: DayContext, world: DayWorld) -> DaySales:
    """The sales of one region-day; depends only on (seed, region, day) and the world."""
    rng = np.random.default_rng([ctx.seed, REGION_KEYS.index(ctx.region), 2, ctx.day.toordinal()])
    v = _visitors(rng, ctx, world)
    m = len(v)
    if m >= len(_SEQ):
        raise ValueError(f"{m} transactions in {ctx.region} on {ctx.day}: more than the id format allows")
    u = rng.random((m, 15))
    z = rng.standard_normal(m)
    baskets = _baskets(ctx, world, v, u)
    secs, pay = _time_and_payment(rng, ctx, world.pop, v, u, z)
    frame, t_of_row, pos_of_row, qty = _rows(rng, ctx, world, v, baskets, secs, pay)
    broken, kind_of_row = _break_rows(rng, ctx, frame, qty, pos_of_row)
    files, broken_frame = _files(rng, ctx, frame, broken, kind_of_row, t_of_row, m)
    return DaySales(ctx.region, ctx.day, files, broken_frame, m)


def _visitors(rng: np.random.Generator, ctx: DayContext, world: DayWorld) -> np.ndarray:
    """Who visits: persona and personal rates, times heat and rain effects (scaled by the weather effect)."""
    pop, wx, w = world.pop, ctx.weather, world.weather_effect
    heat = 1 - _HEAT / 2 + _HEAT * _sigmoid((wx.temp_max_c - 20.0) / 4.0)
    rain = np.exp(-pop.rain_sens * min(wx.precip_mm, 25.0) / 10.0)
    if w != 1.0:
        heat, rain = 1 + w * (heat - 1), rain**w
    p_visit = np.clip(world.rates[:, ctx.daytype] * heat[pop.persona] * rain, 0.0, 0.95)
    return np.flatnonzero(rng.random(pop.size) < p_visit)


def _iced_share(pop: Population, v: np.ndarray, temp_c: float) -> np.ndarray:
    return pop.iced_floor[v] + (pop.iced_ceil[v] - pop.iced_floor[v]) * _sigmoid(
        (temp_c - pop.iced_t0[v]) / ICED_SCALE
    )


def _baskets(ctx: DayContext, world: DayWorld, v: np.ndarray, u: np.ndarray) -> Baskets:
    pop, cum, off = world.pop, world.cumulative, ctx.off
    pv = pop.persona[v]
    last = len(ctx.catalogue) - 1

    def explore(group: str, uu: np.ndarray) -> np.ndarray:
        return np.minimum((cum[group][pv] < uu[:, None]).sum(axis=1), last)

    # Drink: hot or iced by temperature and the customer's own threshold; favourite or explored.
    has_drink = u[:, 0] < _P_DRINK[pv]
    p_iced = _iced_share(pop, v, ctx.weather.temp_max_c)
    if world.weather_effect != 1.0:
        w = world.weather_effect
        p_iced = (1 - w) * _iced_share(pop, v, world.iced_reference_c) + w * p_iced
    iced = u[:, 1] < p_iced
    slot = (u[:, 3] >= 0.7).astype(np.int64)
    favourite = np.where(iced, pop.fav_iced[v, slot], pop.fav_hot[v, slot])
    explored = np.where(iced, explore("iced", u[:, 4]), explore("hot", u[:, 4]))
    if off:  # weekends and holidays: often the customer's treat rather than the usual hot drink
        favourite = np.where(~iced & (u[:, 14] < TREAT_P), pop.fav_treat[v], favourite)
    drink_is_favourite = u[:, 2] < pop.repeat[v]
    drink = np.where(drink_is_favourite, favourite, explored)

    # Food: the weekday favourite on weekdays, the weekend favourite on weekends and holidays.
    p_food = _P_FOOD[pv, off] + pop.p_food_shift[v]
    has_food = (u[:, 5] < p_food) | ~has_drink
    fav_food = pop.fav_food_weekend[v] if off else pop.fav_food_weekday[v]
    food_is_favourite = u[:, 6] < pop.repeat[v]
    food_explored = explore("food", u[:, 7])
    food = np.where(food_is_favourite, fav_food, food_explored)

    if world.keep_favourite is not None or world.launches:
        drink, food = _scenario_choices(
            ctx, world, v, drink, food, explored, food_explored, drink_is_favourite, food_is_favourite
        )

    # Holidays: festive drinks and pastries replace the usual ones.
    if ctx.daytype == DAYTYPES.index("holiday"):
        index = ctx.catalogue.index
        hot_name, iced_name, food_name = FESTIVE[ctx.region]
        if in_season(ctx.day):
            hot_name = SEASONAL_FESTIVE_DRINK
        swap = u[:, 8] < _P_FESTIVE[pv]
        drink = np.where(swap & ~iced, index[hot_name], drink)
        if iced_name is not None:
            drink = np.where(swap & iced, index[iced_name], drink)
        swap_food = u[:, 9] < _P_FESTIVE[pv]
        food = np.where(swap_food, index[food_name], food)
        has_food |= swap_food & (u[:, 10] < 0.5)

    third = explore("any", u[:, 11])
    has_third = (u[:, 12] < _P_THIRD[pv]) & ~(has_drink & (third == drink)) & ~(has_food & (third == food))
    return Baskets(drink, food, third, has_drink, has_food, has_third)


def _scenario_choices(
    ctx: DayContext,
    world: DayWorld,
    v: np.ndarray,
    drink: np.ndarray,
    food: np.ndarray,
    drink_explored: np.ndarray,
    food_explored: np.ndarray,
    drink_is_favourite: np.ndarray,
    food_is_favourite: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Price response (a dearer favourite is often dropped) and adopters of launched products."""
    rng = np.random.default_rng([ctx.seed, REGION_KEYS.index(ctx.region), 6, ctx.day.toordinal()])
    x = rng.random((len(v), 2 + len(world.launches)))
    if world.keep_favourite is not None:
        keep = world.keep_favourite
        drink = np.where(drink_is_favourite & (x[:, 0] >= keep[drink]), drink_explored, drink)
        food = np.where(food_is_favourite & (x[:, 1] >= keep[food]), food_explored, food)
    today = ctx.day.toordinal()
    for k, launch in enumerate(world.launches):
        chooses = (launch.adopt_ordinal[v] <= today) & (x[:, 2 + k] < launch.choice)
        drink = np.where(chooses, launch.product, drink)
    return drink, food


def _time_and_payment(
    rng: np.random.Generator, ctx: DayContext, pop: Population, v: np.ndarray, u: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    pv = pop.persona[v]
    hour = _HOUR[pv, ctx.off] + pop.hour_offset[v] + z * _HOUR_SD[pv]
    lo, hi = OPEN_HOURS
    hour = np.where(hour < lo, 2 * lo - hour, np.where(hour >= hi, 2 * hi - hour, hour))  # reflect
    secs = (np.clip(hour, lo, hi - 1e-4) * 3600).astype(np.int64)
    pay = np.where(
        u[:, 13] < PREFERRED_PAYMENT_P, pop.payment[v], rng.integers(0, len(PAYMENT_METHODS), len(v))
    )
    return secs, pay


def _rows(
    rng: np.random.Generator,
    ctx: DayContext,
    world: DayWorld,
    v: np.ndarray,
    b: Baskets,
    secs: np.ndarray,
    pay: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Transactions in time order, rows in item order within a transaction."""
    info = REGIONS[ctx.region]
    m = len(v)
    pv = world.pop.persona[v]
    order = np.argsort(secs, kind="stable")
    items = np.stack([b.drink, b.food, b.third], axis=1)[order]
    mask = np.stack([b.has_drink, b.has_food, b.has_third], axis=1)[order]
    flat = mask.ravel()
    t_of_row = np.repeat(np.arange(m), 3)[flat]
    pos_of_row = np.tile(np.arange(3), m)[flat]
    product = items.ravel()[flat]
    persona_row = pv[order][t_of_row]
    n_rows = len(product)

    uq = rng.random(n_rows)
    qty = 1 + (uq > _QTY_CUM[persona_row, 0]).astype(np.int64) + (uq > _QTY_CUM[persona_row, 1])
    cents = np.rint(qty * world.price_usd[product] / info.usd_per_unit * 100).astype(np.int64)
    total = (cents // 100).astype(str).astype(object) + "." + _CENTS[cents % 100]
    day_text = ctx.day.isoformat()
    tid = (f"{info.business_unit[3:]}-{ctx.day:%Y%m%d}-" + _SEQ[1 : m + 1])[t_of_row]
    frame = pd.DataFrame(
        {
            "transaction_id": tid,
            "business_unit": np.full(n_rows, info.business_unit, dtype=object),
            "product_id": ctx.catalogue.ids[product],
            "customer_id": world.pop.customer_id[v[order]][t_of_row],
            "quantity": qty.astype(str).astype(object),
            "total_price": total,
            "transaction_date": (day_text + " " + _HMS[secs[order]])[t_of_row],
            "payment_method": _PAYMENTS[pay[order]][t_of_row],
        },
        columns=list(SALES_COLUMNS),
    )
    return frame, t_of_row, pos_of_row, qty


def _break_rows(
    rng: np.random.Generator, ctx: DayContext, frame: pd.DataFrame, qty: np.ndarray, pos_of_row: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Broken rows, one kind each (edited in place in `frame`)."""
    n_rows = len(frame)
    day_text = ctx.day.isoformat()
    broken = rng.random(n_rows) < ctx.broken_share
    kinds = rng.integers(0, len(BROKEN_KINDS), n_rows)
    var = rng.integers(0, 1_000_000, n_rows)
    kind_of_row = np.full(n_rows, "", dtype=object)
    kind_of_row[broken] = np.array(BROKEN_KINDS, dtype=object)[kinds[broken]]
    for i in np.flatnonzero(broken):
        kind, x = kind_of_row[i], int(var[i])
        if kind == "unknown_product":  # P900-P998: unique within the transaction by position
            frame.iat[i, 2] = f"P{900 + (x % 33) * 3 + int(pos_of_row[i])}"
        elif kind == "bad_quantity":
            frame.iat[i, 4] = ("0", f"-{qty[i]}", f"{qty[i]}.5")[x % 3]
        elif kind == "wrong_business_unit":
            others = [r.business_unit for r in REGIONS.values() if r.key != ctx.region]
            frame.iat[i, 1] = others[x % len(others)]
        else:
            frame.iat[i, 6] = (
                f"{day_text} 25:{x % 60:02d}:{x // 60 % 60:02d}",
                "#VALUE!",
                f"{day_text} 12:{60 + x % 40}:00",
                "not recorded",
            )[x % 4]
    return broken, kind_of_row


def _files(
    rng: np.random.Generator,
    ctx: DayContext,
    frame: pd.DataFrame,
    broken: np.ndarray,
    kind_of_row: np.ndarray,
    t_of_row: np.ndarray,
    m: int,
) -> tuple[list[tuple[str, pd.DataFrame]], pd.DataFrame]:
    """Usually one file; some days 2-3 store files, some with other column orders or a store_id."""
    unit = REGIONS[ctx.region].business_unit[3:]
    day_text = ctx.day.isoformat()
    split = rng.random() < SPLIT_DAY_P
    n_files = 2 + int(rng.random() < THREE_FILES_P)
    if ctx.outlets:
        split, n_files = True, ctx.outlets
    store = rng.integers(0, n_files, m)[t_of_row]
    variants = rng.integers(0, 4, n_files)
    perms = [rng.permutation(len(SALES_COLUMNS)) for _ in range(n_files)]
    if ctx.outlets:
        variants[:] = 2  # the export's columns, plus the outlet's store_id
    if ctx.single_store:
        split = False
    prefix = sales_prefix(ctx.region, day_text)
    if not split:
        parts = [("sales.csv", np.arange(len(frame)), 0, None)]
    else:
        parts = [
            (f"store_{k + 1:02d}.csv", np.flatnonzero(store == k), int(variants[k]), k)
            for k in range(n_files)
        ]
    files: list[tuple[str, pd.DataFrame]] = []
    broken_parts = []
    for name, rows, variant, k in parts:
        part = frame.iloc[rows].reset_index(drop=True)
        columns = list(SALES_COLUMNS)
        if variant in (1, 3):
            columns = [columns[j] for j in perms[k]]
        part = part[columns]
        if variant in (2, 3):
            part.insert(0 if variant == 3 else len(columns), "store_id", f"{unit}-S{k + 1:02d}")
        files.append((prefix + name, part))
        b = np.flatnonzero(broken[rows])
        if len(b):
            broken_parts.append(
                pd.DataFrame(
                    {
                        "region": ctx.region,
                        "day": day_text,
                        "file": prefix + name,
                        "line": b + 2,
                        "transaction_id": frame["transaction_id"].to_numpy()[rows[b]],
                        "product_id": frame["product_id"].to_numpy()[rows[b]],
                        "kind": kind_of_row[rows[b]],
                    }
                )
            )
    broken_frame = (
        pd.concat(broken_parts, ignore_index=True)
        if broken_parts
        else pd.DataFrame(columns=list(BROKEN_COLUMNS))
    )
    return files, broken_frame

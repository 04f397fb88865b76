"""The GloboLatte simulator: landing files per the DESIGN.md contract, plus a ground truth folder.

Randomness is keyed, never sequential across days:
- the population of a region comes from (seed, region),
- a day's sales of a region from (seed, region, day),
- a day's weather from (seed, region, day) (AR(1) as a truncated moving average of daily draws),
so one day generated alone (live mode) equals the same day of a batch run, byte for byte.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import holidays
import numpy as np
import pandas as pd

from globolatte_dagster.lib.contract import (
    PAYMENT_METHODS,
    REFERENCE_PREFIX,
    REGION_KEYS,
    REGIONS,
    SALES_COLUMNS,
    SALES_PREFIX,
    ContractError,
    parse_day,
    sales_prefix,
    weather_path,
)

from .catalogue import (
    FESTIVE,
    PRODUCT_INDEX,
    PRODUCTS,
    SEASONAL_FESTIVE_DRINK,
    available,
    in_season,
    products_frame,
)
from .personas import (
    DAYTYPES,
    GUEST_SHARE,
    ICED_FAN,
    ICED_INSENSITIVE,
    ICED_SCALE,
    ICED_SENSITIVE,
    PERSONAS,
    TREAT_MIN_PRICE,
    TREAT_P,
    Population,
    affinity_matrix,
    build_population,
    persona_parameters,
)
from .weather import WeatherModel, climate_parameters

GENERATOR_VERSION = 1
SPLIT_DAY_P = 0.15  # a day arrives as 2-3 store files
THREE_FILES_P = 0.4  # of split days
OPEN_HOURS = (6.0, 22.0)
PREFERRED_PAYMENT_P = 0.85
BROKEN_KINDS: tuple[str, ...] = ("unknown_product", "bad_quantity", "wrong_business_unit", "bad_timestamp")
BROKEN_COLUMNS: tuple[str, ...] = ("region", "day", "file", "line", "transaction_id", "product_id", "kind")

_PRODUCT_IDS = np.array([p.product_id for p in PRODUCTS], dtype=object)
_PRICE_USD = np.array([p.price for p in PRODUCTS])
_SERVING = np.array([p.serving for p in PRODUCTS])
_SEASONAL = np.array([p.seasonal for p in PRODUCTS])
_PAYMENTS = np.array(PAYMENT_METHODS, dtype=object)
_HMS = np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)], dtype=object)
_CENTS = np.array([f"{i:02d}" for i in range(100)], dtype=object)
_SEQ = np.array([f"{i:05d}" for i in range(100000)], dtype=object)


def _per_persona(attr: str, index: int | None = None) -> np.ndarray:
    values = [getattr(p, attr) if index is None else getattr(p, attr)[index] for p in PERSONAS]
    return np.array(values, dtype=float)


_VISIT = np.array([p.visit_rate for p in PERSONAS])  # (personas, daytypes)
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
class SimConfig:
    seed: int
    start: date
    customers: int
    broken_share: float = 0.005
    forecast_days: int = 3
    regions: tuple[str, ...] = REGION_KEYS

    def __post_init__(self) -> None:
        unknown = [r for r in self.regions if r not in REGIONS]
        if unknown:
            raise ValueError(f"unknown regions {unknown} (known: {', '.join(REGION_KEYS)})")
        if not 0.0 <= self.broken_share < 0.5:
            raise ValueError("broken_share must be in [0, 0.5)")
        if self.customers < 1:
            raise ValueError("customers must be at least 1")


@dataclass
class SimulationSummary:
    landing: Path
    truth: Path
    start: date
    end: date | None  # last sales day
    days: int
    regions: tuple[str, ...]
    customers: int
    sales_rows: int = 0
    transactions: int = 0
    broken_rows: int = 0
    sales_files: int = 0
    weather_files: int = 0
    missing_weather: int = 0
    seconds: float = 0.0
    rows_per_region: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        span = f"{self.start} .. {self.end}" if self.end else "no sales days"
        return (
            f"{self.days} days ({span}) x {len(self.regions)} regions ({', '.join(self.regions)}), "
            f"{self.customers:,} customers per region: {self.sales_rows:,} sales rows in "
            f"{self.transactions:,} transactions and {self.sales_files:,} files, {self.broken_rows:,} broken rows, "
            f"{self.weather_files:,} weather files ({self.missing_weather} days missing), "
            f"{self.seconds:.1f}s -> {self.landing} (ground truth: {self.truth})"
        )


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


class Simulator:
    def __init__(self, config: SimConfig):
        self.config = config
        self.populations: dict[str, Population] = {
            r: build_population(config.seed, r, config.customers, config.start) for r in config.regions
        }
        self.weather: dict[str, WeatherModel] = {r: WeatherModel(config.seed, r) for r in config.regions}
        self.holidays = {r: holidays.country_holidays(REGIONS[r].country) for r in config.regions}
        self._affinity = {r: affinity_matrix(r) for r in config.regions}
        self._rates = {r: _VISIT[p.persona] * p.rate_mult[:, None] for r, p in self.populations.items()}

    # ----------------------------------------------------------------- context
    def daytype(self, region: str, day: date) -> int:
        if day in self.holidays[region]:
            return DAYTYPES.index("holiday")
        return DAYTYPES.index("weekend") if day.weekday() >= 5 else DAYTYPES.index("weekday")

    def _cumulative(self, region: str, day: date) -> dict[str, np.ndarray]:
        """Per persona, cumulative explore distributions over the day's menu, by item group."""
        aff = self._affinity[region] * np.array(available(region, day))
        groups = {
            "hot": _SERVING == "hot",
            "iced": _SERVING == "iced",
            "food": _SERVING == "none",
            "any": np.ones(len(PRODUCTS), dtype=bool),
        }
        out = {}
        for name, mask in groups.items():
            w = aff * mask
            out[name] = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
        return out

    # ------------------------------------------------------------------- sales
    def day_sales(self, region: str, day: date) -> DaySales:
        cfg = self.config
        info = REGIONS[region]
        pop = self.populations[region]
        rng = np.random.default_rng([cfg.seed, REGION_KEYS.index(region), 2, day.toordinal()])
        wx = self.weather[region].observed(day)
        dt = self.daytype(region, day)
        off = int(dt > 0)  # weekend or holiday

        heat = 1 - _HEAT / 2 + _HEAT * _sigmoid((wx.temp_max_c - 20.0) / 4.0)
        rain = np.exp(-pop.rain_sens * min(wx.precip_mm, 25.0) / 10.0)
        p_visit = np.clip(self._rates[region][:, dt] * heat[pop.persona] * rain, 0.0, 0.95)
        v = np.flatnonzero(rng.random(pop.size) < p_visit)
        m = len(v)
        if m >= len(_SEQ):
            raise ValueError(f"{m} transactions in {region} on {day}: more than the id format allows")
        pv = pop.persona[v]
        u = rng.random((m, 15))
        z = rng.standard_normal(m)
        cum = self._cumulative(region, day)

        def explore(group: str, uu: np.ndarray) -> np.ndarray:
            return np.minimum((cum[group][pv] < uu[:, None]).sum(axis=1), len(PRODUCTS) - 1)

        # Drink: hot or iced by temperature and the customer's own threshold; favourite or explored.
        has_drink = u[:, 0] < _P_DRINK[pv]
        p_iced = pop.iced_floor[v] + (pop.iced_ceil[v] - pop.iced_floor[v]) * _sigmoid(
            (wx.temp_max_c - pop.iced_t0[v]) / ICED_SCALE
        )
        iced = u[:, 1] < p_iced
        slot = (u[:, 3] >= 0.7).astype(np.int64)
        favourite = np.where(iced, pop.fav_iced[v, slot], pop.fav_hot[v, slot])
        explored = np.where(iced, explore("iced", u[:, 4]), explore("hot", u[:, 4]))
        if off:  # weekends and holidays: often the customer's treat rather than the usual hot drink
            favourite = np.where(~iced & (u[:, 14] < TREAT_P), pop.fav_treat[v], favourite)
        drink = np.where(u[:, 2] < pop.repeat[v], favourite, explored)

        # Food: the weekday favourite on weekdays, the weekend favourite on weekends and holidays.
        p_food = _P_FOOD[pv, off] + pop.p_food_shift[v]
        has_food = (u[:, 5] < p_food) | ~has_drink
        fav_food = pop.fav_food_weekend[v] if off else pop.fav_food_weekday[v]
        food = np.where(u[:, 6] < pop.repeat[v], fav_food, explore("food", u[:, 7]))

        # Holidays: festive drinks and pastries replace the usual ones.
        if dt == DAYTYPES.index("holiday"):
            hot_name, iced_name, food_name = FESTIVE[region]
            if in_season(day):
                hot_name = SEASONAL_FESTIVE_DRINK
            swap = u[:, 8] < _P_FESTIVE[pv]
            drink = np.where(swap & ~iced, PRODUCT_INDEX[hot_name], drink)
            if iced_name is not None:
                drink = np.where(swap & iced, PRODUCT_INDEX[iced_name], drink)
            swap_food = u[:, 9] < _P_FESTIVE[pv]
            food = np.where(swap_food, PRODUCT_INDEX[food_name], food)
            has_food |= swap_food & (u[:, 10] < 0.5)

        third = explore("any", u[:, 11])
        has_third = (
            (u[:, 12] < _P_THIRD[pv]) & ~(has_drink & (third == drink)) & ~(has_food & (third == food))
        )

        # Time of day and payment.
        hour = _HOUR[pv, off] + pop.hour_offset[v] + z * _HOUR_SD[pv]
        lo, hi = OPEN_HOURS
        hour = np.where(hour < lo, 2 * lo - hour, np.where(hour >= hi, 2 * hi - hour, hour))  # reflect
        secs = (np.clip(hour, OPEN_HOURS[0], OPEN_HOURS[1] - 1e-4) * 3600).astype(np.int64)
        pay = np.where(
            u[:, 13] < PREFERRED_PAYMENT_P, pop.payment[v], rng.integers(0, len(PAYMENT_METHODS), m)
        )

        # Transactions in time order, rows in item order within a transaction.
        order = np.argsort(secs, kind="stable")
        items = np.stack([drink, food, third], axis=1)[order]
        mask = np.stack([has_drink, has_food, has_third], axis=1)[order]
        flat = mask.ravel()
        t_of_row = np.repeat(np.arange(m), 3)[flat]
        pos_of_row = np.tile(np.arange(3), m)[flat]
        product = items.ravel()[flat]
        persona_row = pv[order][t_of_row]
        n_rows = len(product)

        uq = rng.random(n_rows)
        qty = 1 + (uq > _QTY_CUM[persona_row, 0]).astype(np.int64) + (uq > _QTY_CUM[persona_row, 1])
        cents = np.rint(qty * _PRICE_USD[product] / info.usd_per_unit * 100).astype(np.int64)
        total = (cents // 100).astype(str).astype(object) + "." + _CENTS[cents % 100]
        day_text = day.isoformat()
        tid = (f"{info.business_unit[3:]}-{day:%Y%m%d}-" + _SEQ[1 : m + 1])[t_of_row]
        frame = pd.DataFrame(
            {
                "transaction_id": tid,
                "business_unit": np.full(n_rows, info.business_unit, dtype=object),
                "product_id": _PRODUCT_IDS[product],
                "customer_id": pop.customer_id[v[order]][t_of_row],
                "quantity": qty.astype(str).astype(object),
                "total_price": total,
                "transaction_date": (day_text + " " + _HMS[secs[order]])[t_of_row],
                "payment_method": _PAYMENTS[pay[order]][t_of_row],
            },
            columns=list(SALES_COLUMNS),
        )

        # Broken rows, one kind each.
        broken = rng.random(n_rows) < self.config.broken_share
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
                others = [r.business_unit for r in REGIONS.values() if r.key != region]
                frame.iat[i, 1] = others[x % len(others)]
            else:
                frame.iat[i, 6] = (
                    f"{day_text} 25:{x % 60:02d}:{x // 60 % 60:02d}",
                    "#VALUE!",
                    f"{day_text} 12:{60 + x % 40}:00",
                    "not recorded",
                )[x % 4]

        # Files: usually one; some days 2-3 store files, some with other column orders or a store_id.
        split = rng.random() < SPLIT_DAY_P
        n_files = 2 + int(rng.random() < THREE_FILES_P)
        store = rng.integers(0, n_files, m)[t_of_row]
        variants = rng.integers(0, 4, n_files)
        perms = [rng.permutation(len(SALES_COLUMNS)) for _ in range(n_files)]
        prefix = sales_prefix(region, day_text)
        files: list[tuple[str, pd.DataFrame]] = []
        broken_parts = []
        if not split:
            parts = [("sales.csv", np.arange(n_rows), 0, None)]
        else:
            parts = [
                (f"store_{k + 1:02d}.csv", np.flatnonzero(store == k), int(variants[k]), k)
                for k in range(n_files)
            ]
        for name, rows, variant, k in parts:
            part = frame.iloc[rows].reset_index(drop=True)
            columns = list(SALES_COLUMNS)
            if variant in (1, 3):
                columns = [columns[j] for j in perms[k]]
            part = part[columns]
            if variant in (2, 3):
                store_id = f"{info.business_unit[3:]}-S{k + 1:02d}"
                part.insert(0 if variant == 3 else len(columns), "store_id", store_id)
            files.append((prefix + name, part))
            b = np.flatnonzero(broken[rows])
            if len(b):
                broken_parts.append(
                    pd.DataFrame(
                        {
                            "region": region,
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
        return DaySales(region, day, files, broken_frame, m)

    # ------------------------------------------------------------------ writing
    def write_sales(self, landing: Path, sales: DaySales) -> None:
        folder = landing / sales_prefix(sales.region, sales.day.isoformat())
        if folder.exists():
            for old in folder.glob("*.csv"):
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        for path, frame in sales.files:
            _write_text(landing / path, csv_text(frame))

    def write_observed_weather(self, landing: Path, region: str, day: date) -> bool:
        """Write the day's observed weather; returns False (and removes any forecast) if it is missing."""
        path = landing / weather_path(region, day.isoformat())
        if self.weather[region].missing(day):
            path.unlink(missing_ok=True)
            return False
        _write_text(path, self.weather[region].observed(day).csv())
        return True

    def write_forecasts(self, landing: Path, last_sales_day: date) -> int:
        n = 0
        for region in self.config.regions:
            for k in range(1, self.config.forecast_days + 1):
                day = last_sales_day + timedelta(days=k)
                forecast = self.weather[region].forecast(day, last_sales_day)
                _write_text(landing / weather_path(region, day.isoformat()), forecast.csv())
                n += 1
        return n

    def write_reference(self, landing: Path) -> None:
        ref = landing / REFERENCE_PREFIX
        ref.mkdir(parents=True, exist_ok=True)
        products_frame().to_csv(ref / "products.csv", index=False, lineterminator="\n")
        customers = pd.concat([p.customers for p in self.populations.values()], ignore_index=True)
        customers.to_csv(ref / "customers.csv", index=False, lineterminator="\n")
        units = pd.DataFrame(
            [
                {
                    "business_unit": r.business_unit,
                    "region": r.key,
                    "country": r.country,
                    "currency": r.currency,
                    "timezone": r.timezone,
                    "city": r.city,
                }
                for r in REGIONS.values()
            ]
        )
        units.to_csv(ref / "business_units.csv", index=False, lineterminator="\n")

    def parameters(self, days: int) -> dict:
        cfg = self.config
        return {
            "generator_version": GENERATOR_VERSION,
            "seed": cfg.seed,
            "start": cfg.start.isoformat(),
            "days": days,
            "end": (cfg.start + timedelta(days=days - 1)).isoformat() if days > 0 else None,
            "customers": cfg.customers,
            "regions": list(cfg.regions),
            "broken_share": cfg.broken_share,
            "broken_kinds": list(BROKEN_KINDS),
            "forecast_days": cfg.forecast_days,
            "guest_share_of_pool": GUEST_SHARE,
            "split_day_probability": SPLIT_DAY_P,
            "three_files_probability": THREE_FILES_P,
            "open_hours": list(OPEN_HOURS),
            "preferred_payment_probability": PREFERRED_PAYMENT_P,
            "personas": persona_parameters(),
            "effects": {
                "visit_probability": "visit_rate[persona, daytype] * lognormal(0, 0.3) per customer "
                "* heat(t_max) * exp(-rain_sensitivity * min(precip_mm, 25) / 10), capped at 0.95",
                "heat": "1 - heat_visit_boost / 2 + heat_visit_boost * sigmoid((t_max - 20) / 4)",
                "iced_share": "floor + (ceil - floor) * sigmoid((t_max - t0) / scale), t0 per customer",
                "iced_scale": ICED_SCALE,
                "iced_weather_sensitive": ICED_SENSITIVE,
                "iced_not_weather_sensitive": ICED_INSENSITIVE,
                "iced_drink_fan": ICED_FAN,
                "favourites": "2 hot drinks (0.7/0.3), 2 iced drinks (0.7/0.3), a weekday food and a "
                "weekend/holiday food and a premium hot 'treat' drink, drawn from persona affinities x regional taste; each item is a "
                "favourite with probability p_repeat (+- 0.05 per customer), else explored from affinities",
                "weekend_treat": {
                    "probability": TREAT_P,
                    "min_price_usd": TREAT_MIN_PRICE,
                    "rule": "on weekends "
                    "and holidays a hot-drink favourite is the customer's treat drink with this probability",
                },
                "holidays": "holidays.country_holidays(country): daytype 'holiday' visit rates, and with "
                "probability p_festive the drink / food becomes the festive item",
                "festive_items": {r: list(v) for r, v in FESTIVE.items()},
                "seasonal_festive_drink": SEASONAL_FESTIVE_DRINK,
                "regional_taste": _regional_taste(),
            },
            "weather": climate_parameters(),
        }

    def write_static_truth(self, truth: Path, days: int) -> None:
        truth.mkdir(parents=True, exist_ok=True)
        personas = pd.concat([p.personas_frame() for p in self.populations.values()], ignore_index=True)
        personas.to_csv(truth / "personas.csv", index=False, lineterminator="\n")
        _write_parameters(truth, self.parameters(days))

    def write_day(self, landing: Path, truth: Path, day: date) -> list[DaySales]:
        """Live mode: one new sales day for every region, its weather, refreshed forecasts, truth rows."""
        results, missing = [], []
        for region in self.config.regions:
            sales = self.day_sales(region, day)
            self.write_sales(landing, sales)
            if not self.write_observed_weather(landing, region, day):
                missing.append({"region": region, "day": day.isoformat()})
            results.append(sales)
        self.write_forecasts(landing, day)
        truth.mkdir(parents=True, exist_ok=True)
        broken_file, missing_file = truth / "broken_rows.csv", truth / "missing_weather.csv"
        broken = _read_or_empty(broken_file, BROKEN_COLUMNS)
        broken = broken[broken["day"] != day.isoformat()]
        _write_broken(broken_file, [broken, *[r.broken for r in results]])
        old_missing = _read_or_empty(missing_file, ("region", "day"))
        old_missing = old_missing[old_missing["day"] != day.isoformat()]
        _write_missing(missing_file, [old_missing, pd.DataFrame(missing, columns=["region", "day"])])
        if not (truth / "personas.csv").exists():
            self.write_static_truth(truth, (day - self.config.start).days + 1)
        else:
            _write_parameters(truth, self.parameters((day - self.config.start).days + 1))
        return results


def csv_text(frame: pd.DataFrame) -> str:
    """CSV text of a frame of plain strings (no commas or quotes in values), built column-wise."""
    header = ",".join(frame.columns) + "\n"
    if not len(frame):
        return header
    columns = [frame[c].to_numpy(dtype=object) for c in frame.columns]
    lines = columns[0]
    for col in columns[1:]:
        lines = lines + "," + col
    return header + "\n".join(lines.tolist()) + "\n"


def _regional_taste() -> dict:
    from .personas import REGIONAL_TASTE

    return REGIONAL_TASTE


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _write_parameters(truth: Path, params: dict) -> None:
    _write_text(
        truth / "parameters.json", json.dumps(params, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def _read_or_empty(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    if path.exists():
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.DataFrame(columns=list(columns))


def _write_broken(path: Path, frames: Iterable[pd.DataFrame]) -> None:
    frames = [f for f in frames if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(BROKEN_COLUMNS))
    out = out.astype({"line": int}) if len(out) else out
    out = out.sort_values(["day", "region", "file", "line"], kind="stable")[list(BROKEN_COLUMNS)]
    out.to_csv(path, index=False, lineterminator="\n")


def _write_missing(path: Path, frames: Iterable[pd.DataFrame]) -> None:
    frames = [f for f in frames if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["region", "day"])
    out.sort_values(["day", "region"], kind="stable").to_csv(path, index=False, lineterminator="\n")


def load_config(truth: Path) -> SimConfig | None:
    """The configuration of an earlier run, from its parameters.json (None if there is none)."""
    path = truth / "parameters.json"
    if not path.exists():
        return None
    p = json.loads(path.read_text(encoding="utf-8"))
    return SimConfig(
        seed=int(p["seed"]),
        start=date.fromisoformat(p["start"]),
        customers=int(p["customers"]),
        broken_share=float(p["broken_share"]),
        forecast_days=int(p["forecast_days"]),
        regions=tuple(p["regions"]),
    )


def last_sales_day(landing: Path) -> date | None:
    """The last day that has a sales file in the landing folder, over all regions."""
    last = None
    root = landing / SALES_PREFIX
    if not root.exists():
        return None
    for folder in root.glob("*/*"):
        if folder.is_dir() and folder.parent.name in REGIONS and any(folder.glob("*.csv")):
            try:
                day = parse_day(folder.name)
            except ContractError:
                continue
            last = day if last is None or day > last else last
    return last


def has_sales(landing: Path) -> bool:
    return last_sales_day(landing) is not None


def simulate(
    landing: Path,
    truth: Path,
    start: date,
    days: int,
    customers: int,
    seed: int,
    broken_share: float = 0.005,
    forecast_days: int = 3,
    regions: Sequence[str] = REGION_KEYS,
    progress: bool = False,
) -> SimulationSummary:
    """Write `days` days of sales from `start` for `regions`, weather, forecasts, reference and ground truth."""
    t0 = time.perf_counter()
    landing, truth = Path(landing), Path(truth)
    _check_truth_outside(landing, truth)
    config = SimConfig(seed, start, customers, broken_share, forecast_days, tuple(regions))
    sim = Simulator(config)
    landing.mkdir(parents=True, exist_ok=True)
    sim.write_reference(landing)
    sim.write_static_truth(truth, days)
    summary = SimulationSummary(landing, truth, start, None, days, config.regions, customers)
    summary.rows_per_region = dict.fromkeys(config.regions, 0)
    broken, missing = [], []
    for i in range(days):
        day = start + timedelta(days=i)
        for region in config.regions:
            sales = sim.day_sales(region, day)
            sim.write_sales(landing, sales)
            summary.sales_rows += sales.rows
            summary.rows_per_region[region] += sales.rows
            summary.transactions += sales.transactions
            summary.sales_files += len(sales.files)
            broken.append(sales.broken)
            if sim.write_observed_weather(landing, region, day):
                summary.weather_files += 1
            else:
                missing.append({"region": region, "day": day.isoformat()})
        summary.end = day
        if progress and ((i + 1) % 30 == 0 or i + 1 == days):
            print(
                f"  {day} ({i + 1}/{days} days): {summary.sales_rows:,} sales rows, "
                f"{time.perf_counter() - t0:.1f}s",
                flush=True,
            )
    if summary.end is not None:
        summary.weather_files += sim.write_forecasts(landing, summary.end)
    _write_broken(truth / "broken_rows.csv", broken)
    _write_missing(truth / "missing_weather.csv", [pd.DataFrame(missing, columns=["region", "day"])])
    summary.broken_rows = sum(len(b) for b in broken)
    summary.missing_weather = len(missing)
    summary.seconds = time.perf_counter() - t0
    return summary


def write_day(landing: Path, truth: Path, day: date, config: SimConfig) -> list[DaySales]:
    """Generate and write one day (all of `config.regions`) as live mode does; see Simulator.write_day."""
    return Simulator(config).write_day(Path(landing), Path(truth), day)


def _check_truth_outside(landing: Path, truth: Path) -> None:
    lr, tr = landing.resolve(), truth.resolve()
    if tr == lr or lr in tr.parents:
        raise ValueError(f"the ground truth folder {truth} must be outside the landing folder {landing}")

"""The ground-truth folder: what the simulator planted, so tests and the UI can check what was found.

- parameters.json: the whole configuration (seed, profile, scenario, horizon) and every effect's
  parameters; `globolatte simulate --live` reads it back to continue the same world.
- personas.csv: every loyalty customer's persona (and, for long-tail profiles, their visit tier).
- broken_rows.csv, missing_weather.csv: the rows deliberately broken, the weather days never delivered.
- launches.csv, adopters.csv: launched products and who adopted them when (profile launch, new-product).
- persona_changes.csv (taste-shift), price_changes.csv (price-change).
- malformed_reference_rows.csv: customers.csv rows whose field count differs from the header (export).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .catalogue import FESTIVE, SEASONAL_FESTIVE_DRINK
from .output import read_or_empty, write_broken, write_missing, write_parameters
from .personas import (
    ICED_FAN,
    ICED_INSENSITIVE,
    ICED_SCALE,
    ICED_SENSITIVE,
    PERSONA_KEYS,
    REGIONAL_TASTE,
    TREAT_MIN_PRICE,
    TREAT_P,
    persona_parameters,
)
from .sales import BROKEN_COLUMNS, BROKEN_KINDS, OPEN_HOURS, PREFERRED_PAYMENT_P, SPLIT_DAY_P, THREE_FILES_P
from .weather import climate_parameters

if TYPE_CHECKING:
    from .generator import Simulator
    from .sales import DaySales

GENERATOR_VERSION = 2


def parameters(sim: Simulator, days: int) -> dict:
    cfg = sim.config
    profile = sim.profile
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": cfg.seed,
        "start": cfg.start.isoformat(),
        "days": days,
        "end": (cfg.start + timedelta(days=days - 1)).isoformat() if days > 0 else None,
        "customers": cfg.customers,
        "regions": list(cfg.regions),
        "profile": profile.to_dict(),
        "horizon_days": cfg.horizon_days,
        "scenario": cfg.scenario.to_dict() | {"region": cfg.outage_region} if cfg.scenario else None,
        "products": len(sim.catalogue),
        "launches": {
            p.product_id: d.isoformat()
            for p in sim.catalogue.products
            if (d := sim.catalogue.launches.get(p.product_id))
        },
        "broken_share": cfg.broken_share,
        "broken_kinds": list(BROKEN_KINDS),
        "forecast_days": cfg.forecast_days,
        "guest_share_of_pool": profile.guest_share,
        "split_day_probability": SPLIT_DAY_P,
        "three_files_probability": THREE_FILES_P,
        "open_hours": list(OPEN_HOURS),
        "preferred_payment_probability": PREFERRED_PAYMENT_P,
        "personas": persona_parameters(),
        "effects": {
            "visit_probability": "visit_rate[persona, daytype] * lognormal(0, 0.3) per customer "
            "* heat(t_max) * exp(-rain_sensitivity * min(precip_mm, 25) / 10), capped at 0.95",
            "long_tail": "profiles with loyal_core_share: that share visits as above; every other customer "
            "at tail_visits / horizon_days per day (lognormal tail_spread), in their persona's weekly pattern",
            "weather_effect": "heat -> 1 + w (heat - 1), rain -> rain ** w, iced share -> (1 - w) iced(t_ref) "
            "+ w iced(t_max) with t_ref the region's mean t_max (w = profile.weather_effect)",
            "heat": "1 - heat_visit_boost / 2 + heat_visit_boost * sigmoid((t_max - 20) / 4)",
            "iced_share": "floor + (ceil - floor) * sigmoid((t_max - t0) / scale), t0 per customer",
            "iced_scale": ICED_SCALE,
            "iced_weather_sensitive": ICED_SENSITIVE,
            "iced_not_weather_sensitive": ICED_INSENSITIVE,
            "iced_drink_fan": ICED_FAN,
            "favourites": "2 hot drinks (0.7/0.3), 2 iced drinks (0.7/0.3), a weekday food and a "
            "weekend/holiday food and a premium hot 'treat' drink, drawn from persona affinities x regional "
            "taste; each item is a favourite with probability p_repeat (+- 0.05 per customer), else explored "
            "from affinities",
            "launches": "a launched product is on the menu from its launch day; adopters (a share of the "
            "pool, each from launch + a geometric delay) take it as their drink with probability `choice`",
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
            "regional_taste": REGIONAL_TASTE,
        },
        "weather": climate_parameters(),
    }


def read_parameters(truth: Path) -> dict | None:
    path = truth / "parameters.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n")


def write_static_truth(sim: Simulator, truth: Path, days: int) -> None:
    """Everything planted that does not depend on the days written so far."""
    truth.mkdir(parents=True, exist_ok=True)
    frames = []
    for world in sim.worlds.values():
        frame = world.before.personas_frame()
        if world.visits.core is not None:
            frame["visit_tier"] = np.where(world.visits.core[: world.before.n_customers], "core", "tail")
        frames.append(frame)
    _csv(pd.concat(frames, ignore_index=True), truth / "personas.csv")
    for name, frame in _scenario_truth(sim).items():
        _csv(frame, truth / name)
    malformed = sim.customers_csv()[1]
    if len(malformed):
        _csv(malformed, truth / "malformed_reference_rows.csv")
    write_parameters(truth, parameters(sim, days))


def _scenario_truth(sim: Simulator) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    cat = sim.catalogue
    launches, adopters, changes = [], [], []
    for region, world in sim.worlds.items():
        n = world.before.n_customers
        ids = world.before.customer_id[:n]
        for launch in world.launches:
            product = cat.products[launch.product]
            adopt = launch.adopt_ordinal[:n]
            who = np.flatnonzero(adopt < np.iinfo(np.int64).max)
            launches.append((region, product.product_id, product.name, launch.day.isoformat(), len(who)))
            adopters += [
                (region, ids[i], product.product_id, date.fromordinal(int(adopt[i])).isoformat()) for i in who
            ]
        if world.switched is not None and world.after is not None and world.shift_day is not None:
            for i in np.flatnonzero(world.switched[:n]):
                before, after = world.before.persona[i], world.after.persona[i]
                changes.append(
                    (region, ids[i], world.shift_day.isoformat(), PERSONA_KEYS[before], PERSONA_KEYS[after])
                )
    if launches:
        out["launches.csv"] = pd.DataFrame(
            launches, columns=["region", "product_id", "product_name", "launch_day", "adopters"]
        )
        out["adopters.csv"] = pd.DataFrame(
            adopters, columns=["region", "customer_id", "product_id", "adoption_day"]
        )
    if changes:
        out["persona_changes.csv"] = pd.DataFrame(
            changes, columns=["region", "customer_id", "day", "persona_before", "persona_after"]
        )
    world = next(iter(sim.worlds.values()))
    if world.price_factor is not None and world.price_day is not None:
        rows = [
            (
                p.product_id,
                p.name,
                world.price_day.isoformat(),
                f"{p.price:.2f}",
                f"{p.price * f:.2f}",
                float(f),
            )
            for p, f in zip(cat.products, world.price_factor, strict=True)
            if f != 1.0
        ]
        out["price_changes.csv"] = pd.DataFrame(
            rows,
            columns=["product_id", "product_name", "day", "price_before_usd", "price_after_usd", "factor"],
        )
    return out


def write_day_truth(
    sim: Simulator, truth: Path, day: date, results: list[DaySales], missing: list[dict]
) -> None:
    """Live mode: the day's broken rows and missing weather, replacing any earlier rows of that day."""
    truth.mkdir(parents=True, exist_ok=True)
    broken_file, missing_file = truth / "broken_rows.csv", truth / "missing_weather.csv"
    broken = read_or_empty(broken_file, BROKEN_COLUMNS)
    broken = broken[broken["day"] != day.isoformat()]
    write_broken(broken_file, [broken, *[r.broken for r in results]])
    old_missing = read_or_empty(missing_file, ("region", "day"))
    old_missing = old_missing[old_missing["day"] != day.isoformat()]
    write_missing(missing_file, [old_missing, pd.DataFrame(missing, columns=["region", "day"])])
    days = (day - sim.config.start).days + 1
    if not (truth / "personas.csv").exists():
        write_static_truth(sim, truth, days)
    else:
        write_parameters(truth, parameters(sim, days))

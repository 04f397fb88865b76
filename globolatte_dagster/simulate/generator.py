"""The GloboLatte simulator: landing files per the DESIGN.md contract, plus a ground truth folder.

Randomness is keyed, never sequential across days:
- the population of a region comes from (seed, region),
- a day's sales of a region from (seed, region, day),
- a day's weather from (seed, region, day) (AR(1) as a truncated moving average of daily draws),
so one day generated alone (live mode) equals the same day of a batch run, byte for byte, given the same
configuration (profile, scenario and horizon, all kept in the ground truth's parameters.json).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import holidays
import pandas as pd

from globolatte_dagster.lib.contract import (
    REFERENCE_PREFIX,
    REGIONS,
    SALES_PREFIX,
    ContractError,
    parse_day,
    sales_prefix,
    weather_path,
)

from .catalogue import build_catalogue
from .config import SimConfig, load_config
from .output import (
    business_units_frame,
    check_truth_outside,
    csv_text,
    customers_with_raw_rows,
    frame_csv,
    write_broken,
    write_if_changed,
    write_missing,
    write_text,
)
from .personas import DAYTYPES
from .population import Population, comma_names
from .profiles import DEFAULT_PROFILE, Profile, Scenario
from .sales import BROKEN_COLUMNS, BROKEN_KINDS, DayContext, DaySales, day_sales
from .truth import write_day_truth, write_static_truth
from .weather import WeatherModel
from .world import RegionWorld, launch_plans

__all__ = [
    "BROKEN_COLUMNS",
    "BROKEN_KINDS",
    "DaySales",
    "SimConfig",
    "SimulationSummary",
    "Simulator",
    "load_config",
]


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
    profile: str = DEFAULT_PROFILE
    scenario: str | None = None

    def __str__(self) -> str:
        span = f"{self.start} .. {self.end}" if self.end else "no sales days"
        world = f"profile {self.profile}" + (f", scenario {self.scenario}" if self.scenario else "")
        return (
            f"{self.days} days ({span}) x {len(self.regions)} regions ({', '.join(self.regions)}), "
            f"{self.customers:,} customers per region ({world}): {self.sales_rows:,} sales rows in "
            f"{self.transactions:,} transactions and {self.sales_files:,} files, {self.broken_rows:,} broken rows, "
            f"{self.weather_files:,} weather files ({self.missing_weather} days missing), "
            f"{self.seconds:.1f}s -> {self.landing} (ground truth: {self.truth})"
        )


class Simulator:
    def __init__(self, config: SimConfig):
        self.config = config
        self.profile = profile = config.profile_
        plans = launch_plans(profile, config.scenario, config.start, config.horizon)
        self.catalogue = build_catalogue(profile.extended_catalogue, [(p.key, p.day) for p in plans])
        self.worlds: dict[str, RegionWorld] = {
            r: RegionWorld.build(
                config.seed,
                r,
                config.customers,
                config.start,
                config.horizon,
                self.catalogue,
                profile,
                config.scenario,
            )
            for r in config.regions
        }
        self.populations: dict[str, Population] = {r: w.before for r, w in self.worlds.items()}
        self.weather: dict[str, WeatherModel] = {r: WeatherModel(config.seed, r) for r in config.regions}
        self.holidays = {r: holidays.country_holidays(REGIONS[r].country) for r in config.regions}

    # ----------------------------------------------------------------- context
    def daytype(self, region: str, day: date) -> int:
        if day in self.holidays[region]:
            return DAYTYPES.index("holiday")
        return DAYTYPES.index("weekend") if day.weekday() >= 5 else DAYTYPES.index("weekday")

    def uploads(self, region: str, day: date) -> bool:
        """Whether the region's unit uploads on `day` (not after a unit outage began)."""
        s = self.config.scenario
        return not (region == self.config.outage_region and s is not None and day >= s.day)

    def has_weather_feed(self, region: str) -> bool:
        return region not in self.profile.no_weather_regions

    def day_sales(self, region: str, day: date) -> DaySales:
        ctx = DayContext(
            seed=self.config.seed,
            region=region,
            day=day,
            daytype=self.daytype(region, day),
            weather=self.weather[region].observed(day),
            catalogue=self.catalogue,
            broken_share=self.config.broken_share,
            single_store=region in self.profile.single_store_regions,
            outlets=self.profile.outlets,
        )
        return day_sales(ctx, self.worlds[region].day(day))

    # ------------------------------------------------------------------ writing
    def write_sales(self, landing: Path, sales: DaySales) -> None:
        folder = landing / sales_prefix(sales.region, sales.day.isoformat())
        if folder.exists():
            for old in folder.glob("*.csv"):
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        for path, frame in sales.files:
            write_text(landing / path, csv_text(frame))

    def write_observed_weather(self, landing: Path, region: str, day: date) -> bool:
        """Write the day's observed weather; returns False (and removes any forecast) if it is missing."""
        path = landing / weather_path(region, day.isoformat())
        if self.weather[region].missing(day):
            path.unlink(missing_ok=True)
            return False
        write_text(path, self.weather[region].observed(day).csv())
        return True

    def write_forecasts(self, landing: Path, last_sales_day: date) -> int:
        n = 0
        for region in self.config.regions:
            if not self.has_weather_feed(region) or not self.uploads(region, last_sales_day):
                continue
            for k in range(1, self.config.forecast_days + 1):
                day = last_sales_day + timedelta(days=k)
                forecast = self.weather[region].forecast(day, last_sales_day)
                write_text(landing / weather_path(region, day.isoformat()), forecast.csv())
                n += 1
        return n

    def price_factors(self, as_of: date) -> dict[str, float]:
        """product_id -> price factor in force on `as_of` (empty without a price change)."""
        world = next(iter(self.worlds.values()))
        if world.price_factor is None or not world.prices_changed(as_of):
            return {}
        return {
            pid: float(f) for pid, f in zip(self.catalogue.ids, world.price_factor, strict=True) if f != 1.0
        }

    def customers_csv(self) -> tuple[str, pd.DataFrame]:
        """customers.csv text and its malformed rows (only the export profile writes any)."""
        customers = pd.concat([p.customers for p in self.populations.values()], ignore_index=True)
        if self.profile.comma_name_share <= 0:
            return frame_csv(customers), pd.DataFrame()
        flagged = pd.concat(
            [
                comma_names(
                    self.config.seed,
                    r,
                    p.customers,
                    self.profile.comma_name_share,
                    self.profile.unquoted_share,
                )
                for r, p in self.populations.items()
            ],
            ignore_index=True,
        )
        return customers_with_raw_rows(flagged, f"{REFERENCE_PREFIX}/customers.csv")

    def write_reference(self, landing: Path, as_of: date) -> None:
        """The reference snapshots as of `as_of`; a file whose content is unchanged is not rewritten."""
        ref = landing / REFERENCE_PREFIX
        ref.mkdir(parents=True, exist_ok=True)
        write_if_changed(
            ref / "products.csv", frame_csv(self.catalogue.products_frame(self.price_factors(as_of)))
        )
        write_if_changed(ref / "customers.csv", self.customers_csv()[0])
        write_if_changed(ref / "business_units.csv", frame_csv(business_units_frame()))

    def write_region_day(self, landing: Path, region: str, day: date) -> tuple[DaySales | None, bool]:
        """Sales and observed weather of one region-day, as uploaded: (sales or None, weather missing)."""
        if not self.uploads(region, day):
            return None, False
        sales = self.day_sales(region, day)
        self.write_sales(landing, sales)
        missing = self.has_weather_feed(region) and not self.write_observed_weather(landing, region, day)
        return sales, missing

    def write_day(self, landing: Path, truth: Path, day: date) -> list[DaySales]:
        """Live mode: one new sales day for every region, its weather, refreshed forecasts, truth rows."""
        results, missing = [], []
        for region in self.config.regions:
            sales, weather_missing = self.write_region_day(landing, region, day)
            if weather_missing:
                missing.append({"region": region, "day": day.isoformat()})
            if sales is not None:
                results.append(sales)
        self.write_forecasts(landing, day)
        self.write_reference(landing, day)
        write_day_truth(self, truth, day, results, missing)
        return results


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
    regions: Sequence[str] | None = None,
    progress: bool = False,
    profile: Profile | str = DEFAULT_PROFILE,
    scenario: Scenario | str | None = None,
    scenario_from: date | None = None,
    scenario_region: str | None = None,
    horizon_days: int | None = None,
) -> SimulationSummary:
    """Write `days` days of sales from `start`, weather, forecasts, reference and ground truth.

    `regions` defaults to the profile's; `horizon_days` (the period the long-tail visit rates and the
    profile's launch day are scaled to) defaults to `days`; a scenario given by name starts on
    `scenario_from`, by default halfway through the period.
    """
    t0 = time.perf_counter()
    landing, truth = Path(landing), Path(truth)
    check_truth_outside(landing, truth)
    if isinstance(scenario, str):
        scenario = Scenario(scenario, scenario_from or start + timedelta(days=days // 2), scenario_region)
    config = SimConfig(
        seed,
        start,
        customers,
        broken_share,
        forecast_days,
        tuple(regions) if regions is not None else None,
        profile,
        horizon_days or max(days, 1),
        scenario,
    )
    sim = Simulator(config)
    landing.mkdir(parents=True, exist_ok=True)
    sim.write_reference(landing, start + timedelta(days=days - 1))
    write_static_truth(sim, truth, days)
    summary = SimulationSummary(
        landing,
        truth,
        start,
        None,
        days,
        config.regions,
        customers,
        profile=sim.profile.name,
        scenario=scenario.kind if scenario else None,
    )
    _write_period(sim, landing, truth, summary, progress, t0)
    summary.seconds = time.perf_counter() - t0
    return summary


def _write_period(
    sim: Simulator, landing: Path, truth: Path, summary: SimulationSummary, progress: bool, t0: float
) -> None:
    """Every day of the summary's period, region by region, then forecasts and the day-by-day truth."""
    summary.rows_per_region = dict.fromkeys(summary.regions, 0)
    broken, missing = [], []
    for i in range(summary.days):
        day = summary.start + timedelta(days=i)
        for region in summary.regions:
            sales, weather_missing = sim.write_region_day(landing, region, day)
            if sales is None:
                continue
            summary.sales_rows += sales.rows
            summary.rows_per_region[region] += sales.rows
            summary.transactions += sales.transactions
            summary.sales_files += len(sales.files)
            broken.append(sales.broken)
            if weather_missing:
                missing.append({"region": region, "day": day.isoformat()})
            elif sim.has_weather_feed(region):
                summary.weather_files += 1
        summary.end = day
        if progress and ((i + 1) % 30 == 0 or i + 1 == summary.days):
            print(
                f"  {day} ({i + 1}/{summary.days} days): {summary.sales_rows:,} sales rows, "
                f"{time.perf_counter() - t0:.1f}s",
                flush=True,
            )
    if summary.end is not None:
        summary.weather_files += sim.write_forecasts(landing, summary.end)
    write_broken(truth / "broken_rows.csv", broken)
    write_missing(truth / "missing_weather.csv", [pd.DataFrame(missing, columns=["region", "day"])])
    summary.broken_rows = sum(len(b) for b in broken)
    summary.missing_weather = len(missing)


def write_day(landing: Path, truth: Path, day: date, config: SimConfig) -> list[DaySales]:
    """Generate and write one day (all of `config.regions`) as live mode does; see Simulator.write_day."""
    return Simulator(config).write_day(Path(landing), Path(truth), day)

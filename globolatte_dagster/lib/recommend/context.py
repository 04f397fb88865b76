"""A day's context for a region: weather (observed, forecast, requested or recent average), holidays, season.

Holidays come from the `holidays` package (the same source as `core.calendar`), so any requested date has
them, also past the calendar table. Weather comes from the region's `raw.weather` rows: a day with a file
is observed (or a forecast, when it lies after the last landed sales day); a day without one gets the
recent average and says so; a region with no weather feed at all gets no weather (NaN), and every
consumer treats that as "no weather" rather than failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import holidays
import numpy as np
import pandas as pd

from globolatte_dagster.lib.contract import REGIONS
from globolatte_dagster.lib.reference import season
from globolatte_dagster.lib.weather_bands import N_TEMP_BANDS, TEMP_EDGES

__all__ = ["N_TEMP_BANDS", "TEMP_EDGES"]  # re-exported: the bands are part of the context
SEASONS = ("winter", "spring", "summer", "autumn")
WEATHER_SOURCES = ("observed", "forecast", "request", "recent_average", "none")


@lru_cache(maxsize=256)
def _holiday_book(country: str, year: int) -> Any:
    return holidays.country_holidays(country, years=[year])


def is_holiday(region: str, day: date) -> bool:
    return day in _holiday_book(REGIONS[region].country, day.year)


def temp_band(temp: float | np.ndarray) -> np.ndarray:
    """The temperature band index of TEMP_EDGES (NaN stays NaN)."""
    t = np.asarray(temp, dtype=float)
    band = np.searchsorted(np.asarray(TEMP_EDGES), t, side="right").astype(float)
    return np.where(np.isnan(t), np.nan, band)


@dataclass(frozen=True)
class DayContext:
    day: date
    temp_max_c: float  # NaN when unknown
    precip_mm: float  # NaN when unknown
    is_holiday: bool
    weather_source: str  # one of WEATHER_SOURCES

    @property
    def weekday(self) -> int:
        return self.day.weekday()

    @property
    def is_weekend(self) -> bool:
        return self.day.weekday() >= 5

    @property
    def off_day(self) -> bool:
        return self.is_weekend or self.is_holiday

    @property
    def season(self) -> int:
        return SEASONS.index(season(self.day))


def day_context(region: str, day: date, temp: float | None, precip: float | None, source: str) -> DayContext:
    nan = float("nan")
    return DayContext(
        day,
        nan if temp is None else float(temp),
        nan if precip is None else float(precip),
        is_holiday(region, day),
        source,
    )


@dataclass
class WeatherBook:
    """Observed and forecast weather of one region by day, and the recent average where a day has none."""

    by_day: dict[date, tuple[float, float]] = field(default_factory=dict)
    average_days: int = 7
    max_age_days: int = 14  # a feed silent for longer gives no average: its last readings are not "recent"

    @classmethod
    def from_frame(cls, weather: pd.DataFrame) -> WeatherBook:
        """From `day, temp_max_c, precip_mm` rows; rows without a temperature are ignored."""
        by_day: dict[date, tuple[float, float]] = {}
        if len(weather):
            for d, t, p in weather[["day", "temp_max_c", "precip_mm"]].itertuples(index=False):
                if t is None or not math.isfinite(float(t)):
                    continue
                p = float(p) if p is not None and math.isfinite(float(p)) else float("nan")
                by_day[pd.Timestamp(d).date()] = (float(t), p)
        return cls(by_day)

    @property
    def present(self) -> bool:
        return bool(self.by_day)

    def until(self, last: date) -> WeatherBook:
        """The book as it was known on `last` (observations up to it; later files are forecasts)."""
        return WeatherBook(
            {d: v for d, v in self.by_day.items() if d <= last}, self.average_days, self.max_age_days
        )

    def recent_average(self, before: date) -> tuple[float, float] | None:
        """Mean of the last `average_days` days with weather on or before `before`, within `max_age_days`."""
        oldest = before - timedelta(days=self.max_age_days)
        days = sorted(d for d in self.by_day if oldest < d <= before)[-self.average_days :]
        if not days:
            return None
        temps = [self.by_day[d][0] for d in days]
        precs = [self.by_day[d][1] for d in days if not math.isnan(self.by_day[d][1])]
        return float(np.mean(temps)), float(np.mean(precs)) if precs else float("nan")

    def median_temp(self, first: date, last: date) -> float:
        temps = [t for d, (t, _) in self.by_day.items() if first <= d <= last]
        return float(np.median(temps)) if temps else float("nan")

    def context(self, region: str, day: date, known_until: date) -> DayContext:
        """The day's weather if the book has it (observed up to `known_until`, a forecast after), else
        the recent average as of `known_until`, else no weather."""
        if day in self.by_day:
            t, p = self.by_day[day]
            return day_context(region, day, t, p, "observed" if day <= known_until else "forecast")
        avg = self.recent_average(min(known_until, day - timedelta(days=1)))
        if avg is None:
            return day_context(region, day, None, None, "none")
        return day_context(region, day, avg[0], avg[1], "recent_average")


@dataclass(frozen=True)
class ContextArrays:
    """Many days' contexts as arrays, one entry per request row."""

    temp: np.ndarray
    precip: np.ndarray
    weekday: np.ndarray
    weekend: np.ndarray
    holiday: np.ndarray
    season: np.ndarray

    @classmethod
    def of(cls, contexts: list[DayContext]) -> ContextArrays:
        return cls(
            temp=np.array([c.temp_max_c for c in contexts], dtype=float),
            precip=np.array([c.precip_mm for c in contexts], dtype=float),
            weekday=np.array([c.weekday for c in contexts], dtype=float),
            weekend=np.array([c.is_weekend for c in contexts], dtype=bool),
            holiday=np.array([c.is_holiday for c in contexts], dtype=bool),
            season=np.array([c.season for c in contexts], dtype=float),
        )

    def take(self, rows: np.ndarray) -> ContextArrays:
        """The entries at `rows` (a subset, or one entry per request from per-day contexts)."""
        return ContextArrays(
            self.temp[rows],
            self.precip[rows],
            self.weekday[rows],
            self.weekend[rows],
            self.holiday[rows],
            self.season[rows],
        )

    @property
    def off_day(self) -> np.ndarray:
        return self.weekend | self.holiday

    @property
    def band(self) -> np.ndarray:
        return temp_band(self.temp)

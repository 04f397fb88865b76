"""Daily weather of each region's reference city: seasonal mean + AR(1) noise, seasonal rain chance.

Every day's random numbers come from (seed, region, day) only, and the AR(1) noise is a truncated
moving average of those, so a day's weather is the same whether it is generated alone or in a series.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import numpy as np

from globolatte_dagster.lib.contract import REGION_KEYS


@dataclass(frozen=True)
class Climate:
    city: str
    tmax_mean: float  # annual mean of the daily maximum, °C
    tmax_amplitude: float
    peak_doy: int  # day of year of the warmest days
    diurnal_range: float  # mean t_max - t_min
    noise_sd: float  # stationary sd of the day-to-day anomaly
    phi: float  # AR(1) coefficient
    rain_p_dry: float  # rain chance in the dry season
    rain_p_wet: float  # rain chance in the wet season
    wet_peak_doy: int
    rain_mean_mm: float


CLIMATES: dict[str, Climate] = {
    "america": Climate("New York", 17.0, 12.5, 200, 8.5, 3.5, 0.7, 0.30, 0.34, 180, 8.0),
    "canada": Climate("Toronto", 12.5, 14.5, 200, 9.0, 3.8, 0.7, 0.32, 0.36, 180, 6.0),
    "mexico": Climate("Mexico City", 24.0, 3.0, 125, 13.0, 1.8, 0.6, 0.06, 0.65, 210, 7.0),
}
_LAGS = 40  # truncation of the AR(1) moving average (phi ** 40 is negligible)
MISSING_WEATHER_P = 0.02


@dataclass(frozen=True)
class DayWeather:
    day: date
    temp_max_c: float
    temp_min_c: float
    precip_mm: float

    def csv(self) -> str:
        return (
            "date,temp_max_c,temp_min_c,precip_mm\n"
            f"{self.day.isoformat()},{self.temp_max_c:.1f},{self.temp_min_c:.1f},{self.precip_mm:.1f}\n"
        )


class WeatherModel:
    def __init__(self, seed: int, region: str):
        self.seed = seed
        self.region = region
        self.ridx = REGION_KEYS.index(region)
        self.climate = CLIMATES[region]
        self._draws: dict[int, np.ndarray] = {}
        self._observed: dict[date, DayWeather] = {}
        self._kernel = self.climate.phi ** np.arange(_LAGS) * math.sqrt(1 - self.climate.phi**2)

    def _day_draws(self, ordinal: int) -> np.ndarray:
        draws = self._draws.get(ordinal)
        if draws is None:
            rng = np.random.default_rng([self.seed, self.ridx, 3, ordinal])
            draws = np.concatenate([rng.standard_normal(2), rng.random(3)])
            self._draws[ordinal] = draws
        return draws

    def observed(self, day: date) -> DayWeather:
        cached = self._observed.get(day)
        if cached is None:
            cached = self._observed[day] = self._compute(day)
        return cached

    def _compute(self, day: date) -> DayWeather:
        c = self.climate
        o = day.toordinal()
        eps = np.array([self._day_draws(o - k)[0] for k in range(_LAGS)])
        anomaly = float(self._kernel @ eps) * c.noise_sd
        own = self._day_draws(o)
        doy = day.timetuple().tm_yday
        seasonal = c.tmax_mean + c.tmax_amplitude * math.cos(2 * math.pi * (doy - c.peak_doy) / 365.25)
        wet = 0.5 + 0.5 * math.cos(2 * math.pi * (doy - c.wet_peak_doy) / 365.25)
        rain_p = c.rain_p_dry + (c.rain_p_wet - c.rain_p_dry) * wet
        rains = own[2] < rain_p
        precip = -math.log(max(own[3], 1e-9)) * c.rain_mean_mm if rains else 0.0
        tmax = seasonal + anomaly - (1.5 if rains else 0.0)
        tmin = tmax - c.diurnal_range + 1.5 * float(own[1])
        return DayWeather(day, round(tmax, 1), round(min(tmin, tmax - 1.0), 1), round(precip, 1))

    def missing(self, day: date) -> bool:
        """The observed file of this day never arrives (the feed was late)."""
        return bool(self._day_draws(day.toordinal())[4] < MISSING_WEATHER_P)

    def forecast(self, day: date, issued: date) -> DayWeather:
        """The provider's forecast for `day`, issued on `issued`: the truth plus error growing with lead."""
        lead = max((day - issued).days, 1)
        truth = self.observed(day)
        rng = np.random.default_rng([self.seed, self.ridx, 4, day.toordinal(), lead])
        err_t, err_n, u = rng.standard_normal(), rng.standard_normal(), rng.random()
        tmax = truth.temp_max_c + 1.0 * lead * err_t
        tmin = truth.temp_min_c + 1.0 * lead * err_n
        precip = truth.precip_mm * (0.6 + 0.8 * u)
        return DayWeather(day, round(tmax, 1), round(min(tmin, tmax - 1.0), 1), round(precip, 1))


def climate_parameters() -> dict:
    return {k: asdict(c) for k, c in CLIMATES.items()} | {
        "ar1_truncation_lags": _LAGS,
        "missing_weather_probability": MISSING_WEATHER_P,
        "forecast_error_sd_per_day_of_lead_c": 1.0,
    }


def days(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]

"""Landed weather files: one row per region and day, validated like sales rows."""

from __future__ import annotations

import math

import pandas as pd

from globolatte_dagster.lib.contract import WEATHER_COLUMNS
from globolatte_dagster.lib.csv_files import FileRejected, LandedFile, decode_csv
from globolatte_dagster.lib.schema import WEATHER

# Plausible bounds of a city's daily weather: outside them a value is a unit or data-entry error.
TEMP_RANGE_C = (-60.0, 60.0)


def parse_weather(lf: LandedFile) -> pd.DataFrame:
    """One region-day of weather. Raises FileRejected (naming the file and the reason) when it is unusable:
    unparseable, another day, or a value that is not a finite number within plausible bounds."""
    header, rows, lines = decode_csv(lf.path, lf.data, WEATHER_COLUMNS)
    if not rows:
        raise FileRejected(lf.path, "no weather row")
    rec = {h: (v.strip() if isinstance(v, str) else v) for h, v in zip(header, rows[0], strict=False)}
    if rec.get("date", "") != lf.day.isoformat():
        raise FileRejected(lf.path, f"date '{rec.get('date')}' does not match the file name day {lf.day}")
    values = {c: _weather_value(lf.path, lines[0], c, rec.get(c, "")) for c in WEATHER_COLUMNS[1:]}
    tmax, tmin = values["temp_max_c"], values["temp_min_c"]
    if tmax is not None and tmin is not None and tmin > tmax:
        raise FileRejected(lf.path, f"line {lines[0]}: temp_min_c {tmin} is above temp_max_c {tmax}")
    return pd.DataFrame(
        [{"region": lf.region, "day": pd.Timestamp(lf.day), **values, "source_file": lf.path}],
        columns=WEATHER.column_names,
    )


def _weather_value(path: str, line: int, column: str, text: str) -> float | None:
    if text == "":
        return None  # not measured: the consumers treat it as unknown
    try:
        value = float(text)
    except ValueError as exc:
        raise FileRejected(path, f"line {line}: {column} '{text}' is not a number") from exc
    if not math.isfinite(value):
        raise FileRejected(path, f"line {line}: {column} '{text}' is not a finite number")
    if column == "precip_mm" and value < 0:
        raise FileRejected(path, f"line {line}: precip_mm {value} is negative")
    low, high = TEMP_RANGE_C
    if column != "precip_mm" and not low <= value <= high:
        raise FileRejected(path, f"line {line}: {column} {value} is outside {low:g}..{high:g} °C")
    return value

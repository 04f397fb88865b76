"""Data quality of a landed day: rejected, unknown-product, null and out-of-range shares, guests, weather.

Shares are of the day's sales rows as they arrived (loaded plus rejected). A metric alerts above its
threshold; `weather_missing` is 1 when no usable weather row landed for the day (features then fall back to
the recent average, DESIGN.md), so it alerts at any value above 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class QualityThresholds:
    reject_share: float = 0.01  # the ingestion check warns above 1% too
    unknown_product_share: float = 0.0  # any: the products snapshot lags the sales
    null_share: float = 0.01  # required values missing
    out_of_range_share: float = 0.01  # bad quantity, price or timestamp, or a timestamp off the day
    guest_share: float = 0.5  # sales without a loyalty id: a till that stopped reading cards
    weather_missing: float = 0.0


METRICS: tuple[str, ...] = tuple(QualityThresholds.__dataclass_fields__)


def quality_rows(counts: pd.DataFrame, thresholds: QualityThresholds | None = None) -> pd.DataFrame:
    """(day, metric, value, threshold, alert) from `sources.quality_counts`."""
    limits = asdict(thresholds or QualityThresholds())
    rows = []
    for c in counts.itertuples(index=False):
        arrived = c.rows_loaded + c.rejected
        share = lambda n, arrived=arrived: n / arrived if arrived else 0.0  # noqa: E731
        values = {
            "reject_share": share(c.rejected),
            "unknown_product_share": share(c.unknown_product),
            "null_share": share(c.missing_value),
            "out_of_range_share": share(c.out_of_range),
            "guest_share": c.guests / c.rows_loaded if c.rows_loaded else 0.0,
            "weather_missing": 0.0 if c.weather_rows > 0 else 1.0,
        }
        for metric in METRICS:
            value, limit = float(values[metric]), float(limits[metric])
            rows.append(
                {"day": c.day, "metric": metric, "value": value, "threshold": limit, "alert": value > limit}
            )
    return pd.DataFrame(rows, columns=["day", "metric", "value", "threshold", "alert"])

"""The one partitions module: region × day for the raw layer, region for features and models.

The first day of the day dimension comes from configuration (`GLOBOLATTE_FIRST_DAY`, through
`settings.first_day()`), read when the definitions load: `region_day_partitions()` builds it.
"""

from functools import cache

import dagster as dg

from globolatte_dagster import settings
from globolatte_dagster.lib.contract import REGION_KEYS

# The day dimension runs a week past today: forecasts land for days that have no sales yet.
END_OFFSET_DAYS = 7

region_partitions = dg.StaticPartitionsDefinition(list(REGION_KEYS))


@cache
def _region_day(first_day: str) -> dg.MultiPartitionsDefinition:
    days = dg.DailyPartitionsDefinition(start_date=first_day, end_offset=END_OFFSET_DAYS)
    return dg.MultiPartitionsDefinition({"region": region_partitions, "day": days})


def region_day_partitions(first_day: str | None = None) -> dg.MultiPartitionsDefinition:
    """Region × day from `first_day` (default: GLOBOLATTE_FIRST_DAY) to a week past today."""
    return _region_day(first_day or settings.first_day())


# The layout with the default first day, for specs in tests and scripts: it reads no environment. The code
# location's raw assets use `region_day_partitions()` (see defs/ingestion/assets.py).
region_day = _region_day(settings.DEFAULT_FIRST_DAY)

# region × day upstream feeds one region downstream: every landed day of that region.
region_of_region_day = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="region")


def region_day_key(region: str, day: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"region": region, "day": day})


# A run over several days of one region: Dagster's own range tags (what a single-run backfill sets).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def region_days_tags(region: str, first_day: str, last_day: str) -> dict[str, str]:
    """Run tags for the days first_day..last_day of one region (a range never spans regions)."""
    return {
        RANGE_START_TAG: str(region_day_key(region, first_day)),
        RANGE_END_TAG: str(region_day_key(region, last_day)),
    }

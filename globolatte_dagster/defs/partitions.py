"""The one partitions module: region × day for the raw layer, region for features and models."""

import dagster as dg

from globolatte_dagster.lib.contract import REGION_KEYS

# Independent exports may go back years; the UI shows days from here on.
FIRST_DAY = "2023-01-01"

region_partitions = dg.StaticPartitionsDefinition(list(REGION_KEYS))
day_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, end_offset=7)
region_day = dg.MultiPartitionsDefinition({"region": region_partitions, "day": day_partitions})

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

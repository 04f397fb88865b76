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

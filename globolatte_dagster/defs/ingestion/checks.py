"""Checks on the raw layer, returned with each materialisation so that they show on the asset page."""

import dagster as dg
import pandas as pd

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.lib.ingest import SalesBatch

REJECT_WARN_SHARE = 0.01
REJECT_ERROR_SHARE = 0.10

SALES_CHECKS = [
    dg.AssetCheckSpec(
        "has_rows",
        asset=asset_keys.SALES,
        description="Every partition of the run has a landed file and loaded at least one row (a warning).",
    ),
    dg.AssetCheckSpec(
        "unique_transaction_product",
        asset=asset_keys.SALES,
        description="(transaction_id, product_id) is unique within each region and day.",
    ),
    dg.AssetCheckSpec(
        "timestamps_on_day",
        asset=asset_keys.SALES,
        description="Every transaction_date lies on its partition's day.",
    ),
    dg.AssetCheckSpec(
        "rejected_share",
        asset=asset_keys.SALES,
        description="Rejected rows stay under 1% (warning) and 10% (error) of the rows read.",
    ),
    dg.AssetCheckSpec(
        "products_known", asset=asset_keys.SALES, description="Every loaded product_id is in core/products."
    ),
]


WEATHER_CHECKS = [
    dg.AssetCheckSpec(
        "values_valid",
        asset=asset_keys.WEATHER,
        description="Every landed weather file parses, is for its day and holds finite values within bounds.",
    )
]


def weather_check_result(unusable: list[str]) -> dg.AssetCheckResult:
    """A warning naming each unusable weather file and why: that day counts as having no weather."""
    return dg.AssetCheckResult(
        check_name="values_valid",
        asset_key=asset_keys.WEATHER,
        passed=not unusable,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"files_rejected": len(unusable), "reasons": dg.MetadataValue.md(_bullets(unusable))},
    )


def _bullets(lines: list[str], limit: int = 100) -> str:
    if not lines:
        return "none"
    more = [f"- … and {len(lines) - limit} more"] if len(lines) > limit else []
    return "\n".join([f"- {line}" for line in lines[:limit]] + more)


def sales_check_results(
    batch: SalesBatch,
    partitions: list[tuple[str, str]],
    products: pd.Series,
    with_files: set[tuple[str, str]] | None = None,
) -> list[dg.AssetCheckResult]:
    stats = batch.stats(products)
    with_files = with_files if with_files is not None else set(partitions)
    no_file = [f"{r}|{d}" for r, d in partitions if (r, d) not in with_files]
    empty = [
        f"{r}|{d}"
        for r, d in partitions
        if (r, d) in with_files and stats["per_partition"].get((r, d), 0) == 0
    ]
    read = stats["rows_valid"] + stats["rows_rejected"]
    share = stats["rows_rejected"] / read if read else 0.0
    if share > REJECT_ERROR_SHARE:
        share_result = (False, dg.AssetCheckSeverity.ERROR)
    elif share > REJECT_WARN_SHARE:
        share_result = (False, dg.AssetCheckSeverity.WARN)
    else:
        share_result = (True, dg.AssetCheckSeverity.WARN)
    return [
        dg.AssetCheckResult(
            check_name="has_rows",
            passed=not empty and not no_file,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "partitions": len(partitions),
                "empty_partitions": ", ".join(empty[:50]) or "none",
                "partitions_without_files": ", ".join(no_file[:50]) or "none",
            },
        ),
        dg.AssetCheckResult(
            check_name="unique_transaction_product",
            passed=stats["duplicates"] == 0,
            metadata={"duplicates": stats["duplicates"]},
        ),
        dg.AssetCheckResult(
            check_name="timestamps_on_day",
            passed=stats["off_day"] == 0,
            metadata={"off_day_rows": stats["off_day"]},
        ),
        dg.AssetCheckResult(
            check_name="rejected_share",
            passed=share_result[0],
            severity=share_result[1],
            metadata={
                "rejected_share": round(share, 5),
                "rows_read": read,
                "rows_rejected": stats["rows_rejected"],
            },
        ),
        dg.AssetCheckResult(
            check_name="products_known",
            passed=stats["unknown_products"] == 0,
            metadata={"unknown_product_rows": stats["unknown_products"]},
        ),
    ]

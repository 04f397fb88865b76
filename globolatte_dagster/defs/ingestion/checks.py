"""Checks on the raw layer, returned with each materialisation so that they show on the asset page."""

import dagster as dg
import pandas as pd

from globolatte_dagster.lib.ingest import SalesBatch

SALES_KEY = dg.AssetKey(["raw", "sales"])
REJECT_WARN_SHARE = 0.01
REJECT_ERROR_SHARE = 0.10

SALES_CHECKS = [
    dg.AssetCheckSpec(
        "has_rows", asset=SALES_KEY, description="Every partition of the run loaded at least one row."
    ),
    dg.AssetCheckSpec(
        "unique_transaction_product",
        asset=SALES_KEY,
        description="(transaction_id, product_id) is unique within each region and day.",
    ),
    dg.AssetCheckSpec(
        "timestamps_on_day",
        asset=SALES_KEY,
        description="Every transaction_date lies on its partition's day.",
    ),
    dg.AssetCheckSpec(
        "rejected_share",
        asset=SALES_KEY,
        description="Rejected rows stay under 1% (warning) and 10% (error) of the rows read.",
    ),
    dg.AssetCheckSpec(
        "products_known", asset=SALES_KEY, description="Every loaded product_id is in core/products."
    ),
]


def sales_check_results(
    batch: SalesBatch, partitions: list[tuple[str, str]], products: pd.Series
) -> list[dg.AssetCheckResult]:
    stats = batch.stats(products)
    empty = [f"{r}|{d}" for r, d in partitions if stats["per_partition"].get((r, d), 0) == 0]
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
            passed=not empty,
            metadata={"partitions": len(partitions), "empty_partitions": ", ".join(empty[:50]) or "none"},
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

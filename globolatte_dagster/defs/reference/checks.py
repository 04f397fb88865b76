"""Checks on the reference snapshots: every row fits the header and the contract, or is listed here."""

import dagster as dg

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.lib.reference import ReferenceLoad

ROWS_WELL_FORMED = "rows_well_formed"
_DESCRIPTION = (
    "Every row of the snapshot fits its header and the contract; rejected rows are listed with file, "
    "line and reason (never shifted to fit)."
)
PRODUCTS_CHECKS = [dg.AssetCheckSpec(ROWS_WELL_FORMED, asset=asset_keys.PRODUCTS, description=_DESCRIPTION)]
CUSTOMERS_CHECKS = [dg.AssetCheckSpec(ROWS_WELL_FORMED, asset=asset_keys.CUSTOMERS, description=_DESCRIPTION)]
_LISTED = 200


def rows_well_formed(key: dg.AssetKey, load: ReferenceLoad) -> dg.AssetCheckResult:
    """A warning listing the rejected rows (file, line, reason: no values, they may be personal data)."""
    lines = ["| file | line | reason |", "|---|---:|---|"]
    lines += [f"| {r.file} | {r.line} | {r.reason} |" for r in load.rejects[:_LISTED]]
    if len(load.rejects) > _LISTED:
        lines.append(f"| … and {len(load.rejects) - _LISTED} more | | |")
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=ROWS_WELL_FORMED,
        passed=not load.rejects,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rows_read": load.rows_read,
            "rows_rejected": len(load.rejects),
            "rejected_by_reason": dg.MetadataValue.json(load.rejected_by_reason()),
            "rejected_rows": dg.MetadataValue.md("\n".join(lines) if load.rejects else "none"),
        },
    )

"""Where a registered model came from: data, code version, parameters and the Dagster run."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from globolatte_dagster.lib.json_io import to_jsonable


def code_version(start: Path | None = None) -> dict[str, str]:
    """`{"git_sha": ...}` read from the enclosing repository's .git (no git process), else the package version."""
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        git = folder / ".git"
        if git.is_dir():
            sha = _git_head(git)
            if sha:
                return {"git_sha": sha}
            break
    try:
        return {"package_version": importlib_metadata.version("globolatte-dagster")}
    except importlib_metadata.PackageNotFoundError:
        return {"package_version": "unknown"}


def _git_head(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head or None
    ref = head[len("ref: ") :]
    loose = git / ref
    if loose.exists():
        return loose.read_text().strip() or None
    packed = git / "packed-refs"
    if packed.exists():
        for line in packed.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None  # a fresh repository without commits


# ----------------------------------------------------------------------------------------------- lineage
def day_range(model: Any) -> tuple[str | None, str | None]:
    """The first and last sales day a model's training window covers (ISO dates), None where unknown."""
    as_of = getattr(model, "as_of", None)
    last_day = as_of.isoformat() if isinstance(as_of, date) else None
    lookback = (getattr(model, "params", {}) or {}).get("lookback_days")
    first_day = None
    if last_day and isinstance(lookback, int):
        first_day = (date.fromisoformat(last_day) - timedelta(days=lookback)).isoformat()
    return first_day, last_day


def lineage_record(
    model: Any,
    *,
    run_id: str,
    upstream: dict[str, Any] | None = None,
    data_rows: dict[str, Any] | None = None,
    partitions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Where a model came from: data (partitions, day range, row counts), code version, parameters, run.

    `partitions`: the upstream assets' partitions the model was built from, `{asset key: partition}`, as
    the caller (which knows the asset keys and Dagster's partition spelling) names them.
    """
    metrics = dict(getattr(model, "metrics", {}) or {})
    params = dict(getattr(model, "params", {}) or {})
    region = getattr(model, "region", None)
    first_day, last_day = day_range(model)
    return to_jsonable(
        {
            "region": region,
            "data": {
                "partitions": dict(partitions or {}),
                "day_range": [first_day, last_day],
                "train_days": metrics.get("train_days"),
                "holdout_days": metrics.get("holdout_days"),
                "rows": {
                    k: metrics[k]
                    for k in (
                        "holdout_customer_days",
                        "discover_customer_days",
                        "customers",
                        "products",
                        "sales_days",
                    )
                    if k in metrics
                }
                | dict(data_rows or {}),
            },
            "candidates": {
                name: {"kind": d.get("kind"), "params": d.get("params")}
                for name, d in (metrics.get("candidates") or {}).items()
            },
            "champion": metrics.get("champion"),
            "discover_champion": metrics.get("discover_champion"),
            "code": code_version(),
            "params": params,
            "dagster": {"run_id": run_id, **dict(upstream or {})},
            "trained_at": getattr(model, "trained_at", None),
            "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )

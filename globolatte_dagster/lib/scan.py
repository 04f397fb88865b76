"""What the landing sensors have seen: a JSON cursor, and which partitions changed since.

The sales scan lists day folders per region (one shallow listing), then lists files only in days that are
new or still open. A day closes `settle_days` after the newest day of its region; a closed day is never
listed again (corrections to it go through a backfill). A late day (a new folder older than the window) is
still noticed, because its folder is new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Protocol

from globolatte_dagster.lib import contract


class Listed(Protocol):
    path: str
    fingerprint: str


@dataclass
class PartitionChange:
    region: str
    day: str
    files: list[tuple[str, str]]  # (path, fingerprint)

    @property
    def run_key(self) -> str:
        digest = hashlib.sha256("\n".join(f"{p}={f}" for p, f in self.files).encode()).hexdigest()[:20]
        return f"{self.region}|{self.day}|{digest}"


@dataclass
class ScanResult:
    changes: list[PartitionChange]
    skipped: list[str]  # "path: reason", new ones only
    cursor: dict
    listed_objects: int = 0
    listing_calls: int = 0
    day_range: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)


def empty_cursor() -> dict:
    return {"version": 1, "settled": {}, "open": {}, "stray": []}


def scan_sales(
    list_files: Callable[[str], Sequence[Listed]],
    list_dirs: Callable[[str], Sequence[str]],
    cursor: dict | None,
    settle_days: int = 3,
    first_day: date | None = None,
    last_day: date | None = None,
) -> ScanResult:
    """Compare the landing zone's sales folders with the cursor; return the partitions that changed."""
    cur = empty_cursor() if not cursor else {**empty_cursor(), **cursor}
    settled: dict[str, list[str]] = {r: list(v) for r, v in cur["settled"].items()}
    open_days: dict[str, dict[str, str]] = {r: dict(v) for r, v in cur["open"].items()}
    stray_seen = set(cur["stray"])
    result = ScanResult([], [], {}, 0, 0)

    def stray(path: str, reason: str) -> None:
        if path not in stray_seen:
            stray_seen.add(path)
            result.skipped.append(f"{path}: {reason}")

    result.listing_calls += 1
    for prefix in list_dirs(f"{contract.SALES_PREFIX}/"):
        region = prefix.rstrip("/").split("/")[-1]
        if region not in contract.REGIONS:
            stray(prefix, f"unknown region '{region}' (known: {', '.join(contract.REGION_KEYS)})")

    for region in contract.REGION_KEYS:
        result.listing_calls += 1
        dirs = list_dirs(contract.sales_prefix(region))
        result.listed_objects += len(dirs)
        region_settled = set(settled.get(region, []))
        region_open = open_days.get(region, {})
        days: list[str] = []
        for prefix in dirs:
            name = prefix.rstrip("/").split("/")[-1]
            try:
                day = contract.parse_day(name)
            except contract.ContractError as exc:
                stray(prefix, str(exc))
                continue
            if (first_day and day < first_day) or (last_day and day > last_day):
                stray(prefix, f"day {name} is outside the partitions ({first_day} to {last_day})")
                continue
            days.append(name)
        if not days:
            continue
        newest = max([*days, *region_open.keys()])
        horizon = (date.fromisoformat(newest) - timedelta(days=settle_days)).isoformat()
        for day in sorted(days):
            if day in region_settled:
                continue
            result.listing_calls += 1
            objects = list_files(contract.sales_prefix(region, day))
            result.listed_objects += len(objects)
            files = []
            for obj in objects:
                try:
                    parsed = contract.parse_landing_path(obj.path)
                except contract.ContractError as exc:
                    stray(obj.path, str(exc))
                    continue
                if parsed.kind == "sales":
                    files.append((obj.path, obj.fingerprint))
            files.sort()
            if files:
                change = PartitionChange(region, day, files)
                if region_open.get(day) != change.run_key:
                    result.changes.append(change)
                region_open[day] = change.run_key
            if day < horizon and day in region_open:
                region_settled.add(day)
                del region_open[day]
        settled[region] = sorted(region_settled)
        open_days[region] = region_open
    result.cursor = {"version": 1, "settled": settled, "open": open_days, "stray": sorted(stray_seen)[-1000:]}
    return result

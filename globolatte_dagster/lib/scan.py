"""What the landing sensors have seen: a JSON cursor, and which partitions changed since.

The sales scan lists day folders per region, then lists files only in days that are new or still open. A
day closes `settle_days` after the newest day of its region; a closed day is never listed again
(corrections to it go through a backfill).

So that a tick costs the same with a week or with years of history, an ordinary tick lists day folders
only under the month prefixes where new days can appear (`sales/<region>/2026-11`): the months of the
region's open days, of its newest day and the month after, and of today and yesterday. A full pass over
every day folder runs on the first tick and then every `full_pass_seconds` (default one hour): it notices
a late day (a new folder in an older month), which an ordinary tick does not look at. A region with no
known day yet is always listed in full (its first upload may be history from any month).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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
    full_pass: bool = False  # every day folder listed, not only the recent months


FULL_PASS_SECONDS = 3600


def empty_cursor() -> dict:
    return {"version": 1, "settled": {}, "open": {}, "stray": [], "full_pass_at": None}


def _months(days: Sequence[date]) -> set[str]:
    return {d.strftime("%Y-%m") for d in days}


def window_months(open_days: Sequence[str], newest: str | None, today: date) -> list[str]:
    """The months (YYYY-MM) where an ordinary tick looks for day folders."""
    days = [date.fromisoformat(d) for d in open_days]
    days += [today, today - timedelta(days=1)]
    if newest:
        last = date.fromisoformat(newest)
        days += [last, (last.replace(day=1) + timedelta(days=32)).replace(day=1)]
    return sorted(_months(days))


def scan_sales(
    list_files: Callable[[str], Sequence[Listed]],
    list_dirs: Callable[[str], Sequence[str]],
    cursor: dict | None,
    settle_days: int = 3,
    first_day: date | None = None,
    last_day: date | None = None,
    now: datetime | None = None,
    full_pass_seconds: float = FULL_PASS_SECONDS,
) -> ScanResult:
    """Compare the landing zone's sales folders with the cursor; return the partitions that changed.

    `list_dirs(prefix)` returns the folders directly under the folder that `prefix` is in whose path starts
    with `prefix` (so `sales/america/2026-11` lists that month's day folders).
    """
    now = now or datetime.now(UTC)
    cur = empty_cursor() if not cursor else {**empty_cursor(), **cursor}
    settled: dict[str, list[str]] = {r: list(v) for r, v in cur["settled"].items()}
    open_days: dict[str, dict[str, str]] = {r: dict(v) for r, v in cur["open"].items()}
    stray_seen = set(cur["stray"])
    result = ScanResult([], [], {}, 0, 0)
    last_full = cur.get("full_pass_at")
    full = last_full is None or (now - datetime.fromisoformat(last_full)).total_seconds() >= full_pass_seconds
    result.full_pass = full

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
        region_settled = set(settled.get(region, []))
        region_open = open_days.get(region, {})
        if full or not (region_settled or region_open):  # a region's first days can be in any month
            prefixes = [contract.sales_prefix(region)]
        else:
            newest = max([*region_settled, *region_open], default=None)
            months = window_months(list(region_open), newest, now.date())
            prefixes = [f"{contract.sales_prefix(region)}{m}" for m in months]
        dirs = []
        for prefix in prefixes:
            result.listing_calls += 1
            dirs += list_dirs(prefix)
        result.listed_objects += len(dirs)
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
    result.cursor = {
        "version": 1,
        "settled": settled,
        "open": open_days,
        "stray": sorted(stray_seen)[-1000:],
        "full_pass_at": now.isoformat() if full else last_full,
    }
    return result

"""What the landing sensors have seen (a JSON cursor), and which partitions to load now.

The decision for a day rests on the landed files and on Dagster's own status of its partition
(`materialized`, `failed`, `in_progress`, or `missing`), not on the cursor alone:
- a new day, or a day whose files changed (a new fingerprint), is requested;
- a day that was requested but is not loaded (its run failed, was killed, or never started) is requested
  again with a new run key: at once when another day of its region changed this tick (a fixed file
  re-runs the whole failed range), otherwise after a back-off (1, 2, 4 ... 60 minutes);
- a day closes `settle_days` after the newest day of its region that has files (never a future day),
  and only once it is loaded; a closed day is listed again by the full pass (hourly), which notices a
  changed file and reopens the day;
- an empty folder is not a day; a file still being written (its fingerprint changed between two
  listings, or it was modified within `quiet_seconds`) waits for the next tick.

So that a tick costs the same with a week or with years of history, an ordinary tick lists day folders
only under the month prefixes where new days can appear (`sales/<region>/2026-11`): the months of the
region's open days, of its newest day and the month after, and of today and yesterday. The full pass
lists every file of a region in one recursive listing. A region with no known day yet is always listed
in full (its first upload may be history from any month).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from globolatte_dagster.lib import contract


class Listed(Protocol):
    path: str
    fingerprint: str


# (region, days) -> {day: "materialized" | "failed" | "in_progress" | "missing"}
StatusFn = Callable[[str, list[str]], dict[str, str]]
LOADED, FAILED, IN_PROGRESS, MISSING = "materialized", "failed", "in_progress", "missing"


def _digest(files: Sequence[tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(f"{p}={f}" for p, f in files).encode()).hexdigest()[:20]


@dataclass
class PartitionChange:
    region: str
    day: str
    files: list[tuple[str, str]]  # (path, fingerprint)
    reason: str = "new"  # new | changed | retry
    attempt: int = 0  # requests made before this one for the same files (a retry's run key differs)
    alone: bool = False  # run it on its own, not in a range with its neighbours (a retried range failed)

    @property
    def digest(self) -> str:
        return _digest(self.files)

    @property
    def run_key(self) -> str:
        return f"{self.region}|{self.day}|{self.digest}" + (f"~{self.attempt}" if self.attempt else "")


@dataclass
class ScanResult:
    changes: list[PartitionChange]
    skipped: list[str]  # "path: reason", new ones only
    cursor: dict
    listed_objects: int = 0
    listing_calls: int = 0
    notes: list[str] = field(default_factory=list)  # what waits and why (files being written, ...)
    errors: list[str] = field(default_factory=list)  # listings that failed; other regions went on
    full_pass: bool = False  # every file listed, not only the recent months
    idle_regions: list[str] = field(default_factory=list)  # no sales day landed yet


# An ordinary tick lists only recent months; a full pass over every file (which finds a late day in an
# older month, or a changed file in a closed day) runs on the first tick and then at most this often.
FULL_PASS_SECONDS = 3600
CURSOR_VERSION = 2


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off between requests of a day that is still not loaded: first, first * 2, ... up to `cap`."""

    first_seconds: float = 60.0
    cap_seconds: float = 3600.0

    def due(self, attempts: int, since_seconds: float) -> bool:
        wait = min(self.first_seconds * 2 ** max(attempts - 1, 0), self.cap_seconds)
        return since_seconds >= wait


def empty_cursor() -> dict:
    return {
        "version": CURSOR_VERSION,
        "settled": {},  # region -> {day: digest}  (None: closed by an older cursor, adopted when listed)
        "open": {},  # region -> {day: [digest, last request (epoch s), requests]}
        "pending": {},  # path -> fingerprint of a file seen while it was being written
        "stray": [],
        "full_pass_at": None,
    }


def parse_cursor(text: str | None) -> tuple[dict, str | None]:
    """The cursor of the previous tick, upgraded to this version; a corrupt one is replaced by an empty
    cursor and a warning (every day is then decided from the landing zone and the partition status)."""
    if not text:
        return empty_cursor(), None
    try:
        raw = json.loads(text)
        return upgrade_cursor(raw), None
    except Exception as exc:
        return (
            empty_cursor(),
            f"the sensor cursor could not be read ({type(exc).__name__}: {exc}); starting afresh",
        )


def upgrade_cursor(raw: Any) -> dict:
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    cur = empty_cursor()
    if raw.get("version") == 1:  # settled: {region: [days]}, open: {region: {day: run_key}}
        cur["settled"] = {r: dict.fromkeys(days) for r, days in raw.get("settled", {}).items()}
        cur["open"] = {
            r: {d: [str(k).rsplit("|", 1)[-1], 0.0, 1] for d, k in days.items()}
            for r, days in raw.get("open", {}).items()
        }
        cur["stray"] = list(raw.get("stray", []))
        cur["full_pass_at"] = raw.get("full_pass_at")
        return cur
    if raw.get("version") != CURSOR_VERSION:
        raise ValueError(f"unknown cursor version {raw.get('version')!r}")
    cur.update(raw)
    for region, days in cur["open"].items():
        for day, entry in days.items():
            if not (isinstance(entry, list) and len(entry) == 3):
                raise ValueError(f"open day {region}/{day} is malformed")
    if cur["full_pass_at"] is not None:
        datetime.fromisoformat(cur["full_pass_at"])
    return cur


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


@dataclass
class RegionState:
    """One region's part of a scan."""

    key: str
    settled: dict[str, str | None]
    open: dict[str, list]
    listed: dict[str, list] = field(default_factory=dict)  # day -> landed objects (contract sales files)


def scan_sales(
    list_files: Callable[[str], Sequence[Listed]],
    list_dirs: Callable[[str], Sequence[str]],
    cursor: dict | None,
    settle_days: int = 3,
    first_day: date | None = None,
    last_day: date | None = None,
    now: datetime | None = None,
    full_pass_seconds: float = FULL_PASS_SECONDS,
    status: StatusFn | None = None,
    quiet_seconds: float = 0.0,
    retry: RetryPolicy = RetryPolicy(),
) -> ScanResult:
    """Compare the landing zone's sales folders with the cursor and the partitions' status.

    `list_dirs(prefix)` returns the folders directly under the folder that `prefix` is in whose path starts
    with `prefix` (so `sales/america/2026-11` lists that month's day folders). Without `status` every
    requested day counts as loaded (the listing alone decides).
    """
    now = now or datetime.now(UTC)
    cur = empty_cursor() if not cursor else upgrade_cursor(cursor)
    stray_seen = set(cur["stray"])
    pending_before: dict[str, str] = dict(cur["pending"])
    pending: dict[str, str] = {}
    result = ScanResult([], [], {}, 0, 0)
    last_full = cur.get("full_pass_at")
    full = last_full is None or (now - datetime.fromisoformat(last_full)).total_seconds() >= full_pass_seconds
    result.full_pass = full

    def stray(path: str, reason: str) -> None:
        if path not in stray_seen:
            stray_seen.add(path)
            result.skipped.append(f"{path}: {reason}")

    def stable(obj: Listed) -> bool:
        modified = getattr(obj, "modified", None)
        if modified is None or quiet_seconds <= 0 or now.timestamp() - modified >= quiet_seconds:
            return True
        return pending_before.get(obj.path) == obj.fingerprint

    try:
        result.listing_calls += 1
        for prefix in list_dirs(f"{contract.SALES_PREFIX}/"):
            region = prefix.rstrip("/").split("/")[-1]
            if region not in contract.REGIONS:
                stray(prefix, f"unknown region '{region}' (known: {', '.join(contract.REGION_KEYS)})")
    except Exception as exc:
        result.errors.append(f"sales/: listing failed ({type(exc).__name__}: {exc})")

    settled_out, open_out = dict(cur["settled"]), dict(cur["open"])
    for key in contract.REGION_KEYS:
        reg = RegionState(
            key, dict(cur["settled"].get(key, {})), {d: list(e) for d, e in cur["open"].get(key, {}).items()}
        )
        try:
            _list_region(reg, list_files, list_dirs, full, now.date(), result, stray, first_day, last_day)
        except Exception as exc:  # an unreadable folder: this region waits, the others go on
            result.errors.append(f"sales/{key}/: listing failed ({type(exc).__name__}: {exc})")
            continue
        ready: dict[str, list[tuple[str, str]]] = {}
        for day, objects in sorted(reg.listed.items()):
            moving = [o for o in objects if not stable(o)]
            if moving:
                pending.update({o.path: o.fingerprint for o in moving})
                result.notes.append(
                    f"{key} {day}: {len(moving)} file(s) still being written ({moving[0].path}); next tick"
                )
                continue
            ready[day] = sorted((o.path, o.fingerprint) for o in objects)
        decide_region(reg, ready, status, now, settle_days, retry, result)
        if not (reg.settled or reg.open or reg.listed):
            result.idle_regions.append(key)
        settled_out[key], open_out[key] = reg.settled, reg.open
    result.cursor = {
        "version": CURSOR_VERSION,
        "settled": settled_out,
        "open": open_out,
        "pending": pending,
        "stray": sorted(stray_seen)[-1000:],
        "full_pass_at": now.isoformat() if full else last_full,
    }
    return result


def _list_region(
    reg: RegionState,
    list_files: Callable[[str], Sequence[Listed]],
    list_dirs: Callable[[str], Sequence[str]],
    full: bool,
    today: date,
    result: ScanResult,
    stray: Callable[[str, str], None],
    first_day: date | None,
    last_day: date | None,
) -> None:
    """Fill `reg.listed` with the contract files per day folder (days with no such file are left out)."""
    by_folder: dict[str, list[Listed]] = {}
    if full:  # every file of the region in one recursive listing
        result.listing_calls += 1
        objects = list_files(contract.sales_prefix(reg.key))
        result.listed_objects += len(objects)
        for obj in objects:
            parts = obj.path.split("/")
            if len(parts) < 4:
                stray(obj.path, "expected sales/<region>/<YYYY-MM-DD>/<name>.csv")
                continue
            by_folder.setdefault(parts[2], []).append(obj)
    else:
        if reg.settled or reg.open:
            newest = max([*reg.settled, *reg.open])
            months = window_months(list(reg.open), newest, today)
            prefixes = [f"{contract.sales_prefix(reg.key)}{m}" for m in months]
        else:  # a region's first days can be in any month
            prefixes = [contract.sales_prefix(reg.key)]
        folders: list[str] = []
        for prefix in prefixes:
            result.listing_calls += 1
            folders += list_dirs(prefix)
        result.listed_objects += len(folders)
        for prefix in folders:
            name = prefix.rstrip("/").split("/")[-1]
            if name in reg.settled or not _in_range(name, prefix, first_day, last_day, stray):
                continue
            result.listing_calls += 1
            try:
                objects = list_files(contract.sales_prefix(reg.key, name))
            except Exception as exc:
                result.errors.append(f"{prefix}: listing failed ({type(exc).__name__}: {exc})")
                continue
            result.listed_objects += len(objects)
            by_folder[name] = list(objects)
    for name, objects in by_folder.items():
        if not _in_range(name, contract.sales_prefix(reg.key, name), first_day, last_day, stray):
            continue
        files = []
        for obj in objects:
            try:
                parsed = contract.parse_landing_path(obj.path)
            except contract.ContractError as exc:
                stray(obj.path, str(exc))
                continue
            if parsed.kind == "sales":
                files.append(obj)
        if files:  # an empty folder (or one with stray files only) is not a day
            reg.listed[name] = files


def _in_range(
    name: str, folder: str, first_day: date | None, last_day: date | None, stray: Callable[[str, str], None]
) -> bool:
    """Whether a day folder's name is a day within the partitions; if not, it is reported (once)."""
    try:
        day = contract.parse_day(name)
    except contract.ContractError as exc:
        stray(folder, str(exc))
        return False
    if first_day and day < first_day:
        stray(folder, f"day {name} is before the first partition day {first_day} (GLOBOLATTE_FIRST_DAY)")
        return False
    if last_day and day > last_day:
        # not stray for good: the day enters the partitions as time passes, and is loaded then
        stray(folder, f"day {name} is after the last partition day {last_day}: loaded once it is in range")
        return False
    return True


def decide_region(
    reg: RegionState,
    ready: dict[str, list[tuple[str, str]]],
    status: StatusFn | None,
    now: datetime,
    settle_days: int,
    retry: RetryPolicy,
    result: ScanResult,
) -> None:
    """Request new, changed and unloaded days of one region; close the loaded old ones."""
    ts = now.timestamp()
    wanted = [d for d, files in ready.items() if reg.settled.get(d, "") != _digest(files)]
    statuses = status(reg.key, wanted) if status and wanted else {}
    changes: list[PartitionChange] = []
    unloaded: list[str] = []
    for day in wanted:
        files, digest, st = ready[day], _digest(ready[day]), statuses.get(day)
        entry = reg.open.get(day)
        if day in reg.settled:
            if reg.settled[day] is None:  # closed by an older cursor: adopt what is there
                reg.settled[day] = digest
                continue
            del reg.settled[day]  # a file changed in a closed day: reopen and reload it
            changes.append(PartitionChange(reg.key, day, files, "changed"))
        elif entry is None:
            if st in (LOADED, IN_PROGRESS):  # loaded or being loaded by someone else (a run, a backfill)
                reg.open[day] = [digest, ts, 0]
                continue
            changes.append(PartitionChange(reg.key, day, files, "new"))
        elif entry[0] != digest:
            changes.append(PartitionChange(reg.key, day, files, "changed"))
        elif st in (FAILED, MISSING):
            unloaded.append(day)
            continue
        else:
            continue
        reg.open[day] = [digest, ts, 1]
    region_changed = bool(changes)
    for day in unloaded:
        digest, last, attempts = reg.open[day]
        failed_now = region_changed and statuses.get(day) == FAILED
        if not (failed_now or retry.due(attempts, ts - last)):
            result.notes.append(f"{reg.key} {day}: not loaded ({statuses.get(day)}), retried later")
            continue
        alone = attempts >= 2 and not failed_now
        changes.append(PartitionChange(reg.key, day, ready[day], "retry", attempt=attempts, alone=alone))
        reg.open[day] = [digest, ts, attempts + 1]
    result.changes += sorted(changes, key=lambda c: c.day)
    # Close the loaded days well behind the newest landed day; a future-dated folder does not count.
    landed = [d for d in (*ready, *reg.open, *reg.settled) if d <= now.date().isoformat()]
    if not landed:
        return
    horizon = (date.fromisoformat(max(landed)) - timedelta(days=settle_days)).isoformat()
    for day in [d for d in reg.open if d < horizon and d in ready]:
        # without a status the listing alone decides (a requested day counts as loaded)
        if status is None or (statuses.get(day) == LOADED and day not in {c.day for c in changes}):
            reg.settled[day] = reg.open.pop(day)[0]

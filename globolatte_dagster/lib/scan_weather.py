"""The weather sensor's decisions: the same rules as the sales scan (see `lib.scan`), one file per day.

Every weather file of a region is listed each tick (one file per day, a short listing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from globolatte_dagster.lib import contract
from globolatte_dagster.lib.scan import (
    Listed,
    RegionState,
    RetryPolicy,
    ScanResult,
    StatusFn,
    decide_region,
    empty_cursor,
    upgrade_cursor,
)


def scan_weather(
    list_files: Callable[[str], Sequence[Listed]],
    cursor: dict | None,
    first_day: date | None = None,
    last_day: date | None = None,
    now: datetime | None = None,
    status: StatusFn | None = None,
    quiet_seconds: float = 0.0,
    retry: RetryPolicy = RetryPolicy(),
) -> ScanResult:
    """The same decisions for `weather/<region>/<day>.csv` (one file per day, listed in full each tick).

    A file dated past the last partition day is left for a later tick, when the day is in range.
    """
    now = now or datetime.now(UTC)
    cur = empty_cursor() if not cursor else upgrade_cursor(cursor)
    stray_seen = set(cur["stray"])
    result = ScanResult([], [], {}, 0, 0)
    pending: dict[str, str] = {}

    def stray(path: str, reason: str) -> None:
        if path not in stray_seen:
            stray_seen.add(path)
            result.skipped.append(f"{path}: {reason}")

    settled_out, open_out = dict(cur["settled"]), dict(cur["open"])
    for key in contract.REGION_KEYS:
        reg = RegionState(
            key, dict(cur["settled"].get(key, {})), {d: list(e) for d, e in cur["open"].get(key, {}).items()}
        )
        try:
            result.listing_calls += 1
            objects = list_files(contract.weather_prefix(key))
        except Exception as exc:
            result.errors.append(f"weather/{key}/: listing failed ({type(exc).__name__}: {exc})")
            continue
        result.listed_objects += len(objects)
        ready: dict[str, list[tuple[str, str]]] = {}
        for obj in objects:
            try:
                parsed = contract.parse_landing_path(obj.path)
            except contract.ContractError as exc:
                stray(obj.path, str(exc))
                continue
            day = parsed.day
            if first_day and day < first_day:
                stray(
                    obj.path,
                    f"day {day} is before the first partition day {first_day} (GLOBOLATTE_FIRST_DAY)",
                )
                continue
            if last_day and day > last_day:
                continue  # a forecast beyond the partitions: loaded once its day is in range
            modified = getattr(obj, "modified", None)
            young = modified is not None and quiet_seconds > 0 and now.timestamp() - modified < quiet_seconds
            if young and cur["pending"].get(obj.path) != obj.fingerprint:
                pending[obj.path] = obj.fingerprint
                continue
            ready[day.isoformat()] = [(obj.path, obj.fingerprint)]
        decide_region(reg, ready, status, now, 3, retry, result)
        settled_out[key], open_out[key] = reg.settled, reg.open
    result.cursor = {
        **empty_cursor(),
        "settled": settled_out,
        "open": open_out,
        "pending": pending,
        "stray": sorted(stray_seen)[-1000:],
    }
    return result

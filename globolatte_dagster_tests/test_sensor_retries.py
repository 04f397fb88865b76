"""The sales sensor against real runs: nothing landed is left unloaded, days close only once loaded.

Requests are executed as the daemon would run them (`dg.materialize` on the same instance), so the
sensor sees Dagster's own partition status: materialized, failed or missing.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from globolatte_dagster.defs.ingestion import sensors as sensors_module
from globolatte_dagster.defs.ingestion.assets import sales
from globolatte_dagster.defs.ingestion.sensors import sales_landing_sensor, weather_landing_sensor
from globolatte_dagster.defs.reference.assets import customers, products
from globolatte_dagster.resources.io_managers import _ConformingDuckDBArrowTypeHandler
from globolatte_dagster.resources.landing import LocalLandingZone
from globolatte_dagster_tests.conftest import CUSTOMERS_CSV, PRODUCTS_CSV, SAMPLE_EXPORT

SALES_OUTPUTS = [dg.AssetKey(["raw", "sales"]), dg.AssetKey(["raw", "sales_rejects"])]
HEADER = SAMPLE_EXPORT.splitlines()[0]
NOW = datetime(2025, 3, 20, 12, tzinfo=UTC)


def _sales(day: str, tid: str = "T001") -> bytes:
    return HEADER + f"\n{tid},BU_US,P001,C001,1,3.50,{day} 08:00:00,cash\n".encode()


class Clock:
    def __init__(self, monkeypatch, now: datetime = NOW):
        self.now = now
        monkeypatch.setattr(sensors_module, "_now", lambda: self.now)
        monkeypatch.setattr(sensors_module, "QUIET_SECONDS", 0.0)

    def advance(self, **kwargs) -> None:
        self.now += timedelta(**kwargs)


class Daemon:
    """The sales sensor ticking on an instance, and its requests run like the daemon would run them."""

    def __init__(self, landing, resources):
        self.landing, self.resources, self.cursor = landing, resources, None
        self.instance = dg.DagsterInstance.ephemeral()
        self.logs: list[str] = []
        landing.write_bytes("reference/products.csv", PRODUCTS_CSV)
        landing.write_bytes("reference/customers.csv", CUSTOMERS_CSV)
        assert dg.materialize([products, customers], resources=resources, instance=self.instance).success

    def tick(self, sensor=sales_landing_sensor) -> list[dg.RunRequest]:
        ctx = dg.build_sensor_context(
            cursor=self.cursor, resources={"landing": self.landing}, instance=self.instance
        )
        result = sensor(ctx)
        self.cursor = result.cursor
        return list(result.run_requests or [])

    def run(self, requests: list[dg.RunRequest]) -> list[bool]:
        outcomes = []
        for request in requests:
            kwargs = {"partition_key": str(request.partition_key)} if request.partition_key else {}
            result = dg.materialize(
                [sales, products],
                selection=SALES_OUTPUTS,
                resources=self.resources,
                instance=self.instance,
                tags=dict(request.tags),
                raise_on_error=False,
                **kwargs,
            )
            outcomes.append(result.success)
        return outcomes

    def loaded(self, region: str = "america") -> list[str]:
        keys = self.instance.get_materialized_partitions(dg.AssetKey(["raw", "sales"]))
        return sorted(k.split("|")[0] for k in keys if k.endswith(f"|{region}"))


def _days(requests: list[dg.RunRequest]) -> list[str]:
    out = []
    for r in requests:
        if r.partition_key:
            out.append(str(r.partition_key).split("|")[0])
        else:
            first = date.fromisoformat(r.tags[sensors_module.RANGE_START_TAG].split("|")[0])
            last = date.fromisoformat(r.tags[sensors_module.RANGE_END_TAG].split("|")[0])
            out += [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    return sorted(out)


def _rows_per_day(warehouse_path: str) -> dict[str, int]:
    with duckdb.connect(warehouse_path, read_only=True) as conn:
        rows = conn.execute("SELECT CAST(day AS VARCHAR), count(*) FROM raw.sales GROUP BY 1").fetchall()
    return dict(rows)


DAYS = ["2025-03-10", "2025-03-11", "2025-03-12", "2025-03-13"]


def test_a_ranged_run_failing_on_one_bad_file_loads_every_day_once_the_file_is_fixed(
    landing, resources, warehouse_path, monkeypatch
):
    clock, daemon = Clock(monkeypatch), Daemon(landing, resources)
    for day in DAYS:
        landing.write_bytes(f"sales/america/{day}/store.csv", _sales(day))
    landing.write_bytes("sales/america/2025-03-12/broken.csv", b"\x89PNG\x00\x00binary")

    first = daemon.tick()
    assert len(first) == 1 and _days(first) == DAYS  # one ranged run
    assert daemon.run(first) == [False]  # the bad file fails the whole range
    clock.advance(seconds=30)
    assert daemon.tick() == []  # nothing changed: the failed days wait for their back-off

    landing.write_bytes("sales/america/2025-03-12/broken.csv", _sales("2025-03-12", "T002"))
    clock.advance(seconds=30)
    again = daemon.tick()
    assert _days(again) == DAYS  # the fixed day, and the days its failed range held back
    assert all(r.run_key not in {f.run_key for f in first} for r in again)
    assert all(daemon.run(again))
    assert daemon.loaded() == DAYS
    assert _rows_per_day(warehouse_path) == {
        "2025-03-10": 1,
        "2025-03-11": 1,
        "2025-03-12": 2,
        "2025-03-13": 1,
    }
    clock.advance(seconds=30)
    assert daemon.tick() == []


def test_a_run_killed_midway_is_requested_again_after_a_back_off(landing, resources, monkeypatch):
    clock, daemon = Clock(monkeypatch), Daemon(landing, resources)
    for day in DAYS[:2]:
        landing.write_bytes(f"sales/america/{day}/store.csv", _sales(day))
    first = daemon.tick()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the run worker is interrupted while it writes

    with monkeypatch.context() as patch:
        patch.setattr(_ConformingDuckDBArrowTypeHandler, "handle_output", killed)
        assert daemon.run(first) == [False]
    assert daemon.loaded() == []

    clock.advance(seconds=30)
    assert daemon.tick() == []  # within the back-off
    clock.advance(minutes=1)
    retry = daemon.tick()
    assert _days(retry) == DAYS[:2] and "retry" in retry[0].tags[sensors_module.REASON_TAG]
    assert retry[0].run_key != first[0].run_key
    assert all(daemon.run(retry))
    assert daemon.loaded() == DAYS[:2]


def test_a_range_that_fails_again_is_retried_day_by_day(landing, resources, monkeypatch):
    """A bad file that nobody fixes does not hold back the other days of its range for ever."""
    clock, daemon = Clock(monkeypatch), Daemon(landing, resources)
    for day in DAYS:
        landing.write_bytes(f"sales/america/{day}/store.csv", _sales(day))
    landing.write_bytes("sales/america/2025-03-11/broken.csv", b"")
    assert daemon.run(daemon.tick()) == [False]
    clock.advance(minutes=1)
    assert daemon.run(daemon.tick()) == [False]  # first retry: the same range, fails again
    clock.advance(minutes=2)
    alone = daemon.tick()
    assert len(alone) == 4  # second retry: one run per day
    assert daemon.run(alone) == [True, False, True, True]
    assert daemon.loaded() == ["2025-03-10", "2025-03-12", "2025-03-13"]


def test_an_empty_folder_and_a_future_folder_close_no_day_that_has_not_loaded(
    tmp_path, resources, monkeypatch
):
    landing = LocalLandingZone(root=str(tmp_path / "landing"))
    resources = {**resources, "landing": landing}
    clock, daemon = Clock(monkeypatch), Daemon(landing, resources)
    landing.write_bytes("sales/america/2025-03-10/store.csv", _sales("2025-03-10"))
    landing.write_bytes("sales/america/2025-03-11/broken.csv", b"")  # this day fails
    assert daemon.run(daemon.tick()) == [False]

    # an empty folder far ahead, and a future-dated folder with a file (typo or early upload)
    (tmp_path / "landing/sales/america/2025-03-19").mkdir(parents=True)
    future = (clock.now.date() + timedelta(days=5)).isoformat()
    landing.write_bytes(f"sales/america/{future}/store.csv", _sales(future))
    clock.advance(seconds=30)
    requested = daemon.tick()
    # the empty folder is not a day; a change in the region retries its failed days at once
    assert _days(requested) == ["2025-03-10", "2025-03-11", future]
    daemon.run(requested)
    assert daemon.loaded() == [future]  # the retried range failed again on the broken file
    cursor = json.loads(daemon.cursor)
    assert {"2025-03-10", "2025-03-11"} <= set(cursor["open"]["america"])  # not closed while unloaded
    assert "2025-03-19" not in cursor["open"]["america"]
    clock.advance(seconds=30)
    daemon.tick()
    cursor = json.loads(daemon.cursor)
    assert "2025-03-11" in cursor["open"]["america"] and "2025-03-11" not in cursor["settled"]["america"]

    landing.write_bytes("sales/america/2025-03-11/broken.csv", _sales("2025-03-11", "T9"))
    clock.advance(seconds=30)
    assert all(daemon.run(daemon.tick()))
    assert daemon.loaded() == ["2025-03-10", "2025-03-11", future]


def test_a_changed_file_in_a_closed_day_is_reloaded_by_the_full_pass(
    landing, resources, warehouse_path, monkeypatch
):
    clock, daemon = Clock(monkeypatch), Daemon(landing, resources)
    landing.write_bytes("sales/america/2025-03-01/store.csv", _sales("2025-03-01"))
    assert all(daemon.run(daemon.tick()))
    landing.write_bytes("sales/america/2025-03-10/store.csv", _sales("2025-03-10"))
    clock.advance(seconds=30)
    assert all(daemon.run(daemon.tick()))
    clock.advance(seconds=30)
    assert daemon.tick() == []
    assert "2025-03-01" in json.loads(daemon.cursor)["settled"]["america"]  # closed: loaded and old

    landing.write_bytes(
        "sales/america/2025-03-01/store.csv",
        _sales("2025-03-01") + b"T2,BU_US,P002,C002,1,4.00,2025-03-01 09:00:00,cash\n",
    )
    clock.advance(seconds=30)
    assert daemon.tick() == []  # an ordinary tick does not list closed days
    clock.advance(hours=1)
    reload = daemon.tick()  # the hourly full pass
    assert _days(reload) == ["2025-03-01"] and reload[0].tags[sensors_module.REASON_TAG] == "changed"
    assert all(daemon.run(reload))
    assert _rows_per_day(warehouse_path)["2025-03-01"] == 2


def test_a_local_file_still_being_written_waits_until_two_listings_agree(tmp_path, resources, monkeypatch):
    landing = LocalLandingZone(root=str(tmp_path / "landing"))
    resources = {**resources, "landing": landing}
    clock, daemon = Clock(monkeypatch, datetime.now(UTC)), Daemon(landing, resources)
    monkeypatch.setattr(sensors_module, "QUIET_SECONDS", 10.0)
    path = tmp_path / "landing/sales/america/2025-03-10/store.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(_sales("2025-03-10"))  # a copy in progress: written in pieces
    assert daemon.tick() == []
    with path.open("ab") as f:
        f.write(b"T2,BU_US,P002,C002,1,4.00,2025-03-10 09:00:00,cash\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    clock.advance(seconds=1)
    assert daemon.tick() == []  # it changed since the last listing: still being written
    clock.advance(seconds=1)
    requested = daemon.tick()  # unchanged between two listings: complete
    assert _days(requested) == ["2025-03-10"]


def test_a_corrupt_cursor_is_reset_with_a_warning_and_loaded_days_are_not_reloaded(
    landing, resources, monkeypatch, capfd
):
    clock, daemon = Clock(monkeypatch), Daemon(landing, resources)
    landing.write_bytes("sales/america/2025-03-10/store.csv", _sales("2025-03-10"))
    assert all(daemon.run(daemon.tick()))
    landing.write_bytes("sales/america/2025-03-11/store.csv", _sales("2025-03-11"))
    daemon.cursor = '{"version": 2, "open": {"america": {"2025-03-10": "oops"}}'  # cut short
    clock.advance(seconds=30)
    requested = daemon.tick()
    assert _days(requested) == ["2025-03-11"]  # the loaded day is adopted, not reloaded
    err = capfd.readouterr().err
    assert "the sensor cursor could not be read (JSONDecodeError" in err and "starting afresh" in err
    assert all(daemon.run(requested))
    daemon.cursor = "[1, 2, 3]"  # valid JSON, not a cursor
    assert daemon.tick() == []  # both days are loaded: nothing to do


class _Unreadable(LocalLandingZone):
    """A landing folder where one region's folders cannot be read (permissions, a broken mount)."""

    def list(self, prefix: str = ""):
        if prefix.startswith("sales/canada"):
            raise PermissionError(13, "Permission denied", prefix)
        return super().list(prefix)

    def list_dirs(self, prefix: str):
        if prefix.startswith("sales/canada"):
            raise PermissionError(13, "Permission denied", prefix)
        return super().list_dirs(prefix)


def test_one_unreadable_folder_does_not_stop_the_other_regions(tmp_path, resources, monkeypatch, capfd):
    landing = _Unreadable(root=str(tmp_path / "landing"))
    Clock(monkeypatch)
    daemon = Daemon(landing, {**resources, "landing": landing})
    landing.write_bytes("sales/america/2025-03-10/store.csv", _sales("2025-03-10"))
    landing.write_bytes("sales/mexico/2025-03-10/store.csv", _sales("2025-03-10").replace(b"BU_US", b"BU_MX"))
    landing.write_bytes("sales/canada/2025-03-10/store.csv", _sales("2025-03-10").replace(b"BU_US", b"BU_CA"))
    requests = daemon.tick()
    assert sorted(str(r.partition_key) for r in requests) == ["2025-03-10|america", "2025-03-10|mexico"]
    assert "sales/canada/: listing failed (PermissionError" in capfd.readouterr().err


def test_a_day_before_the_first_partition_day_is_stray_and_the_rest_loads(
    landing, resources, monkeypatch, capfd
):
    monkeypatch.setenv("GLOBOLATTE_FIRST_DAY", "2020-01-01")
    Clock(monkeypatch)
    daemon = Daemon(landing, resources)
    landing.write_bytes("sales/america/2019-04-01/store.csv", _sales("2019-04-01"))
    landing.write_bytes("sales/america/2020-01-02/store.csv", _sales("2020-01-02"))
    assert _days(daemon.tick()) == ["2020-01-02"]
    assert (
        "sales/america/2019-04-01/: day 2019-04-01 is before the first partition day 2020-01-01"
        in capfd.readouterr().err
    )


def test_a_weather_file_past_the_horizon_is_picked_up_once_its_day_is_in_range(
    landing, resources, monkeypatch
):
    clock, daemon = Clock(monkeypatch), Daemon(landing, resources)
    horizon = [date(2025, 3, 27)]
    monkeypatch.setattr(sensors_module, "_last_partition_day", lambda: horizon[0])
    landing.write_bytes(
        "weather/america/2025-03-29.csv", b"date,temp_max_c,temp_min_c,precip_mm\n2025-03-29,20,10,0\n"
    )
    assert daemon.tick(weather_landing_sensor) == []
    horizon[0] = date(2025, 3, 29)
    clock.advance(days=2)
    requests = daemon.tick(weather_landing_sensor)
    assert [str(r.partition_key) for r in requests] == ["2025-03-29|america"]


@pytest.fixture(autouse=True)
def _first_day_default(monkeypatch):
    monkeypatch.delenv("GLOBOLATTE_FIRST_DAY", raising=False)


def test_cursor_of_the_previous_version_is_upgraded(landing, resources, monkeypatch):
    Clock(monkeypatch)
    daemon = Daemon(landing, resources)
    landing.write_bytes("sales/america/2025-03-10/store.csv", _sales("2025-03-10"))
    daemon.cursor = json.dumps(
        {"version": 1, "settled": {"america": ["2025-03-01"]}, "open": {}, "stray": [], "full_pass_at": None}
    )
    assert _days(daemon.tick()) == ["2025-03-10"]
    assert Path(landing.root if hasattr(landing, "root") else ".").exists()

"""The landing sensors over a sequence of uploads: each changed partition is requested once per change."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from globolatte_dagster.defs.ingestion import sensors as sensors_module
from globolatte_dagster.defs.ingestion.sensors import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    reference_landing_sensor,
    sales_landing_sensor,
    weather_landing_sensor,
)
from globolatte_dagster.lib import scan as scan_module
from globolatte_dagster.lib.scan import scan_sales, window_months
from globolatte_dagster_tests.conftest import SAMPLE_EXPORT


def _sales(day: str, tid: str = "T001") -> bytes:
    header = SAMPLE_EXPORT.splitlines()[0]
    return header + f"\n{tid},BU_US,P001,C001,1,3.50,{day} 08:00:00,cash\n".encode()


@pytest.fixture(autouse=True)
def _files_settle_at_once(monkeypatch):
    """Files written by a test are complete: no need to wait for a second listing (tested on its own)."""
    monkeypatch.setattr(sensors_module, "QUIET_SECONDS", 0.0)


class Sensor:
    """Ticks a sensor like the daemon does: the cursor of one tick feeds the next, and (unless `loads` is
    False) each requested partition is then recorded as loaded, as a successful run would."""

    def __init__(self, sensor, landing, instance=None, key=("raw", "sales"), loads=True):
        self.sensor, self.landing, self.cursor = sensor, landing, None
        self.instance = instance or _instance_with_products()
        self.key, self.loads = list(key), loads

    def tick(self) -> list[dg.RunRequest]:
        ctx = dg.build_sensor_context(
            cursor=self.cursor, resources={"landing": self.landing}, instance=self.instance
        )
        result = self.sensor(ctx)
        if result is None or isinstance(result, dg.SkipReason):
            return []
        self.cursor = result.cursor or self.cursor
        requests = list(result.run_requests or [])
        if self.loads:
            for request in requests:
                for partition in _request_partitions(request):
                    self.instance.report_runless_asset_event(
                        dg.AssetMaterialization(asset_key=self.key, partition=partition)
                    )
        return requests


def _request_partitions(request: dg.RunRequest) -> list[str]:
    """The region x day partition keys a request asks for (one, or a range of one region)."""
    if request.partition_key:
        return [str(request.partition_key)]
    if RANGE_START_TAG not in request.tags:
        return []  # an unpartitioned run (the reference data)
    (first, region), (last, _) = (request.tags[t].split("|") for t in (RANGE_START_TAG, RANGE_END_TAG))
    days = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    return [f"{date.fromisoformat(first) + timedelta(days=i)}|{region}" for i in range(days)]


def _instance_with_products() -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["core", "products"]))
    return instance


def _partitions(requests: list[dg.RunRequest]) -> list[str]:
    out = []
    for r in requests:
        if r.partition_key:
            out.append(str(r.partition_key))
        else:
            out.append(f"{r.tags[RANGE_START_TAG]}..{r.tags[RANGE_END_TAG]}")
    return sorted(out)


def test_sales_sensor_requests_each_change_once(landing, monkeypatch):
    s = Sensor(sales_landing_sensor, landing)
    assert s.tick() == []

    # two files of one day -> one run
    landing.write_bytes("sales/america/2025-03-01/store_01.csv", _sales("2025-03-01"))
    landing.write_bytes("sales/america/2025-03-01/store_02.csv", _sales("2025-03-01", "T002"))
    first = s.tick()
    assert _partitions(first) == ["2025-03-01|america"]
    assert s.tick() == []  # unchanged files never run again

    # re-upload of one file -> the partition runs again, with a new run key
    landing.write_bytes("sales/america/2025-03-01/store_02.csv", _sales("2025-03-01", "T003") + b"\n")
    again = s.tick()
    assert _partitions(again) == ["2025-03-01|america"]
    assert again[0].run_key != first[0].run_key

    # a new day in another region, and stray paths that must be skipped without raising
    landing.write_bytes("sales/canada/2025-03-02/sales.csv", _sales("2025-03-02").replace(b"BU_US", b"BU_CA"))
    landing.write_bytes("sales/brazil/2025-03-02/sales.csv", _sales("2025-03-02"))
    landing.write_bytes("sales/america/2025-13-45/sales.csv", _sales("2025-03-02"))
    landing.write_bytes("sales/america/2025-03-02/notes.txt", b"hello")
    landing.write_bytes("sales/america/readme.md", b"stray")
    assert _partitions(s.tick()) == ["2025-03-02|canada"]
    assert s.tick() == []

    # days later: the old days settle; a late day in an older month is not listed by an ordinary tick,
    # and is picked up once by the next full pass (hourly; here forced)
    landing.write_bytes("sales/america/2025-03-10/sales.csv", _sales("2025-03-10"))
    assert _partitions(s.tick()) == ["2025-03-10|america"]
    landing.write_bytes("sales/america/2025-02-20/sales.csv", _sales("2025-02-20"))
    assert s.tick() == []
    monkeypatch.setattr(scan_module, "FULL_PASS_SECONDS", 0)
    assert _partitions(s.tick()) == ["2025-02-20|america"]
    assert s.tick() == []
    cursor = json.loads(s.cursor)
    assert "2025-03-01" in cursor["settled"]["america"]
    assert any("brazil" in p for p in cursor["stray"])


def test_sales_sensor_waits_for_the_product_catalogue(landing):
    landing.write_bytes("sales/america/2025-03-01/sales.csv", _sales("2025-03-01"))
    s = Sensor(sales_landing_sensor, landing, instance=dg.DagsterInstance.ephemeral())
    ctx = dg.build_sensor_context(cursor=None, resources={"landing": landing}, instance=s.instance)
    skipped = sales_landing_sensor(ctx)
    assert isinstance(skipped, dg.SkipReason) and "core/products" in skipped.skip_message
    s.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["core", "products"]))
    assert _partitions(s.tick()) == ["2025-03-01|america"]


def test_consecutive_new_days_of_a_region_share_one_ranged_run(landing):
    for day in ("2025-01-01", "2025-01-02", "2025-01-03", "2025-01-05"):
        landing.write_bytes(f"sales/america/{day}/sales.csv", _sales(day))
    requests = Sensor(sales_landing_sensor, landing).tick()
    assert _partitions(requests) == ["2025-01-01|america..2025-01-03|america", "2025-01-05|america"]


def test_settled_days_are_not_listed_again(landing):
    for i in range(1, 29):
        landing.write_bytes(f"sales/america/2025-02-{i:02d}/sales.csv", _sales(f"2025-02-{i:02d}"))
    cursor = None
    calls = []

    def list_files(prefix):
        calls.append(prefix)
        return landing.list(prefix)

    first = scan_sales(list_files, landing.list_dirs, cursor)
    assert len(first.changes) == 28
    calls.clear()
    landing.write_bytes("sales/america/2025-03-01/sales.csv", _sales("2025-03-01"))
    second = scan_sales(list_files, landing.list_dirs, first.cursor)
    assert [c.day for c in second.changes] == ["2025-03-01"]
    # only the open window (3 days) and the new day are listed, not the 28 days of history
    assert len(calls) <= 5
    assert second.listed_objects < 28 + 10


def test_an_ordinary_tick_lists_recent_months_only_whatever_the_history(landing):
    """Tick cost is flat in history: day folders are listed under a few month prefixes, not all of them."""
    start = date(2023, 1, 1)
    for i in range(0, 700, 3):  # about two years of history, one day in three
        day = (start + timedelta(days=i)).isoformat()
        landing.write_bytes(f"sales/america/{day}/sales.csv", _sales(day))
    now = datetime(2024, 12, 5, 12, tzinfo=UTC)
    first = scan_sales(landing.list, landing.list_dirs, None, now=now)
    assert first.full_pass and len(first.changes) == 234

    landing.write_bytes("sales/america/2024-12-05/sales.csv", _sales("2024-12-05"))
    landing.write_bytes("sales/america/2023-06-02/sales.csv", _sales("2023-06-02"))  # a late day
    prefixes = []

    def list_dirs(prefix):
        prefixes.append(prefix)
        return landing.list_dirs(prefix)

    later = now + timedelta(minutes=10)
    second = scan_sales(landing.list, list_dirs, first.cursor, now=later)
    assert not second.full_pass
    assert [c.day for c in second.changes] == ["2024-12-05"]
    america = sorted(p for p in prefixes if p.startswith("sales/america/"))
    assert america == ["sales/america/2024-11", "sales/america/2024-12"]  # newest day 2024-11-30, today
    assert second.listed_objects < 40  # the ~240 day folders of history are not listed

    third = scan_sales(landing.list, landing.list_dirs, second.cursor, now=later + timedelta(hours=1))
    assert third.full_pass
    assert [c.day for c in third.changes] == ["2023-06-02"]


def test_window_months_cover_open_days_the_newest_day_and_today():
    months = window_months(["2024-10-30"], "2024-11-02", date(2025, 3, 1))
    assert months == ["2024-10", "2024-11", "2024-12", "2025-02", "2025-03"]


def test_weather_days_with_a_short_gap_share_one_run(landing):
    w = Sensor(weather_landing_sensor, landing, key=("raw", "weather"))
    for day in ("2025-05-01", "2025-05-02", "2025-05-04", "2025-05-20"):  # 05-03 is missing, then a long gap
        landing.write_bytes(
            f"weather/mexico/{day}.csv", f"date,temp_max_c,temp_min_c,precip_mm\n{day},29,14,0\n".encode()
        )
    assert _partitions(w.tick()) == ["2025-05-01|mexico..2025-05-04|mexico", "2025-05-20|mexico"]


def test_weather_and_reference_sensors(landing):
    w = Sensor(weather_landing_sensor, landing, key=("raw", "weather"))
    landing.write_bytes(
        "weather/mexico/2025-05-01.csv", b"date,temp_max_c,temp_min_c,precip_mm\n2025-05-01,29,14,0\n"
    )
    landing.write_bytes("weather/mexico/not-a-day.csv", b"x")
    assert _partitions(w.tick()) == ["2025-05-01|mexico"]
    assert w.tick() == []

    r = Sensor(reference_landing_sensor, landing)
    assert r.tick() == []
    landing.write_bytes("reference/products.csv", b"product_id,product_name,category,price\n")
    assert len(r.tick()) == 1
    assert r.tick() == []


def test_a_day_landing_in_every_region_is_one_run_per_region(landing):
    for region, unit in (("america", b"BU_US"), ("canada", b"BU_CA"), ("mexico", b"BU_MX")):
        landing.write_bytes(
            f"sales/{region}/2025-04-01/sales.csv", _sales("2025-04-01").replace(b"BU_US", unit)
        )
    landing.write_bytes("sales/america/2025-04-02/sales.csv", _sales("2025-04-02"))
    requests = Sensor(sales_landing_sensor, landing).tick()
    assert _partitions(requests) == [
        "2025-04-01|america..2025-04-02|america",
        "2025-04-01|canada",
        "2025-04-01|mexico",
    ]


def test_automation_off_starts_every_sensor_stopped(monkeypatch):
    """GLOBOLATTE_AUTOMATION is read when the definitions load (no module reload needed)."""
    from globolatte_dagster.defs.automation import automation

    def statuses() -> dict[str, dg.DefaultSensorStatus]:
        loaded = [*sensors_module.landing().sensors, *automation().sensors]
        return {sensor.name: sensor.default_status for sensor in loaded}

    names = {
        "sales_landing_sensor",
        "weather_landing_sensor",
        "reference_landing_sensor",
        "automation_sensor",
    }
    monkeypatch.setenv("GLOBOLATTE_AUTOMATION", "off")
    assert statuses() == dict.fromkeys(names, dg.DefaultSensorStatus.STOPPED)
    monkeypatch.setenv("GLOBOLATTE_AUTOMATION", "sometimes")
    with pytest.raises(ValueError, match="GLOBOLATTE_AUTOMATION must be 'on' or 'off'"):
        sensors_module.landing()
    with pytest.raises(ValueError, match="GLOBOLATTE_AUTOMATION must be 'on' or 'off'"):
        automation()
    monkeypatch.delenv("GLOBOLATTE_AUTOMATION")
    assert statuses() == dict.fromkeys(names, dg.DefaultSensorStatus.RUNNING)

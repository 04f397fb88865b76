"""The downstream automation condition, evaluated tick by tick against a real instance (no daemon).

A small graph with the shapes of the real one: region × day sales and weather, the unpartitioned catalogue,
and a region-partitioned asset under `daily_refresh()`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from globolatte_dagster.defs.automation import daily_refresh
from globolatte_dagster.defs.partitions import region_day, region_of_region_day, region_partitions

SALES, WEATHER, PRODUCTS = ["raw", "sales"], ["raw", "weather"], ["core", "products"]
FEATURES = dg.AssetKey(["core", "customer_features"])
FAIL = {"on": False}


@dg.asset(
    key=FEATURES,
    partitions_def=region_partitions,
    deps=[
        dg.AssetDep(SALES, partition_mapping=region_of_region_day),
        dg.AssetDep(WEATHER, partition_mapping=region_of_region_day),
        dg.AssetDep(PRODUCTS),
    ],
    automation_condition=daily_refresh(),
)
def features() -> None:
    if FAIL["on"]:
        raise RuntimeError("injected failure (a warehouse lock timeout, say)")


UPSTREAM = [
    dg.AssetSpec(SALES, partitions_def=region_day),
    dg.AssetSpec(WEATHER, partitions_def=region_day),
    dg.AssetSpec(PRODUCTS),
]
DEFS = dg.Definitions(assets=[features, *UPSTREAM])
# An hour after the next midnight (UTC): every event written by the test lies before the evaluations.
# (Half a minute off the retry ticks, which fall on whole ten minutes.)
DAY = (datetime.now(UTC) + timedelta(days=1)).replace(hour=1, minute=0, second=30, microsecond=0)


def _load_weather() -> None:
    """Stands for the weather load; the test only creates its run."""


class Ticks:
    def __init__(self):
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor = None

    def at(self, when: datetime) -> set[str]:
        result = dg.evaluate_automation_conditions(
            DEFS, self.instance, evaluation_time=when, cursor=self.cursor
        )
        self.cursor = result.cursor
        return set(result.get_requested_partitions(FEATURES))

    def land(self, key, partition: str | None = None) -> None:
        self.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))

    def run_features(self, region: str, fail: bool) -> bool:
        FAIL["on"] = fail
        try:
            return dg.materialize(
                [features, *UPSTREAM],
                selection=[FEATURES],
                partition_key=region,
                instance=self.instance,
                raise_on_error=False,
            ).success
        finally:
            FAIL["on"] = False


def test_nothing_is_requested_while_upstream_is_missing():
    t = Ticks()
    assert t.at(DAY) == set()
    t.land(PRODUCTS)  # the catalogue alone is not enough: no sales yet
    assert t.at(DAY + timedelta(minutes=1)) == set()
    t.land(SALES, "2025-03-01|america")  # one loaded day of one region is; no weather is needed
    assert t.at(DAY + timedelta(minutes=2)) == {"america"}  # canada and mexico stay idle


def test_a_failed_run_is_requested_again_later_the_same_day():
    t = Ticks()
    t.land(PRODUCTS)
    t.land(SALES, "2025-03-01|america")
    assert t.at(DAY) == {"america"}
    assert not t.run_features("america", fail=True)
    assert t.at(DAY + timedelta(minutes=1)) == set()  # back-off until the next retry tick
    assert t.at(DAY + timedelta(minutes=10)) == {"america"}  # retried after the next retry tick
    assert t.run_features("america", fail=False)
    assert t.at(DAY + timedelta(minutes=11)) == set()


def test_after_a_success_a_region_refreshes_at_most_once_that_day():
    t = Ticks()
    t.land(PRODUCTS)
    t.land(SALES, "2025-03-01|america")
    assert t.at(DAY) == {"america"}
    assert t.run_features("america", fail=False)
    assert t.at(DAY + timedelta(minutes=1)) == set()
    t.land(SALES, "2025-03-02|america")  # new sales the same day: not again today
    assert t.at(DAY + timedelta(hours=2)) == set()
    assert t.at(DAY + timedelta(hours=20)) == set()
    assert t.at(DAY + timedelta(days=1, minutes=1)) == {"america"}  # the next day it refreshes


def test_it_waits_while_upstream_is_being_loaded():
    t = Ticks()
    t.land(PRODUCTS)
    t.land(SALES, "2025-03-01|america")
    loader = dg.asset(key=WEATHER, partitions_def=region_day)(_load_weather)
    run = t.instance.create_run_for_job(
        dg.Definitions(assets=[loader]).resolve_implicit_global_asset_job_def(),
        asset_selection=frozenset({dg.AssetKey(WEATHER)}),
        tags={"dagster/partition": "2025-03-01|america"},
    )
    assert run.status == dg.DagsterRunStatus.NOT_STARTED  # its weather partition is now in progress
    assert t.at(DAY) == set()
    t.instance.report_run_failed(run)
    assert t.at(DAY + timedelta(minutes=1)) == {"america"}


@pytest.fixture(autouse=True)
def _reset():
    FAIL["on"] = False

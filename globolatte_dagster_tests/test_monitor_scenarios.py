"""Each simulator scenario raises its alert within a stated number of landed days, never before its day; the
retrained champion recovers after a taste shift; the calm simulator raises no alarm over 60 days.

Days are replayed one at a time (`monitor_replay.Replay`): the lists are served from a champion trained on the
days before, the day lands and is monitored, and the champion is retrained as the automation would do it.
Invariants only: the measured delays are in docs/monitoring.md.
"""

from datetime import date, timedelta

import pandas as pd
import pytest

from globolatte_dagster.defs.monitor.checks import latest_landed, units_behind
from globolatte_dagster.lib.schema import DATA_QUALITY, RECOMMENDATION_PERFORMANCE
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.ml_data import landed_frames, load_duckdb, simulate_case
from globolatte_dagster_tests.monitor_replay import DayLog, Replay

REGION = "america"
CUSTOMERS = 240
SERVE_FROM = 28  # the first champion learns from 28 days
SCENARIO_DAY = 36
# The alert must come within this many landed days, counting the scenario's first day as day 1.
WITHIN = {"taste-shift": 3, "new-product": 4, "price-change": 3, "unit-outage": 2}


def _replay(tmp_path, scenario: str | None, days: int, policy: str) -> tuple[Replay, list[DayLog], date]:
    start = date(2025, 1, 1)
    case = simulate_case(
        tmp_path,
        days,
        CUSTOMERS,
        regions=[REGION],
        scenario=scenario,
        scenario_from=start + timedelta(days=SCENARIO_DAY) if scenario else None,
    )
    replay = Replay(case, tmp_path, REGION, policy=policy)
    log = replay.run(start + timedelta(days=SERVE_FROM), case.last_day)
    return replay, log, start + timedelta(days=SCENARIO_DAY)


def _alerted(entry: DayLog, kind: str) -> bool:
    if kind == "performance":
        return entry.performance is not None
    return bool(entry.feature_drift)


def _first_alert(log: list[DayLog], kinds: tuple[str, ...]) -> DayLog | None:
    return next((e for e in log if any(_alerted(e, k) for k in kinds)), None)


@pytest.mark.parametrize(
    ("scenario", "kinds", "feature"),
    [
        ("taste-shift", ("performance", "drift"), None),
        ("new-product", ("drift",), "product_id"),
        ("price-change", ("drift",), "unit_price"),
    ],
)
def test_a_scenario_alerts_within_its_days_and_not_before(tmp_path, scenario, kinds, feature):
    replay, log, day = _replay(tmp_path, scenario, SCENARIO_DAY + 8, "alert")
    replay.close()
    before = [e for e in log if e.day < day]
    assert before and not any(_alerted(e, k) for e in before for k in ("performance", "drift"))
    first = _first_alert(log, kinds)
    assert first is not None, f"{scenario}: no alert in {len(log) - len(before)} days"
    landed_days = (first.day - day).days + 1
    assert 1 <= landed_days <= WITHIN[scenario], f"{scenario}: alert on landed day {landed_days}"
    if feature:
        assert any(f.startswith(feature) for f in first.feature_drift), first.feature_drift
    assert first.retrained_after  # the failed check retrains the model


def test_after_a_taste_shift_the_retrained_champion_recovers(tmp_path):
    """Retrained as each day lands (the daily refresh): the tournament turns to the recency-weighted candidate
    once its hold-out holds enough days after the shift (retraining on alerts alone stops at repeat's level
    as soon as the checks pass, docs/monitoring.md)."""
    replay, _log, day = _replay(tmp_path, "taste-shift", SCENARIO_DAY + 20, "daily")
    perf = replay.table(RECOMMENDATION_PERFORMANCE)
    replay.close()
    top = perf[perf["list"] == "top"].assign(day=lambda f: pd.to_datetime(f["day"]).dt.date)
    week = lambda first, last: top[(top["day"] >= first) & (top["day"] <= last)]  # noqa: E731

    def pooled(rows: pd.DataFrame) -> float:
        return float((rows["hit_rate_at_3"] * rows["customers"]).sum() / rows["customers"].sum())

    pre = pooled(week(day - timedelta(days=7), day - timedelta(days=1)))
    shock = pooled(week(day, day + timedelta(days=2)))
    last = pooled(week(top["day"].max() - timedelta(days=6), top["day"].max()))
    assert shock < pre - 0.2  # the shift hurts the served lists
    assert last > shock + 0.15 and last > 0.75 * pre  # and the retrained champions win most of it back
    # the monitor table shows which champion served each day: new versions after the alert
    before_versions = set(top.loc[top["day"] < day, "champion_version"])
    late_versions = set(top.loc[top["day"] > day + timedelta(days=7), "champion_version"])
    assert late_versions and not late_versions & before_versions


def test_a_unit_that_stops_is_named_within_its_days(tmp_path):
    start = date(2025, 1, 1)
    outage = start + timedelta(days=10)
    case = simulate_case(tmp_path, 14, 40, scenario="unit-outage", scenario_from=outage)
    frames = landed_frames(case.landing)
    assert set(frames["sales"]["region"]) == {"america", "canada", "mexico"}
    named = {}
    for offset in range(5, 14):
        today = start + timedelta(days=offset)
        database = str(tmp_path / f"wh-{offset}.duckdb")
        landed = dict(frames)
        landed["sales"] = frames["sales"][pd.to_datetime(frames["sales"]["day"]).dt.date <= today]
        load_duckdb(database, landed)
        named[today] = units_behind(latest_landed(DuckDBWarehouse(database=database).query))
    alerted = [d for d, behind in named.items() if behind]
    assert alerted and all(d >= outage for d in alerted)
    first = min(alerted)
    assert (first - outage).days + 1 <= WITHIN["unit-outage"]
    assert list(named[first]) == ["mexico"]  # the simulator's default: the last region stops


def test_the_calm_simulator_raises_no_alarm_over_60_days(tmp_path):
    replay, log, _ = _replay(tmp_path, None, 60, "daily")
    dq = replay.table(DATA_QUALITY)
    replay.close()
    assert len(log) == 60 - SERVE_FROM
    alarms = [(e.day, k) for e in log for k in ("performance", "drift") if _alerted(e, k)]
    alarms += [(e.day, "prediction") for e in log if e.prediction_drift]
    assert alarms == []
    # data quality alerts only where the simulator really dropped the day's weather file
    alerts = dq[dq["alert"].astype(bool)]
    assert set(alerts["metric"]) <= {"weather_missing"}
    landing = replay.case.landing
    for day in pd.to_datetime(alerts["day"]).dt.date:
        assert not (landing / "weather" / REGION / f"{day.isoformat()}.csv").exists()

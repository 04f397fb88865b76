"""The monitor's pure functions on hand-made data: distances, thresholds, realised hit rate, rules, quality."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from globolatte_dagster.defs.monitor.checks import units_behind
from globolatte_dagster.lib.monitor import compute as C
from globolatte_dagster.lib.monitor import distances as M
from globolatte_dagster.lib.monitor import drift as Dr
from globolatte_dagster.lib.monitor import performance as P
from globolatte_dagster.lib.monitor import quality as Q
from globolatte_dagster.lib.recommend.data import history_from_frames

D0 = date(2025, 3, 1)


def test_jensen_shannon_is_zero_for_equal_mixes_and_largest_for_disjoint_ones():
    a = pd.Series({"latte": 2.0, "muffin": 1.0})
    assert M.js_distance(a, a * 10) == pytest.approx(0.0, abs=1e-9)
    assert M.js_distance(a, pd.Series({"tea": 5.0})) == pytest.approx(np.sqrt(np.log(2)))
    assert np.isnan(M.js_distance(a, pd.Series(dtype=float)))


def test_normalised_wasserstein_counts_shifts_in_reference_standard_deviations():
    ref = pd.Series({"1": 1.0, "3": 1.0})  # mean 2, std 1
    assert M.wasserstein_normed(ref, pd.Series({"2": 1.0, "4": 1.0})) == pytest.approx(1.0)
    assert M.wasserstein_normed(ref, ref) == pytest.approx(0.0)


def test_unseen_and_repriced_shares():
    ref = pd.Series({"P1": 3.0, "P2": 1.0})
    assert M.unseen_share(ref, pd.Series({"P1": 3.0, "P9": 1.0})) == pytest.approx(0.25)
    reference = pd.DataFrame({"product_id": ["P1", "P2"], "price": [4.0, 2.0], "n": [10.0, 10.0]})
    current = pd.DataFrame(
        {"product_id": ["P1", "P2", "P3"], "price": [5.6, 2.02, 9.0], "n": [1.0, 3.0, 5.0]}
    )
    # P1 is 40% dearer, P2 1% (within 5%), P3 is new and left out
    assert Dr.repriced_share(reference, current) == pytest.approx(0.25)


def test_sampling_noise_of_a_small_window_is_larger_than_of_a_large_one():
    ref = pd.Series({f"P{i}": float(i + 1) for i in range(30)})
    small = M.sampling_spread(M.JENSEN_SHANNON, ref, 50, 0.99)
    large = M.sampling_spread(M.JENSEN_SHANNON, ref, 5000, 0.99)
    assert small > 2 * large > 0


def test_reference_spread_is_how_far_the_reference_days_lie_from_their_pool():
    calm = pd.DataFrame({"a": [10.0, 10.0, 10.0], "b": [10.0, 10.0, 10.0]})
    swinging = pd.DataFrame({"a": [20.0, 0.0, 10.0], "b": [0.0, 20.0, 10.0]})
    assert M.reference_spread(M.JENSEN_SHANNON, calm, 1, 1.0) == pytest.approx(0.0, abs=1e-9)
    assert M.reference_spread(M.JENSEN_SHANNON, swinging, 1, 1.0) > 0.4
    assert np.isnan(M.reference_spread(M.JENSEN_SHANNON, calm.head(1), 1, 1.0))


def _history(lines: list[tuple[int, str, str]], customers=("A", "B", "C")):
    frame = pd.DataFrame(
        {
            "day": [pd.Timestamp(D0 + timedelta(days=d)) for d, _, _ in lines],
            "customer_id": [c for _, c, _ in lines],
            "product_id": [p for _, _, p in lines],
            "quantity": 1,
            "transactions": 1,
            "first_hour": 8,
        }
    )
    products = pd.DataFrame(
        {"product_id": ["P1", "P2", "P3"], "product_name": ["a", "b", "c"], "category": "x", "serving": "hot"}
    )
    weather = pd.DataFrame(columns=["day", "temp_max_c", "precip_mm"])
    return history_from_frames("america", frame, products, weather, list(customers))


def _served(rows: list[tuple[str, str, int, str]], version="globolatte-america:1") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"customer_id": c, "list": lst, "rank": r, "product_id": p, "model_version": version}
            for c, lst, r, p in rows
        ]
    )


def test_realised_hit_rate_scores_the_served_lists_and_the_baselines_on_the_same_customers():
    # before the day: A always P1, B always P2, and P1 is the most popular; on the day A buys P1, B buys P3
    history = _history(
        [(0, "A", "P1"), (1, "A", "P1"), (0, "B", "P2"), (1, "C", "P1"), (2, "A", "P1"), (2, "B", "P3")]
    )
    day = D0 + timedelta(days=2)
    served = _served(
        [
            ("A", "top", 1, "P2"),  # a miss: A bought P1
            ("B", "top", 1, "P3"),  # a hit
            ("C", "top", 1, "P1"),  # C bought nothing that day: not scored
            ("B", "discover", 1, "P3"),  # B never bought P3 before: a discover hit
        ]
    )
    rows = {r["list"]: r for r in P.day_performance(history, served, day, k=1)}
    top, disc = rows["top"], rows["discover"]
    assert top["customers"] == 2 and top[P.CHAMPION] == pytest.approx(0.5)
    assert top[P.REPEAT] == pytest.approx(0.5)  # repeat: A's P1 (hit), B's P2 (miss)
    assert top[P.POPULARITY] == pytest.approx(0.5)  # P1 for both: A hits, B misses
    assert disc["customers"] == 1 and disc[P.CHAMPION] == pytest.approx(1.0) and disc[P.REPEAT] is None
    assert top["champion_version"] == "globolatte-america:1"


def _perf_rows(
    champion: float, repeat: float, popularity: float, days: int = 7, n: int = 100
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": [D0 + timedelta(days=i) for i in range(days)],
            "list": "top",
            "customers": n,
            P.CHAMPION: champion,
            P.REPEAT: repeat,
            P.POPULARITY: popularity,
            "champion_version": "globolatte-america:1",
        }
    )


@pytest.mark.parametrize(
    ("champion", "repeat", "popularity", "holdout", "expected"),
    [
        (0.80, 0.80, 0.40, 0.82, None),  # as good as repeat, near its hold-out figure
        (0.30, 0.40, 0.45, 0.82, "error"),  # below popularity
        (0.60, 0.80, 0.40, 0.62, "warn"),  # below repeat
        (0.60, 0.55, 0.40, 0.85, "warn"),  # far below its hold-out figure
        (0.79, 0.80, 0.40, 0.82, None),  # within noise of repeat
    ],
)
def test_the_rolling_rule(champion, repeat, popularity, holdout, expected):
    table = _perf_rows(champion, repeat, popularity)
    alerts = P.rolling_alerts(table, lambda _v, _l: holdout)
    verdict = alerts.iloc[-1]
    assert (verdict.split(":")[0] if verdict else None) == expected


def test_the_rolling_rule_gives_no_verdict_on_too_few_customer_days():
    table = _perf_rows(0.1, 0.9, 0.9, days=2, n=10)
    assert P.rolling_alerts(table, lambda _v, _l: 0.9).isna().all()


def test_quality_rows_share_of_rows_as_they_arrived_and_missing_weather():
    counts = pd.DataFrame(
        {
            "day": [D0, D0 + timedelta(days=1)],
            "rows_loaded": [95.0, 100.0],
            "guests": [10.0, 80.0],
            "rejected": [5.0, 0.0],
            "unknown_product": [2.0, 0.0],
            "missing_value": [1.0, 0.0],
            "out_of_range": [2.0, 0.0],
            "weather_rows": [1.0, 0.0],
        }
    )
    rows = Q.quality_rows(counts).set_index(["day", "metric"])
    first, second = D0, D0 + timedelta(days=1)
    assert rows.loc[(first, "reject_share"), "value"] == pytest.approx(0.05)
    assert rows.loc[(first, "unknown_product_share"), "alert"]
    assert not rows.loc[(first, "weather_missing"), "alert"]
    assert rows.loc[(second, "weather_missing"), "alert"] and rows.loc[(second, "guest_share"), "alert"]
    assert not rows.loc[(second, "reject_share"), "alert"]


def test_days_to_monitor_new_recent_and_requested_landed_days_only():
    landed = [D0 + timedelta(days=i) for i in range(10)]
    monitored = landed[:8]
    got = C.days_to_monitor(landed, monitored, recent=3, requested=[D0, D0 + timedelta(days=99)])
    assert got == [D0, *landed[7:]]


def test_units_behind_names_the_unit_that_stopped():
    latest = {"america": "2025-03-10", "canada": "2025-03-10", "mexico": "2025-03-07"}
    assert units_behind(latest) == {"mexico": 3}
    assert units_behind({**latest, "mexico": "2025-03-09"}) == {}


@pytest.mark.parametrize("metric", [M.JENSEN_SHANNON, M.WASSERSTEIN_NORMED])
def test_the_vectorised_measure_equals_scipy(metric):
    rng = np.random.default_rng(3)
    reference = pd.Series(rng.integers(1, 50, 12).astype(float), index=[str(v) for v in range(0, 24, 2)])
    rows = rng.integers(0, 30, (5, 12)).astype(float)
    expected = [M.measure(metric, reference, pd.Series(r, index=reference.index)) for r in rows]
    assert M.batch(metric, reference, rows) == pytest.approx(expected, rel=1e-9)


def test_a_drift_alerts_only_when_it_lasts():
    frame = pd.DataFrame(
        {
            "day": [D0 + timedelta(days=i) for i in range(5)],
            "signal": "feature",
            "feature": "spend",
            "metric": M.WASSERSTEIN_NORMED,
            "value": [0.5, 0.05, 0.5, 0.6, 0.7],
            "threshold": 0.1,
        }
    )
    assert Dr.sustained(frame, 2).tolist() == [False, False, False, True, True]
    assert Dr.sustained(frame, 1).tolist() == [True, False, True, True, True]

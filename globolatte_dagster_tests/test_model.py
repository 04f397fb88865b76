"""The preference model: metrics, context, no leakage, the scoring contract, and the acceptance numbers."""

from __future__ import annotations

import io
import time
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
import pytest

from globolatte_dagster.lib import features as F
from globolatte_dagster.lib import metrics as M
from globolatte_dagster.lib import model as Mo
from globolatte_dagster.lib import segments as S
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.ml_data import landed_frames, load_duckdb, simulate_case

# ------------------------------------------------------------------------------------------- pure parts


def test_top_k_breaks_ties_by_product_order():
    scores = np.array([[0.2, 0.5, 0.5], [0.9, 0.1, 0.3]])
    assert M.top_k(scores, 2).tolist() == [[1, 2], [0, 2]]
    assert M.top_k(scores, 2, tie_break=np.array([2, 1, 0])).tolist() == [[2, 1], [0, 2]]
    assert M.top_k(scores, 5).shape == (2, 3)


def test_hit_rate_counts_a_hit_when_any_pick_was_bought():
    rec = np.array([[0, 1, 2], [3, 4, 5], [0, 1, 2]])
    assert M.hits(rec, [{2}, {6}, {0, 9}]).tolist() == [1, 0, 1]
    assert M.hit_rate(rec, [{2}, {6}, {0, 9}]) == pytest.approx(2 / 3)
    assert M.coverage(rec, 10) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="no rows"):
        M.hit_rate(np.zeros((0, 3)), [])


def test_day_context_knows_weekends_holidays_and_seasons():
    july4 = Mo.day_context("america", date(2025, 7, 4), 31.0, 0.0, "observed")
    assert (
        july4.is_holiday and not july4.is_weekend and july4.off_day and Mo.SEASONS[july4.season] == "summer"
    )
    assert not Mo.day_context("canada", date(2025, 7, 4), None, None, "none").is_holiday
    sat = Mo.day_context("mexico", date(2025, 1, 11), None, None, "none")
    assert sat.is_weekend and np.isnan(sat.temp_max_c)


def test_weather_falls_back_to_the_recent_average_and_says_so():
    days = [date(2025, 6, 1) + timedelta(days=i) for i in range(10)]
    book = Mo.WeatherBook.from_frame(
        pd.DataFrame({"day": days, "temp_max_c": [20.0] * 3 + [30.0] * 7, "precip_mm": [0.0] * 10})
    )
    assert book.context("america", days[5], known_until=days[9]).weather_source == "observed"
    assert book.context("america", days[9], known_until=days[8]).weather_source == "forecast"
    missing = book.context("america", days[9] + timedelta(days=1), known_until=days[9])
    assert missing.weather_source == "recent_average" and missing.temp_max_c == pytest.approx(30.0)
    empty = Mo.WeatherBook.from_frame(pd.DataFrame({"day": [], "temp_max_c": [], "precip_mm": []}))
    assert empty.context("america", days[0], known_until=days[0]).weather_source == "none"


def test_split_is_by_time_and_keeps_the_hold_out_out_of_training():
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(60)]
    train, holdout, serve = Mo._split(days, Mo.TrainParams(holdout_days=14, train_days=28))
    assert holdout == days[-14:] and len(train) == 28
    assert max(train) < min(holdout)
    assert serve[-1] == days[-1]  # the serving refit sees everything
    with pytest.raises(ValueError, match="at least"):
        Mo._split(days[:15], Mo.TrainParams())


# ----------------------------------------------------------------------------------- a small simulation


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[DuckDBWarehouse, Path]:
    root = tmp_path_factory.mktemp("ml_small")
    case = simulate_case(root, days=42, customers=250, regions=("america",))
    db = str(root / "wh.duckdb")
    load_duckdb(db, landed_frames(case.landing))
    return DuckDBWarehouse(database=db), case.truth


def _segments(wh: DuckDBWarehouse, region: str) -> pd.DataFrame:
    last = F.sales_days(wh.query, region)[-1]
    cf = F.customer_features(wh.query, region, last)
    labels, _ = S.fit_segments(cf, seed=0, n_init=4).assign(cf)
    return pd.DataFrame({"customer_id": cf["customer_id"], "segment": labels})


@pytest.fixture(scope="module")
def trained(small) -> Mo.TrainingResult:
    wh, _ = small
    return Mo.train_region(wh.query, "america", _segments(wh, "america"), Mo.TrainParams(max_iter=60))


def test_training_rows_use_no_data_after_their_cutoff(small, tmp_path):
    """Features of the rows labelled on day d are the same when nothing after d - 1 exists at all."""
    wh, _ = small
    days = F.sales_days(wh.query, "america")
    d = days[-10]
    fp = F.FeatureParams()
    full = Mo.FeatureHistory.load(wh.query, "america", d - timedelta(days=3), days[-1], fp)
    cf0, _, _ = full.at(d - timedelta(days=3))
    seg = S.fit_segments(cf0, seed=0, k=4, n_init=2)
    book = Mo.WeatherBook.from_frame(full.weather)
    rows = Mo.day_rows(full, d, seg, book)
    assert rows is not None and rows.snapshot.as_of == d - timedelta(days=1)

    cut = str(tmp_path / "cut.duckdb")
    frames = {n: f for n, f in landed_frames_cache(small).items()}
    frames["sales"] = frames["sales"][frames["sales"]["day"] < pd.Timestamp(d)]
    frames["weather"] = frames["weather"][frames["weather"]["day"] < pd.Timestamp(d)]
    load_duckdb(cut, frames)
    cut_wh = DuckDBWarehouse(database=cut)
    past = Mo.FeatureHistory.load(cut_wh.query, "america", d - timedelta(days=3), d - timedelta(days=1), fp)
    cf, _, _ = past.at(d - timedelta(days=1))
    labels, _ = seg.assign(cf)
    snap = past.snapshot(
        d - timedelta(days=1), pd.Series(labels, index=cf["customer_id"].astype(str).to_numpy())
    )
    idx = np.array([snap.index.get(c, -1) for c in rows.customers])
    x, _ = Mo.design(snap, idx, [book.context("america", d, known_until=d)] * len(idx))
    np.testing.assert_array_equal(snap.products, rows.snapshot.products)
    np.testing.assert_allclose(x, rows.x)


def test_the_booster_learns_the_same_model_with_one_or_two_threads():
    """`PreferenceModelConfig.threads` only changes the speed: the scores are identical."""
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(4):
        x = rng.normal(size=(3_000, len(Mo.FEATURE_NAMES))).astype(np.float32)
        label = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=len(x)) > 1.0).astype(np.int8)
        rows.append(SimpleNamespace(x=x, label=label))
    probe = rng.normal(size=(500, len(Mo.FEATURE_NAMES))).astype(np.float32)
    one, two = (
        Mo.fit_estimator(rows, Mo.TrainParams(max_iter=30, threads=t)).predict_proba(probe)[:, 1]
        for t in (1, 2)
    )
    np.testing.assert_array_equal(one, two)
    assert one.std() > 0.05  # a model that learned something, not a constant


_FRAMES: dict[str, dict] = {}


def landed_frames_cache(small) -> dict[str, pd.DataFrame]:
    _wh, truth = small
    key = str(truth)
    if key not in _FRAMES:
        _FRAMES[key] = landed_frames(truth.parent / "landing")
    return _FRAMES[key]


def test_model_is_evaluated_against_both_baselines(trained):
    ev, m = trained.evaluation, trained.model.metrics
    for name in ("model", "repeat", "popularity"):
        assert 0.0 <= ev[f"hit_rate_at_3_{name}"] <= 1.0
        assert m[f"hit_rate_at_3_{name}"] == ev[f"hit_rate_at_3_{name}"]
    assert ev["hit_rate_at_3_model"] > ev["hit_rate_at_3_popularity"]
    assert len(ev["per_day"]) == 14 and ev["per_segment"]
    assert 0 < ev["coverage"] <= 1
    assert m["holdout_days"][1] == trained.model.as_of.isoformat()


def test_recommend_answers_the_scoring_contract(trained):
    model = trained.model
    cid = str(model.snapshot.customer_ids[0])
    day = (model.as_of + timedelta(days=1)).isoformat()
    [ans] = model.recommend(
        [{"region": "america", "customer_id": cid, "date": day, "temp_max_c": 28.5, "k": 3}]
    )
    assert set(ans) == {"region", "customer_id", "recommendations", "segment", "model_version", "cold_start"}
    assert ans["customer_id"] == cid and ans["model_version"] == "unregistered" and ans["cold_start"] is False
    assert len(ans["recommendations"]) == 3 and isinstance(ans["segment"], int)
    assert set(ans["recommendations"][0]) == {"product_id", "score"}
    scores = [r["score"] for r in ans["recommendations"]]
    assert scores == sorted(scores, reverse=True)
    [cold] = model.recommend([{"region": "america", "customer_id": "NOBODY", "date": day}])
    assert cold["cold_start"] is True and cold["segment"] is None and len(cold["recommendations"]) == 3
    model.model_version = "globolatte-america:7"
    assert model.recommend([{"region": "america", "customer_id": cid, "date": day}])[0][
        "model_version"
    ].endswith(":7")
    model.model_version = "unregistered"


def test_recommend_is_deterministic_fast_and_survives_joblib(trained):
    model = trained.model
    day = (model.as_of + timedelta(days=1)).isoformat()
    ids = [str(c) for c in model.snapshot.customer_ids]
    requests = [
        {"region": "america", "customer_id": ids[i % len(ids)], "date": day, "k": 1 + i % 5}
        for i in range(500)
    ]
    t0 = time.perf_counter()
    first = model.recommend(requests)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"500 requests took {elapsed:.2f}s"
    assert [len(a["recommendations"]) for a in first] == [r["k"] for r in requests]
    buf = io.BytesIO()
    joblib.dump(model, buf)
    buf.seek(0)
    again = joblib.load(buf).recommend(requests)
    assert again == first == model.recommend(requests)
    assert Mo.recommend({"america": model}, requests[:3]) == first[:3]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"region": "atlantis"}, "unknown region"),
        ({"region": "canada"}, "serves region"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": 7}, "customer_id"),
        ({"date": "2025-02-30"}, "date"),
        ({"date": 20250101}, "date"),
        ({"temp_max_c": "hot"}, "temp_max_c"),
        ({"temp_max_c": 99}, "temp_max_c"),
        ({"k": 0}, "k must"),
        ({"k": 21}, "k must"),
        ({"k": True}, "k must"),
    ],
)
def test_invalid_requests_raise_bad_request(trained, bad, message):
    good = {"region": "america", "customer_id": "US00001", "date": "2025-03-01", "k": 3}
    with pytest.raises(Mo.BadRequest, match=message):
        trained.model.recommend([{**good, **bad}])
    assert issubclass(Mo.BadRequest, ValueError)


def test_forecast_or_average_weather_is_used_when_the_request_has_none(trained):
    model = trained.model
    nxt = model.context(model.as_of + timedelta(days=1), None)
    assert nxt.weather_source == "forecast"  # the simulator lands forecasts for the next days
    far = model.context(model.as_of + timedelta(days=30), None)
    assert far.weather_source == "recent_average" and not np.isnan(far.temp_max_c)
    assert model.context(model.as_of + timedelta(days=1), 25.0).weather_source == "request"


# ------------------------------------------------------------------------------------------ acceptance


@pytest.fixture(scope="module")
def acceptance(tmp_path_factory):
    """3 regions x 120 days x 2,000 customers per region, the simulator's seed fixed (runs once)."""
    root = tmp_path_factory.mktemp("ml_acceptance")
    case = simulate_case(root, days=120, customers=2000)
    db = str(root / "wh.duckdb")
    load_duckdb(db, landed_frames(case.landing))
    wh = DuckDBWarehouse(database=db)
    personas = pd.read_csv(case.truth / "personas.csv", dtype=str)
    results = {}
    for region in ("america", "canada", "mexico"):
        segments = _segments(wh, region)
        ari, _ = S.persona_agreement(segments, personas[personas["region"] == region])
        results[region] = (Mo.train_region(wh.query, region, segments).evaluation, ari)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("region", ["america", "canada", "mexico"])
def test_acceptance_model_beats_repeat_and_popularity_segments_find_personas(acceptance, region):
    ev, ari = acceptance[region]
    model, repeat, popularity = (ev[f"hit_rate_at_3_{n}"] for n in ("model", "repeat", "popularity"))
    print(f"{region}: model {model:.4f} repeat {repeat:.4f} popularity {popularity:.4f} ARI {ari:.4f}")
    assert model > repeat
    assert model > popularity + 0.2  # a wide margin over popularity
    assert ari >= 0.8

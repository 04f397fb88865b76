"""The recommenders (lib/recommend): each candidate on hand-made histories, the tournament's rules, the served object."""

from __future__ import annotations

import pickle
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from globolatte_dagster.lib.gate import gate
from globolatte_dagster.lib.recommend import data as D
from globolatte_dagster.lib.recommend.candidates import (
    Popularity,
    RecencyRepeat,
    Repeat,
    TifuKnn,
    tifu_user_vectors,
)
from globolatte_dagster.lib.recommend.context import WeatherBook, is_holiday
from globolatte_dagster.lib.recommend.evaluation import choose, force
from globolatte_dagster.lib.recommend.metrics import bootstrap, hits, top_k
from globolatte_dagster.lib.recommend.tournament import COMPLEXITY, train_region
from globolatte_dagster.lib.recommend.training import TrainParams, holdout_length

D0 = date(2025, 3, 3)  # a Monday
PRODUCTS = pd.DataFrame(
    {
        "product_id": ["A", "B", "C"],
        "product_name": ["Latte", "Iced Latte", "Croissant"],
        "category": ["coffee", "coffee", "pastry"],
        "serving": ["hot", "iced", "none"],
    }
)
NO_WEATHER = pd.DataFrame({"day": [], "temp_max_c": [], "precip_mm": []})


def history(rows: list[tuple[int, str | None, str]], weather: pd.DataFrame = NO_WEATHER) -> D.History:
    """(day offset, customer or None for a guest, product) lines -> a History (one transaction each)."""
    lines = pd.DataFrame(
        [
            {
                "day": D0 + timedelta(days=d),
                "customer_id": c,
                "product_id": p,
                "quantity": 1,
                "transactions": 1,
                "first_hour": 9,
            }
            for d, c, p in rows
        ]
    )
    lines = lines.groupby(["day", "customer_id", "product_id"], dropna=False, as_index=False).sum()
    return D.history_from_frames("america", lines, PRODUCTS, weather)


def requests_for(h: D.History, customers: list[str], day: date) -> D.Requests:
    idx = [h.index.get(c, -1) for c in customers]
    return D.Requests.build(h, idx, [day] * len(idx))


# ------------------------------------------------------------------------------------------- metrics
def test_top_k_takes_the_best_first_and_the_lower_index_on_ties_and_can_exclude():
    scores = np.array([[0.1, 0.5, 0.5, 0.2]])
    assert top_k(scores, 3).tolist() == [[1, 2, 3]]
    assert top_k(scores, 3, exclude=np.array([[False, True, False, False]])).tolist() == [[2, 3, 0]]
    assert top_k(scores, 3, exclude=np.array([[True, True, True, False]])).tolist() == [[3, -1, -1]]


def test_a_hit_is_any_pick_bought_that_day_and_padding_never_hits():
    rec = np.array([[0, 1, 2], [3, -1, -1], [4, 0, 1]])
    assert hits(rec, [{2}, {0}, {9}]).tolist() == [1.0, 0.0, 0.0]


def test_bootstrap_interval_contains_the_estimate_and_the_paired_difference_of_a_copy_is_zero():
    rng = np.random.default_rng(0)
    a = (rng.random(500) < 0.6).astype(float)
    out = bootstrap({"a": a, "b": a.copy()}, "a", n_boot=200)
    assert out["a"]["ci_low"] < a.mean() < out["a"]["ci_high"]
    assert out["b"]["diff_ci_low"] == out["b"]["diff_ci_high"] == 0.0


# ----------------------------------------------------------------------------------------- candidates
def test_tifu_knn_matches_a_hand_computed_three_customer_example():
    """Groups, decays, the nearest other customer and the alpha mix, computed by hand (see the comments)."""
    h = history(
        [
            (1, "c0", "A"),
            (2, "c0", "A"),
            (2, "c0", "B"),
            (3, "c0", "B"),
            (1, "c1", "A"),
            (3, "c1", "C"),
            (2, "c2", "C"),
        ]
    )
    vectors = tifu_user_vectors(h, n_groups=2, within_decay=0.5, group_decay=0.5).toarray()
    # c0: groups {A},{A,B} | {B}: g0 = ((0.5*A) + (A+B)) / 2 = (.75, .5, 0); user = (0.5*g0 + {B}) / 2
    # c1: groups {A} | {C}: user = (0.5*A + C) / 2;  c2: one basket {C}: user = C
    expected = np.array([[0.1875, 0.625, 0.0], [0.25, 0.0, 0.5], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(vectors, expected, atol=1e-9)
    model = TifuKnn(alpha=0.5, neighbours=1, n_groups=2, within_decay=0.5, group_decay=0.5).fit(h)
    scores = model.score(requests_for(h, ["c0", "c1", "c2"], D0 + timedelta(days=4)))
    # nearest other (Euclidean): c0 -> c1, c1 -> c2, c2 -> c1
    np.testing.assert_allclose(
        scores, [[0.21875, 0.3125, 0.25], [0.125, 0.0, 0.75], [0.125, 0.0, 0.75]], atol=1e-5
    )
    assert top_k(scores, 1)[0].tolist() == [1]  # c0: B, then C (from its neighbour) before its own A


def test_repeat_ranks_a_customers_own_frequency_and_tops_up_from_popularity():
    h = history(
        [(0, "c0", "C"), (1, "c0", "C"), (1, "c0", "A"), (0, None, "B"), (1, None, "B"), (1, "c1", "B")]
    )
    scores = Repeat().fit(h).score(requests_for(h, ["c0", "nobody"], D0 + timedelta(days=2)))
    assert top_k(scores, 3)[0].tolist() == [2, 0, 1]  # C twice, A once, then B (the most popular)
    assert top_k(scores, 1)[1].tolist() == [1]  # a stranger gets the region's most popular product


def test_popularity_counts_guests_over_the_recent_window_only():
    old = [(0, None, "A")] * 5
    recent = [(40, None, "B"), (41, "c0", "C"), (41, "c1", "C")]
    h = history(old + recent)
    assert top_k(Popularity(recent_days=28).fit(h).score(requests_for(h, ["c0"], D0)), 1)[0].tolist() == [2]


def test_recency_weighting_prefers_what_a_customer_bought_lately():
    h = history([(d, "c0", "A") for d in range(0, 10)] + [(d, "c0", "B") for d in range(20, 24)])
    req = requests_for(h, ["c0"], D0 + timedelta(days=25))
    assert top_k(Repeat().fit(h).score(req), 1)[0].tolist() == [0]  # ten days of A beat four of B
    assert top_k(RecencyRepeat(half_life_days=3.0).fit(h).score(req), 1)[0].tolist() == [1]


def test_the_half_life_is_chosen_on_the_training_window_only():
    """Whatever happens after the cutoff cannot change the tuned half-life (nor any score)."""
    rng = np.random.default_rng(1)
    rows = [
        (int(d), f"c{c}", "ABC"[int(rng.integers(3))])
        for d in range(40)
        for c in range(30)
        if rng.random() < 0.3
    ]
    base = history(rows)
    later = history(rows + [(d, f"c{c}", "C") for d in range(41, 50) for c in range(30)])
    cutoff = D0 + timedelta(days=39)
    a = RecencyRepeat().fit(base.until(cutoff))
    b = RecencyRepeat().fit(later.until(cutoff))
    assert a.half_life_days == b.half_life_days and a.tuning == b.tuning and a.tuning
    req = requests_for(base, ["c1", "c2"], cutoff + timedelta(days=1))
    np.testing.assert_array_equal(a.score(req), b.score(req))


def test_no_candidate_reads_data_after_its_cutoff():
    rng = np.random.default_rng(2)
    rows = [
        (int(d), f"c{c}", "ABC"[int(rng.integers(3))])
        for d in range(30)
        for c in range(20)
        if rng.random() < 0.4
    ]
    cutoff = D0 + timedelta(days=24)
    changed = [(d, c, "C" if d > 24 else p) for d, c, p in rows]
    for make in (
        Popularity,
        Repeat,
        lambda: RecencyRepeat(half_life_days=7.0),
        lambda: TifuKnn(alpha=0.7, neighbours=5),
    ):
        a = make().fit(history(rows).until(cutoff))
        b = make().fit(history(changed).until(cutoff))
        req = requests_for(history(rows), ["c1", "c5"], cutoff + timedelta(days=2))
        np.testing.assert_array_equal(a.score(req), b.score(req))


# ----------------------------------------------------------------------------------------- tournament
def _hits(p: float, n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def test_a_more_complex_candidate_replaces_a_baseline_only_beyond_noise():
    rep = _hits(0.70, 3000, 1)
    flip = np.random.default_rng(9).random(3000) < 0.05
    close = np.where(flip, 1.0 - rep, rep)  # as many hits won as lost: a lead of noise
    clear = np.where(np.random.default_rng(8).random(3000) < 0.15, 1.0, rep)  # +~0.045
    arrays = {
        "popularity": _hits(0.3, 3000, 2),
        "repeat": rep,
        "recency_repeat": close,
        "context_model": clear,
    }
    result = choose(arrays, COMPLEXITY, ("popularity", "repeat"), n_boot=300)
    assert result.best_baseline == "repeat" and result.champion == "context_model"
    assert any("recency_repeat does not replace repeat" in r for r in result.reasons)
    arrays["context_model"] = close.copy()
    assert choose(arrays, COMPLEXITY, ("popularity", "repeat"), n_boot=300).champion == "repeat"


def test_the_champion_is_never_below_the_best_baseline():
    for seed in range(20):
        arrays = {
            n: _hits(0.5 + 0.05 * np.random.default_rng(seed * 7 + i).standard_normal(), 400, seed * 11 + i)
            for i, n in enumerate(COMPLEXITY)
        }
        result = choose(arrays, COMPLEXITY, ("popularity", "repeat"), n_boot=200, seed=seed)
        best = max(arrays["popularity"].mean(), arrays["repeat"].mean())
        assert arrays[result.champion].mean() >= best


def test_a_forced_candidate_is_recorded_as_forced():
    arrays = {"popularity": _hits(0.3, 500, 1), "repeat": _hits(0.7, 500, 2)}
    result = force(choose(arrays, COMPLEXITY, ("popularity", "repeat"), n_boot=100), "popularity")
    assert result.champion == "popularity" and result.forced and "FORCED" in result.reasons[-1]
    with pytest.raises(ValueError, match="cannot force"):
        force(result, "tifu_knn")


def test_hold_out_length_shrinks_with_the_history_and_one_day_has_none():
    p = TrainParams()
    assert [holdout_length(n, p) for n in (1, 2, 8, 30, 200)] == [0, 1, 2, 7, 14]


def test_one_landed_day_serves_popularity_and_known_customers_are_not_cold_starts():
    h = history([(0, "c0", "A"), (0, "c1", "B"), (0, None, "B"), (0, None, "C")])
    result = train_region(h, TrainParams(n_boot=50))
    model = result.model
    assert (
        model.champion == "popularity"
        and "one landed sales day" in result.metrics["tournament"]["top"]["reasons"][0]
    )
    day = (D0 + timedelta(days=1)).isoformat()
    known, stranger = model.recommend(
        [
            {"region": "america", "customer_id": "c0", "date": day},
            {"region": "america", "customer_id": "zz", "date": day},
        ]
    )
    assert known["cold_start"] is False and stranger["cold_start"] is True
    assert next(r["product_id"] for r in known["recommendations"]) == "B"
    decision = gate(result.metrics, None)
    assert decision.promote and "no hold-out" in decision.reasons[0]


def test_a_region_without_weather_trains_every_candidate_and_says_so():
    rng = np.random.default_rng(3)
    rows = [
        (int(d), f"c{c}", "ABC"[int(rng.integers(3)) if c % 2 else c % 3])
        for d in range(60)
        for c in range(60)
        if rng.random() < 0.35
    ]
    result = train_region(history(rows), TrainParams(n_boot=100, max_iter=20, holdout_days=7))
    assert result.metrics["weather"].startswith("absent")
    assert set(result.model.candidates) == set(COMPLEXITY), result.metrics["skipped"]
    assert result.model.metrics["hit_rate_at_3"] >= result.model.metrics["best_baseline_hit_rate_at_3"]
    answer = result.model.recommend(
        [{"region": "america", "customer_id": "c1", "date": (D0 + timedelta(days=60)).isoformat()}]
    )
    assert answer[0]["candidate"] == result.model.champion
    restored = pickle.loads(pickle.dumps(result.model))
    assert (
        restored.recommend(
            [{"region": "america", "customer_id": "c1", "date": (D0 + timedelta(days=60)).isoformat()}]
        )
        == answer
    )


def test_weather_book_falls_back_to_the_recent_average_then_to_no_weather():
    frame = pd.DataFrame(
        {"day": [D0, D0 + timedelta(days=1)], "temp_max_c": [20.0, 30.0], "precip_mm": [0.0, 2.0]}
    )
    book = WeatherBook.from_frame(frame)
    assert book.context("america", D0, D0 + timedelta(days=1)).weather_source == "observed"
    assert book.context("america", D0 + timedelta(days=1), D0).weather_source == "forecast"
    avg = book.context("america", D0 + timedelta(days=5), D0 + timedelta(days=1))
    assert avg.weather_source == "recent_average" and avg.temp_max_c == 25.0
    none = WeatherBook().context("canada", D0, D0)
    assert none.weather_source == "none" and np.isnan(none.temp_max_c)
    assert is_holiday("america", date(2025, 7, 4)) and not is_holiday("mexico", date(2025, 7, 4))


def test_a_feed_that_stopped_weeks_ago_gives_no_weather_rather_than_a_stale_average():
    frame = pd.DataFrame({"day": [D0], "temp_max_c": [31.0], "precip_mm": [0.0]})
    book = WeatherBook.from_frame(frame)
    assert (
        book.context("mexico", D0 + timedelta(days=5), D0 + timedelta(days=4)).weather_source
        == "recent_average"
    )
    late = book.context("mexico", D0 + timedelta(days=40), D0 + timedelta(days=39))
    assert late.weather_source == "none" and np.isnan(late.temp_max_c)


def _busy_history(days: int = 60, customers: int = 80) -> D.History:
    rng = np.random.default_rng(5)
    rows = [
        (int(d), f"c{c}", "ABC"[int(rng.integers(3)) if c % 2 else c % 3])
        for d in range(days)
        for c in range(customers)
        if rng.random() < 0.4
    ]
    return history(rows)


def test_above_max_train_rows_the_context_model_learns_from_whole_customer_days_up_to_the_cap():
    h = _busy_history()
    small = TrainParams(n_boot=50, max_iter=10, holdout_days=7, max_train_rows=900, negative_share=1.0)
    training = train_region(h, small).metrics["candidates"]["context_model"]["training"]
    assert training["train_rows"] <= 900
    assert 0 < training["customer_days_used"] < training["customer_days"]
    assert training["rows_before_sampling_estimated"] is True
    every = TrainParams(n_boot=50, max_iter=10, holdout_days=7, max_train_rows=0, negative_share=1.0)
    full = train_region(h, every).metrics["candidates"]["context_model"]["training"]
    assert full["customer_days_used"] == full["customer_days"] and full["train_rows"] > 900
    # every row of a sampled customer-day is kept: three products, so three rows per customer-day
    assert full["train_rows"] == 3 * full["customer_days"]


def test_the_refit_for_serving_reuses_the_hold_out_fits_windows():
    from globolatte_dagster.lib.recommend.fit_cache import FitCache
    from globolatte_dagster.lib.recommend.training import fit_candidates

    h = _busy_history()
    p = TrainParams(n_boot=50, max_iter=10, holdout_days=7)
    days = h.sales_days
    cache = FitCache(h, {})
    held = fit_candidates(h, days[-8], p, 7, None, cache=cache)
    assert len(cache.windows) == 3
    fit_candidates(h, days[-1], p, 7, None, tuned=held.models, cache=cache)
    assert len(cache.windows) == 4  # one new window; the other two are the hold-out fit's
    alone = fit_candidates(h, days[-1], p, 7, None, tuned=held.models)
    shared = cache.windows
    assert alone.models["context_model"].report["train_rows"] == sum(
        len(shared[k].y) for k in shared if k[0] >= days[-1] - timedelta(days=21)
    )


def test_scoring_the_hold_out_during_the_refit_changes_no_figure():
    h = _busy_history(days=40, customers=50)
    both = [
        train_region(h, TrainParams(n_boot=50, max_iter=10, holdout_days=7, overlap=o)) for o in (True, False)
    ]
    keep = ("champion", "discover_champion", "tournament", "hit_rate_at_3")
    assert {k: both[0].metrics[k] for k in keep} == {k: both[1].metrics[k] for k in keep}


def test_the_multinomial_bootstrap_draws_what_index_resampling_draws():
    from globolatte_dagster.lib.recommend import metrics as M

    rng = np.random.default_rng(2)
    a = (rng.random(5000) < 0.7).astype(float)
    b = np.where(rng.random(5000) < 0.9, a, 1.0 - a)
    fast = M._boot_means([a, b], 2000, 0)
    index = np.stack(
        [np.stack([a, b])[:, rng.integers(0, 5000, 5000)].mean(axis=1) for _ in range(2000)], axis=1
    )
    for x, y in ((fast[0], index[0]), (fast[0] - fast[1], index[0] - index[1])):
        assert abs(x.mean() - y.mean()) < 0.002
        assert abs(x.std() - y.std()) < 0.1 * y.std()


def test_views_are_shared_only_inside_shared_views_and_dropped_after():
    h = _busy_history(days=20, customers=10)
    cut = D0 + timedelta(days=10)
    assert h.until(cut) is not h.until(cut)  # a monitor replaying many days keeps no view
    with h.shared_views():
        view = h.until(cut)
        assert h.until(cut) is view and view.until(cut) is view
        assert view.until(D0 + timedelta(days=15)).last_day <= cut  # never past the view's own cutoff
    assert h.until(cut) is not view and "views" not in h.memo

"""Segments: k chosen by the data, planted groups recovered, ids stable across runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from globolatte_dagster.lib import segments as S


def planted(n_per: int = 60, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Customer features with three well separated behaviours: morning hot coffee, iced fans, weekend food."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1, 2], n_per)
    centre = {
        "visits_per_week": [4.0, 2.0, 1.0],
        "spend_per_visit_usd": [4.0, 5.5, 12.0],
        "items_per_visit": [1.3, 1.1, 2.5],
        "hot_share": [0.8, 0.1, 0.3],
        "iced_share": [0.05, 0.85, 0.1],
        "none_share": [0.15, 0.05, 0.6],
        "morning_share": [0.9, 0.05, 0.3],
        "midday_share": [0.05, 0.15, 0.6],
        "afternoon_share": [0.03, 0.7, 0.1],
        "evening_share": [0.02, 0.1, 0.0],
        "mean_hour": [8.0, 15.0, 11.5],
        "weekend_share": [0.05, 0.3, 0.8],
        "weekend_lift": [0.2, 1.0, 3.0],
        "holiday_lift": [0.3, 1.0, 2.0],
        "weather_sensitivity": [0.0, 0.5, 0.1],
    }
    df = pd.DataFrame(
        {k: np.asarray(v)[groups] * rng.normal(1.0, 0.05, len(groups)) for k, v in centre.items()}
    )
    df["customer_id"] = [f"C{i:04d}" for i in range(len(groups))]
    cats = [{"coffee": 0.85, "pastry": 0.15}, {"coffee": 0.6, "blended": 0.4}, {"food": 0.6, "coffee": 0.4}]
    df["category_shares"] = [json.dumps(cats[g]) for g in groups]
    df["low_history"] = False
    for i in (1, 2, 3):
        df[f"fav_{i}_product"] = np.array(["P1", "P2", "P3"], dtype=object)[(groups + i) % 3]
        df[f"fav_{i}_weight"] = 1.0 / i
    return df, groups


def test_k_chosen_by_silhouette_recovers_planted_groups():
    df, groups = planted()
    seg = S.fit_segments(df, seed=0, k_range=range(2, 7))
    labels, dist = seg.assign(df)
    assert seg.k == 3
    assert max(seg.silhouette, key=seg.silhouette.get) == 3
    ari, shared = S.persona_agreement(
        pd.DataFrame({"customer_id": df["customer_id"], "segment": labels}),
        pd.DataFrame({"customer_id": df["customer_id"], "persona": groups}),
    )
    assert ari == pytest.approx(1.0) and shared == len(df)
    assert (dist >= 0).all()


def test_fixed_seed_gives_the_same_segments():
    df, _ = planted()
    a, _ = S.fit_segments(df, seed=3).assign(df)
    b, _ = S.fit_segments(df, seed=3).assign(df)
    assert (a == b).all()


def test_low_history_customers_are_assigned_but_do_not_shape_the_clusters():
    df, _groups = planted()
    odd = df.iloc[:1].copy()
    odd["customer_id"] = "NEW"
    odd["visits_per_week"] = 50.0  # one wild customer with one visit
    odd["low_history"] = True
    both = pd.concat([df, odd], ignore_index=True)
    seg = S.fit_segments(both, seed=0, k_range=range(2, 7))
    labels, _ = seg.assign(both)
    assert seg.k == 3 and len(labels) == len(both)


def test_segment_ids_are_aligned_with_the_previous_run():
    df, _groups = planted()
    seg = S.fit_segments(df, seed=0, k=3)
    labels, _ = seg.assign(df)
    previous = pd.DataFrame(
        {"customer_id": df["customer_id"], "segment": (labels + 1) % 3}
    )  # other numbering
    current = pd.DataFrame({"customer_id": df["customer_id"], "segment": labels})
    S.align_to_previous(seg, current, previous)
    aligned, _ = seg.assign(df)
    assert (aligned == previous["segment"].to_numpy()).all()
    ari, shared = S.stability(pd.DataFrame({"customer_id": df["customer_id"], "segment": aligned}), previous)
    assert ari == pytest.approx(1.0) and shared == len(df)


def test_stability_without_a_previous_run_is_none():
    assert S.stability(pd.DataFrame({"customer_id": ["A"], "segment": [0]}), None) == (None, 0)
    empty = pd.DataFrame({"customer_id": pd.Series(dtype=str), "segment": pd.Series(dtype=int)})
    assert S.stability(pd.DataFrame({"customer_id": ["A"], "segment": [0]}), empty) == (None, 0)


def test_too_few_customers_is_a_clear_error():
    df, _ = planted(n_per=1)
    with pytest.raises(ValueError, match="too few"):
        S.fit_segments(df.iloc[:1])


def test_profiles_show_size_products_and_serving_mix():
    df, _ = planted()
    labels, _ = S.fit_segments(df, seed=0, k=3).assign(df)
    prof = S.profiles(
        df, pd.DataFrame({"customer_id": df["customer_id"], "segment": labels}), {"P1": "Latte"}
    )
    assert prof["customers"].sum() == len(df) and len(prof) == 3
    assert {"top_products", "hot_share", "iced_share", "visits_per_week", "weekend_share"} <= set(
        prof.columns
    )
    assert prof["iced_share"].max() > 0.7  # the iced fans are visible

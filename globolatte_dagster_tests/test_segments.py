"""Segments: clustered on what customers buy, k chosen by the data, planted groups recovered, ids stable."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from globolatte_dagster.lib import segments as S
from globolatte_dagster.lib.recommend import data as D

PRODUCTS = pd.DataFrame(
    {
        "product_id": [f"P{i}" for i in range(8)],
        "product_name": [
            "Latte",
            "Espresso",
            "Iced Latte",
            "Cold Brew",
            "Croissant",
            "Sandwich",
            "Tea",
            "Muffin",
        ],
        "category": ["coffee", "coffee", "coffee", "coffee", "pastry", "food", "tea", "pastry"],
        "serving": ["hot", "hot", "iced", "iced", "none", "none", "hot", "none"],
    }
)
# Three behaviours: morning hot coffee, afternoon iced drinks, midday food with tea.
MIX = np.array(
    [
        [0.45, 0.35, 0.02, 0.02, 0.1, 0.02, 0.02, 0.02],
        [0.03, 0.02, 0.45, 0.4, 0.02, 0.02, 0.02, 0.04],
        [0.05, 0.02, 0.03, 0.02, 0.2, 0.35, 0.25, 0.08],
    ]
)
HOURS = (8, 15, 12)


def planted(
    n_per: int = 60, days: int = 60, seed: int = 0, visit_p: float = 0.25
) -> tuple[D.History, np.ndarray]:
    """A purchase history of three planted groups (each visit buys one or two products of its group's mix)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1, 2], n_per)
    rows = []
    start = date(2025, 1, 6)
    for c, g in enumerate(groups):
        for d in range(days):
            if rng.random() < visit_p:
                for p in set(rng.choice(8, size=1 + int(rng.random() < 0.4), p=MIX[g])):
                    hour = HOURS[g] + int(rng.integers(-1, 2))
                    rows.append((start + timedelta(days=d), f"C{c:04d}", f"P{p}", 1, 1, hour))
    lines = pd.DataFrame(
        rows, columns=["day", "customer_id", "product_id", "quantity", "transactions", "first_hour"]
    )
    weather = pd.DataFrame({"day": [], "temp_max_c": [], "precip_mm": []})
    return D.history_from_frames("america", lines, PRODUCTS, weather), groups


def _ari(h: D.History, mix: S.PurchaseMix, labels: np.ndarray, groups: np.ndarray) -> float:
    ids = h.customers[mix.customers]
    truth = pd.DataFrame({"customer_id": [f"C{i:04d}" for i in range(len(groups))], "persona": groups})
    return S.persona_agreement(pd.DataFrame({"customer_id": ids, "segment": labels}), truth)[0]


def test_k_chosen_by_silhouette_recovers_planted_groups():
    h, groups = planted()
    mix = S.purchase_mix(h)
    seg = S.fit_segments(mix, seed=0, k_range=range(2, 7))
    labels, dist = seg.assign_mix(mix)
    assert seg.k == 3 and max(seg.silhouette, key=seg.silhouette.get) == 3
    assert _ari(h, mix, labels, groups) == pytest.approx(1.0)
    assert (dist >= 0).all()


def test_the_segmenter_places_customers_at_an_earlier_cutoff_without_refitting():
    h, groups = planted()
    seg = S.fit_segments(S.purchase_mix(h), seed=0, k=3)
    early = h.until(date(2025, 1, 6) + timedelta(days=20))
    labels = seg.assign(early)
    known = early.known_customers()
    assert (labels[~known] == -1).all() and (labels[known] >= 0).all()
    mix = S.purchase_mix(early)
    assert _ari(early, mix, labels[mix.customers], groups) > 0.9  # three weeks already tell the groups apart


def test_fixed_seed_gives_the_same_segments():
    h, _ = planted()
    mix = S.purchase_mix(h)
    a, _ = S.fit_segments(mix, seed=3).assign_mix(mix)
    b, _ = S.fit_segments(mix, seed=3).assign_mix(mix)
    assert (a == b).all()


def test_low_history_customers_are_assigned_but_do_not_shape_the_clusters():
    h, _groups = planted()
    lines = pd.DataFrame(
        [(date(2025, 1, 10), "ODD", "P7", 5, 1, 23)],
        columns=["day", "customer_id", "product_id", "quantity", "transactions", "first_hour"],
    )
    base = pd.DataFrame(
        {
            "day": [date.fromordinal(int(d)) for d in h.day],
            "customer_id": h.customers[h.cust],
            "product_id": h.products[h.prod],
            "quantity": 1,
            "transactions": 1,
            "first_hour": h.hour,
        }
    )
    odd = D.history_from_frames(
        "america",
        pd.concat([base, lines]),
        PRODUCTS,
        pd.DataFrame(columns=["day", "temp_max_c", "precip_mm"]),
    )
    mix = S.purchase_mix(odd)
    seg = S.fit_segments(mix, seed=0, k_range=range(2, 7))
    labels, _ = seg.assign_mix(mix)
    assert seg.k == 3 and len(labels) == len(mix.customers)
    assert mix.visits[list(odd.customers[mix.customers]).index("ODD")] == 1


def test_segment_ids_are_aligned_with_the_previous_run():
    h, _ = planted()
    mix = S.purchase_mix(h)
    seg = S.fit_segments(mix, seed=0, k=3)
    labels, _ = seg.assign_mix(mix)
    ids = h.customers[mix.customers]
    previous = pd.DataFrame({"customer_id": ids, "segment": (labels + 1) % 3})  # other numbering
    S.align_to_previous(seg, pd.DataFrame({"customer_id": ids, "segment": labels}), previous)
    aligned, _ = seg.assign_mix(mix)
    assert (aligned == previous["segment"].to_numpy()).all()
    ari, shared = S.stability(pd.DataFrame({"customer_id": ids, "segment": aligned}), previous)
    assert ari == pytest.approx(1.0) and shared == len(ids)


def test_stability_without_a_previous_run_is_none():
    assert S.stability(pd.DataFrame({"customer_id": ["A"], "segment": [0]}), None) == (None, 0)
    empty = pd.DataFrame({"customer_id": pd.Series(dtype=str), "segment": pd.Series(dtype=int)})
    assert S.stability(pd.DataFrame({"customer_id": ["A"], "segment": [0]}), empty) == (None, 0)


def test_one_or_two_customers_make_one_segment_and_none_is_a_clear_error():
    h, _ = planted(n_per=1, days=1, visit_p=1.0)
    mix = S.purchase_mix(h)
    two = S.PurchaseMix(mix.customers[:2], mix.visits[:2], {n: b.iloc[:2] for n, b in mix.blocks.items()})
    seg = S.fit_segments(two)
    assert seg.k == 1 and (seg.assign_mix(two)[0] == 0).all()
    none = S.PurchaseMix(mix.customers[:0], mix.visits[:0], {n: b.iloc[:0] for n, b in mix.blocks.items()})
    with pytest.raises(ValueError, match="nothing to segment"):
        S.fit_segments(none)


def test_profiles_show_size_products_and_serving_mix():
    h, _ = planted()
    mix = S.purchase_mix(h)
    labels, _ = S.fit_segments(mix, seed=0, k=3).assign_mix(mix)
    prof = S.profiles(mix, labels, h.product_names)
    assert prof["customers"].sum() == len(mix.customers) and len(prof) == 3
    assert {
        "top_products",
        "hot_share",
        "iced_share",
        "visits_per_week",
        "weekend_share",
        "main_time",
    } <= set(prof.columns)
    assert prof["iced_share"].max() > 0.7  # the iced fans are visible
    assert "Iced Latte" in prof.loc[prof["iced_share"].idxmax(), "top_products"]

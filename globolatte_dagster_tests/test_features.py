"""Customer features: SQL in the warehouse, point in time, identical on DuckDB and Snowflake (fakesnow)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from globolatte_dagster.lib import features as F
from globolatte_dagster.lib.recommend import data as D
from globolatte_dagster.lib.recommend.context import temp_band
from globolatte_dagster.lib.reference import build_calendar
from globolatte_dagster.lib.schema import PURCHASE_HISTORY, SALES, WEATHER
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.ml_data import FakesnowWarehouse, load_duckdb

D0 = date(2025, 7, 1)  # a Tuesday; 2025-07-04 is a US holiday


def _sale(
    day: int, tid: str, pid: str, cid: str | None, qty: int, price: float, hour: int, region: str = "canada"
):
    d = D0 + timedelta(days=day)
    return {
        "region": region,
        "day": pd.Timestamp(d),
        "transaction_id": tid,
        "business_unit": "BU_CA",
        "product_id": pid,
        "customer_id": cid,
        "quantity": qty,
        "total_price": price,
        "transaction_date": pd.Timestamp(f"{d} {hour:02d}:15:00"),
        "payment_method": "cash",
        "extra": None,
        "source_file": "f.csv",
        "source_line": 2,
    }


def tiny_frames() -> dict[str, pd.DataFrame]:
    """Three products, two loyalty customers and a guest in Canada over six days, hot and cold days."""
    sales = [
        _sale(0, "T1", "P1", "C1", 1, 4.0, 8),  # cold day: hot latte
        _sale(0, "T1", "P3", "C1", 2, 6.0, 8),
        _sale(1, "T2", "P1", "C1", 1, 4.0, 9),
        _sale(2, "T3", "P2", "C1", 1, 5.0, 15),  # hot day: iced latte
        _sale(3, "T4", "P2", "C1", 1, 5.0, 16),
        _sale(3, "T5", "P1", None, 1, 4.0, 12),  # guest
        _sale(2, "T6", "P3", "C2", 1, 3.0, 18),
        _sale(5, "T7", "P2", "C1", 1, 5.0, 14),  # after the cutoff of most tests
    ]
    weather = pd.DataFrame(
        {
            "region": "canada",
            "day": [pd.Timestamp(D0 + timedelta(days=i)) for i in range(6)],
            "temp_max_c": [12.0, 14.0, 29.0, 31.0, 20.0, 33.0],
            "temp_min_c": [5.0, 6.0, 19.0, 20.0, 12.0, 22.0],
            "precip_mm": [0.0, 3.0, 0.0, 0.0, 0.0, 0.0],
            "source_file": "w.csv",
        }
    )
    products = pd.DataFrame(
        {
            "product_id": ["P1", "P2", "P3"],
            "product_name": ["Latte", "Iced Latte", "Croissant"],
            "category": ["coffee", "coffee", "pastry"],
            "price": [3.5, 4.0, 2.8],
            "serving": ["hot", "iced", "none"],
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "email_hash": [None, None],
            "location": ["Toronto"] * 2,
            "signup_date": [pd.NaT, pd.NaT],
        }
    )
    return {
        "sales": pd.DataFrame(sales)[SALES.column_names],
        "weather": weather[WEATHER.column_names],
        "products": products,
        "customers": customers,
        "calendar": build_calendar(D0 - timedelta(days=10), D0 + timedelta(days=20)),
    }


@pytest.fixture
def duck(tmp_path) -> DuckDBWarehouse:
    path = str(tmp_path / "wh.duckdb")
    load_duckdb(path, tiny_frames())
    return DuckDBWarehouse(database=path)


CUTOFF = D0 + timedelta(days=3)


def test_features_rfm_in_usd_guests_excluded_low_history_flagged(duck):
    df = F.customer_features(duck.query, "canada", CUTOFF).set_index("customer_id")
    assert sorted(df.index) == ["C1", "C2"]  # the guest is not a customer
    c1, c2 = df.loc["C1"], df.loc["C2"]
    assert c1["n_transactions"] == 4 and c1["n_visit_days"] == 4 and c1["n_items"] == 6
    assert c1["recency_days"] == 0 and c1["tenure_days"] == 3
    assert c1["monetary_usd"] == pytest.approx((4 + 6 + 4 + 5 + 5) * 0.73)  # CAD into USD
    assert c1["hot_share"] == pytest.approx(2 / 6) and c1["iced_share"] == pytest.approx(2 / 6)
    assert c1["morning_share"] == pytest.approx(0.5) and c1["afternoon_share"] == pytest.approx(0.5)
    assert c1["fav_1_product"] in {"P1", "P2"} and c1["fav_3_product"] == "P3"
    assert json.loads(c1["category_shares"]) == pytest.approx({"coffee": 4 / 6, "pastry": 2 / 6})
    assert not c1["low_history"] and c2["low_history"]  # one visit: flagged, not dropped


def test_weather_sensitivity_iced_on_warm_days_against_cold_days(duck):
    c1 = F.customer_features(duck.query, "canada", CUTOFF).set_index("customer_id").loc["C1"]
    # median of 12, 14, 29, 31 is 21.5: both iced lattes on warm days, both hot ones on cold days
    assert c1["region_median_temp"] == pytest.approx(21.5)
    assert c1["iced_share_warm"] == 1.0 and c1["iced_share_cold"] == 0.0
    assert c1["weather_sensitivity"] == 1.0
    assert (c1["n_tx_t2"], c1["n_tx_t5"], c1["n_tx_t6"]) == (2, 1, 1)  # 12 and 14 °C; 29 °C; 31 °C


def test_no_data_after_the_cutoff(duck):
    before = F.customer_features(duck.query, "canada", CUTOFF)
    duck.execute("DELETE FROM raw.sales WHERE day > ?", [CUTOFF.isoformat()])
    duck.execute("DELETE FROM raw.weather WHERE day > ?", [CUTOFF.isoformat()])
    after = F.customer_features(duck.query, "canada", CUTOFF)
    pd.testing.assert_frame_equal(before, after)


def test_many_cutoffs_equal_one_cutoff_at_a_time(duck):
    many = F.customer_features(duck.query, "canada", D0, D0 + timedelta(days=5))
    for k in range(6):
        one = F.customer_features(duck.query, "canada", D0 + timedelta(days=k))
        part = many[many["as_of"] == pd.Timestamp(D0 + timedelta(days=k))].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, one)


def _purchase_history(warehouse) -> pd.DataFrame:
    warehouse.execute(PURCHASE_HISTORY.ddl(warehouse.dialect))
    warehouse.execute(D.PURCHASE_HISTORY_DELETE_SQL, ["canada"])
    warehouse.execute(D.PURCHASE_HISTORY_SQL, ["canada"])
    out = warehouse.query(
        "SELECT day, customer_id, product_id, quantity, transactions, first_hour FROM core.purchase_history "
        "WHERE region = ? ORDER BY day, customer_id NULLS FIRST, product_id",
        ["canada"],
    )
    out.columns = [c.lower() for c in out.columns]
    out["day"] = pd.to_datetime(out["day"])
    return out.astype({"quantity": "int64", "transactions": "int64", "first_hour": "int64"})


def test_purchase_history_has_one_row_per_day_customer_and_product_and_guests_per_product(duck):
    ph = _purchase_history(duck)
    sales = duck.query("SELECT * FROM raw.sales WHERE region = 'canada'")
    assert ph["quantity"].sum() == sales["quantity"].sum()  # nothing lost, nothing doubled
    assert not ph.duplicated(["day", "customer_id", "product_id"]).any()
    guests = ph[ph["customer_id"].isna()]
    assert len(guests) and (guests["transactions"] >= 1).all()
    history = D.load_history(duck.query, "canada")
    assert set(history.customers) == set(sales["customer_id"].dropna())
    assert history.pop_n.sum() == ph["transactions"].sum()  # popularity counts guests too


def test_region_without_weather_still_has_features(duck):
    duck.execute("DELETE FROM raw.weather")
    c1 = F.customer_features(duck.query, "canada", CUTOFF).set_index("customer_id").loc["C1"]
    assert np.isnan(c1["weather_sensitivity"]) and c1["n_transactions"] == 4


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="unknown region"):
        F._params("atlantis", D0, D0, F.FeatureParams())
    with pytest.raises(ValueError, match="after"):
        F._params("canada", D0, D0 - timedelta(days=1), F.FeatureParams())
    with pytest.raises(ValueError):
        F.FeatureParams(lookback_days=0)


def test_temperature_bands_match_the_sql():
    assert list(temp_band(np.array([-3.0, 5.0, 14.9, 30.0, np.nan]))[:4]) == [0, 1, 2, 6]
    assert np.isnan(temp_band(np.array([np.nan]))[0])


@pytest.mark.azure
@pytest.mark.filterwarnings("ignore:Arrow output:UserWarning")
def test_same_sql_on_snowflake_dialect_fakesnow(duck):
    fakesnow = pytest.importorskip("fakesnow")
    with fakesnow.patch():
        snow = FakesnowWarehouse()
        snow.load(tiny_frames())
        a = F.customer_features(duck.query, "canada", D0, D0 + timedelta(days=5))
        b = F.customer_features(snow.query, "canada", D0, D0 + timedelta(days=5))
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=1e-9)
        pd.testing.assert_frame_equal(_purchase_history(duck), _purchase_history(snow), check_dtype=False)

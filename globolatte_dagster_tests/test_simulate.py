"""The simulator: determinism, the landing contract, the broken rows it owns up to, and the planted effects.

Rules are checked here with plain pandas, independently of the simulator's code path.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import holidays
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from globolatte_dagster.lib.contract import (
    PAYMENT_METHODS,
    REGION_KEYS,
    REGIONS,
    SALES_COLUMNS,
    WEATHER_COLUMNS,
    parse_landing_path,
)
from globolatte_dagster.simulate import SimConfig, last_sales_day, simulate, write_day
from globolatte_dagster.simulate.cli import simulate as simulate_command

START = date(2025, 1, 1)
DAYS = 60
CUSTOMERS = 400
BROKEN_SHARE = 0.02
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sim")
    summary = simulate(
        root / "landing", root / "truth", START, DAYS, CUSTOMERS, seed=11, broken_share=BROKEN_SHARE
    )
    landing, truth = root / "landing", root / "truth"
    products = pd.read_csv(landing / "reference/products.csv", dtype=str, keep_default_na=False)
    customers = pd.read_csv(landing / "reference/customers.csv", dtype=str, keep_default_na=False)
    frames = []
    for path in sorted((landing / "sales").rglob("*.csv")):
        rel = path.relative_to(landing).as_posix()
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame["_file"] = rel
        frame["_line"] = np.arange(len(frame)) + 2
        frame["_region"] = path.parts[-3]
        frame["_day"] = path.parts[-2]
        frames.append(frame)
    sales = pd.concat(frames, ignore_index=True)
    return {
        "landing": landing,
        "truth": truth,
        "summary": summary,
        "products": products,
        "customers": customers,
        "sales": sales,
        "broken": pd.read_csv(truth / "broken_rows.csv", dtype=str, keep_default_na=False),
    }


def _rule_breaking(sales: pd.DataFrame, products: pd.DataFrame) -> pd.Series:
    """Rows that break a rule of the DESIGN.md sales contract, found with plain pandas."""
    bad_product = ~sales["product_id"].isin(products["product_id"])
    qty_text = sales["quantity"].str.fullmatch(r"\d+")
    bad_quantity = ~qty_text | (pd.to_numeric(sales["quantity"], errors="coerce").fillna(0) < 1)
    expected_bu = sales["_region"].map({k: r.business_unit for k, r in REGIONS.items()})
    bad_bu = sales["business_unit"] != expected_bu
    ts = pd.to_datetime(sales["transaction_date"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    bad_ts = (
        ts.isna()
        | ~sales["transaction_date"].str.match(TS_RE)
        | (ts.dt.strftime("%Y-%m-%d") != sales["_day"])
    )
    bad_payment = ~sales["payment_method"].isin(PAYMENT_METHODS)
    price = pd.to_numeric(sales["total_price"], errors="coerce")
    bad_price = price.isna() | (price < 0)
    dup = sales.duplicated(["_region", "_day", "transaction_id", "product_id"], keep=False)
    return bad_product | bad_quantity | bad_bu | bad_ts | bad_payment | bad_price | dup


def test_same_seed_same_bytes_other_seed_different(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate(
            tmp_path / name / "landing",
            tmp_path / name / "truth",
            START,
            12,
            120,
            seed,
            regions=("canada", "mexico"),
        )
        runs[name] = _tree(tmp_path / name)
    assert len(runs["a"]) > 30
    assert runs["a"] == runs["b"]
    differing = [k for k in runs["a"] if k.startswith("landing/sales/") and runs["a"][k] != runs["c"].get(k)]
    assert len(differing) >= 12  # every sales day differs with another seed


def test_paths_and_reference_files_match_the_contract(sim: dict) -> None:
    landing = sim["landing"]
    kinds = {"sales": 0, "weather": 0, "reference": 0}
    for path in landing.rglob("*"):
        if path.is_file():
            kinds[parse_landing_path(path.relative_to(landing).as_posix()).kind] += 1
    assert kinds["reference"] == 3 and kinds["sales"] >= DAYS * len(REGION_KEYS)

    products, customers = sim["products"], sim["customers"]
    assert list(products.columns) == ["product_id", "product_name", "category", "price", "serving"]
    assert products["product_id"].is_unique and 25 <= len(products) <= 36
    assert set(products["serving"]) == {"hot", "iced", "none"}
    assert (pd.to_numeric(products["price"]) > 0).all()
    assert list(customers.columns) == ["customer_id", "customer_name", "email", "location", "signup_date"]
    assert customers["customer_id"].is_unique and len(customers) == CUSTOMERS * len(REGION_KEYS)
    assert customers["email"].str.fullmatch(r"[a-z.]+\d+@example\.(com|org|net)").all()
    assert set(customers["location"]) == {r.city for r in REGIONS.values()}
    assert (pd.to_datetime(customers["signup_date"]) < pd.Timestamp(START)).all()
    units = pd.read_csv(landing / "reference/business_units.csv", dtype=str)
    assert dict(zip(units["region"], units["business_unit"], strict=True)) == {
        k: r.business_unit for k, r in REGIONS.items()
    }


def test_sales_follow_the_contract_except_exactly_the_listed_broken_rows(sim: dict) -> None:
    sales, products, broken = sim["sales"], sim["products"], sim["broken"]
    extra = set(sales.columns) - set(SALES_COLUMNS) - {"_file", "_line", "_region", "_day"}
    assert extra <= {"store_id"}
    bad = _rule_breaking(sales, products)
    found = set(zip(sales.loc[bad, "_file"], sales.loc[bad, "_line"].astype(str), strict=True))
    listed = set(zip(broken["file"], broken["line"], strict=True))
    assert len(listed) > 100
    assert found == listed
    assert set(broken["kind"]) == {"unknown_product", "bad_quantity", "wrong_business_unit", "bad_timestamp"}
    share = len(listed) / len(sales)
    assert BROKEN_SHARE / 2 < share < BROKEN_SHARE * 2

    # Each listed row is broken in the way its kind says, and its ids match the file.
    rows = broken.merge(
        sales.assign(line=sales["_line"].astype(str)), left_on=["file", "line"], right_on=["_file", "line"]
    )
    assert len(rows) == len(broken)
    assert (rows["transaction_id_x"] == rows["transaction_id_y"]).all()
    assert (rows["product_id_x"] == rows["product_id_y"]).all()
    kind = rows["kind"]
    assert (~rows.loc[kind == "unknown_product", "product_id_y"].isin(products["product_id"])).all()
    assert (~rows.loc[kind == "bad_quantity", "quantity"].str.fullmatch(r"[1-9]\d*")).all()
    expected_bu = rows["_region"].map({k: r.business_unit for k, r in REGIONS.items()})
    assert (
        rows.loc[kind == "wrong_business_unit", "business_unit"] != expected_bu[kind == "wrong_business_unit"]
    ).all()
    ts = pd.to_datetime(
        rows.loc[kind == "bad_timestamp", "transaction_date"], format="%Y-%m-%d %H:%M:%S", errors="coerce"
    )
    assert ts.isna().all()

    # Valid rows: prices are quantity x catalogue price in local currency; ~10% guest rows.
    good = sales[~bad].merge(products[["product_id", "price"]], on="product_id")
    rate = good["_region"].map({k: r.usd_per_unit for k, r in REGIONS.items()})
    expected = (good["quantity"].astype(int) * good["price"].astype(float) / rate).round(2)
    assert np.allclose(good["total_price"].astype(float), expected, atol=0.011)
    assert good["total_price"].str.fullmatch(r"\d+\.\d{2}").all()
    guests = (good["customer_id"] == "").mean()
    assert 0.05 < guests < 0.2
    members = good.loc[good["customer_id"] != "", ["customer_id", "_region"]]
    owners = sim["customers"].set_index("customer_id")["location"]
    city = members["_region"].map({k: r.city for k, r in REGIONS.items()})
    assert (members["customer_id"].map(owners) == city).all()
    per_tx = good.groupby(["_region", "_day", "transaction_id"]).size()
    assert per_tx.max() <= 3 and (per_tx > 1).mean() > 0.2


def test_some_days_arrive_as_several_store_files_with_free_column_order(sim: dict) -> None:
    sales_dir = sim["landing"] / "sales"
    per_day = [len(list(d.glob("*.csv"))) for d in sales_dir.glob("*/*")]
    multi = sum(n > 1 for n in per_day) / len(per_day)
    assert 0.05 < multi < 0.3 and max(per_day) <= 3
    headers = {p.open(encoding="utf-8").readline().strip() for p in sales_dir.rglob("store_*.csv")}
    assert ",".join(SALES_COLUMNS) not in headers or len(headers) > 1
    assert any("store_id" in h for h in headers)
    assert any(
        h.replace(",store_id", "").replace("store_id,", "") != ",".join(SALES_COLUMNS) for h in headers
    )


def test_weather_for_every_sales_day_plus_forecast_and_missing_days_listed(sim: dict) -> None:
    landing, truth = sim["landing"], sim["truth"]
    missing = pd.read_csv(truth / "missing_weather.csv", dtype=str)
    missing_set = set(zip(missing["region"], missing["day"], strict=True))
    for region in REGION_KEYS:
        files = {p.stem: p for p in (landing / "weather" / region).glob("*.csv")}
        for i in range(DAYS + 3):
            day = (START + timedelta(days=i)).isoformat()
            if i < DAYS and (region, day) in missing_set:
                assert day not in files
                continue
            frame = pd.read_csv(files[day])
            assert tuple(frame.columns) == WEATHER_COLUMNS and len(frame) == 1
            row = frame.iloc[0]
            assert row["date"] == day and row["temp_min_c"] < row["temp_max_c"] and row["precip_mm"] >= 0
        assert len(files) == DAYS + 3 - sum(r == region for r, _ in missing_set)
    t = {
        r: pd.concat([pd.read_csv(p) for p in (landing / "weather" / r).glob("*.csv")])["temp_max_c"].mean()
        for r in REGION_KEYS
    }
    assert t["mexico"] > t["america"] > t["canada"]  # Mexico City > New York > Toronto in Jan-Feb


def _valid(sim: dict) -> pd.DataFrame:
    sales = sim["sales"]
    good = sales[~_rule_breaking(sales, sim["products"])]
    return good.merge(sim["products"], on="product_id")


def test_iced_share_rises_on_hot_days(sim: dict) -> None:
    good = _valid(sim)
    good = good[(good["_region"] == "mexico") & (good["serving"] != "none")]
    weather = pd.concat(
        [pd.read_csv(p) for p in (sim["landing"] / "weather" / "mexico").glob("*.csv")]
    ).set_index("date")["temp_max_c"]
    good = good.assign(t=good["_day"].map(weather)).dropna(subset=["t"])
    low, high = good["t"].quantile([1 / 3, 2 / 3])
    iced = good["serving"] == "iced"
    cold, hot = iced[good["t"] <= low].mean(), iced[good["t"] >= high].mean()
    assert hot > cold * 1.3 and hot - cold > 0.08


def test_holidays_weekends_and_regions_change_what_is_sold(sim: dict) -> None:
    good = _valid(sim)
    us = good[good["_region"] == "america"]
    per_day = us.groupby("_day")["transaction_id"].nunique()
    days = pd.to_datetime(per_day.index)
    us_holidays = holidays.country_holidays("US")
    is_holiday = np.array([d.date() in us_holidays for d in days])
    assert is_holiday.sum() >= 2  # New Year, MLK day, Presidents' Day
    weekday = days.weekday
    comparable = per_day[~is_holiday & np.isin(weekday, weekday[is_holiday])]
    assert abs(per_day[is_holiday].mean() / comparable.mean() - 1) > 0.1

    # Weekends: more food, and a later, different crowd.
    weekend = pd.to_datetime(good["_day"]).dt.weekday >= 5
    food_we = (good.loc[weekend, "category"] == "food").mean()
    food_wd = (good.loc[~weekend, "category"] == "food").mean()
    assert food_we > food_wd * 1.3

    # Regional specialities are sold only in their region (and are sold there).
    specials = {
        "Maple Latte": "canada",
        "Butter Tart": "canada",
        "Café de Olla": "mexico",
        "Horchata Frappé": "mexico",
        "Concha": "mexico",
        "Pumpkin Spice Latte": "america",
    }
    for name, region in specials.items():
        regions = set(good.loc[good["product_name"] == name, "_region"])
        assert regions == {region}, name


def test_personas_cover_every_customer_and_behave_differently(sim: dict) -> None:
    personas = pd.read_csv(sim["truth"] / "personas.csv", dtype=str)
    assert set(personas["customer_id"]) == set(sim["customers"]["customer_id"])
    assert personas["customer_id"].is_unique and 5 <= personas["persona"].nunique() <= 6
    good = _valid(sim)
    good = good[good["customer_id"] != ""].merge(personas[["customer_id", "persona"]], on="customer_id")
    ts = pd.to_datetime(good["transaction_date"])
    good = good.assign(hour=ts.dt.hour, weekend=ts.dt.weekday >= 5)
    by = good.groupby("persona")
    assert by["weekend"].mean().idxmax() == "weekend_brunch"
    assert by["hour"].mean().idxmin() == "morning_commuter"
    assert (good["category"] == "tea").groupby(good["persona"]).mean().idxmax() == "tea_lover"
    assert (good["serving"] == "iced").groupby(good["persona"]).mean().idxmax() == "iced_drink_fan"
    assert good["category"].isin(["pastry"]).groupby(good["persona"]).mean().idxmax() == "pastry_snacker"

    # Strong repeat buying: a customer's top 3 products cover most of their purchases.
    counts = good.groupby(["customer_id", "product_id"]).size()
    top3 = counts.groupby(level=0).apply(lambda s: s.nlargest(3).sum() / s.sum())
    assert top3.median() > 0.6


def test_live_days_equal_batch_days(tmp_path: Path) -> None:
    simulate(tmp_path / "batch/landing", tmp_path / "batch/truth", START, 8, 100, 5, regions=REGION_KEYS)
    simulate(tmp_path / "live/landing", tmp_path / "live/truth", START, 5, 100, 5, regions=REGION_KEYS)
    config = SimConfig(seed=5, start=START, customers=100)
    for i in range(5, 8):
        write_day(tmp_path / "live/landing", tmp_path / "live/truth", START + timedelta(days=i), config)
    batch, live = _tree(tmp_path / "batch"), _tree(tmp_path / "live")
    assert batch.keys() == live.keys()
    assert [k for k in batch if batch[k] != live[k]] == []


def test_truth_must_live_outside_the_landing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside"):
        simulate(tmp_path / "landing", tmp_path / "landing" / "truth", START, 1, 10, 1)


def test_cli_simulate_if_empty_and_live(tmp_path: Path) -> None:
    landing, truth = tmp_path / "landing", tmp_path / "truth"
    args = [
        "--landing",
        str(landing),
        "--truth",
        str(truth),
        "--days",
        "3",
        "--customers",
        "50",
        "--seed",
        "2",
    ]
    runner = CliRunner()
    first = runner.invoke(simulate_command, [*args, "--start", "2025-03-01"])
    assert first.exit_code == 0, first.output
    assert last_sales_day(landing) == date(2025, 3, 3)
    assert (truth / "broken_rows.csv").exists() and not (landing / "broken_rows.csv").exists()
    before = _tree(landing)

    second = runner.invoke(simulate_command, [*args, "--if-empty", "--seed", "99"])
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.output
    assert _tree(landing) == before

    live = runner.invoke(
        simulate_command, [*args, "--if-empty", "--live", "--interval", "0", "--max-live-days", "2"]
    )
    assert live.exit_code == 0, live.output
    assert last_sales_day(landing) == date(2025, 3, 5)
    assert "2025-03-04" in live.output and "2025-03-05" in live.output
    assert (landing / "weather/canada/2025-03-08.csv").exists()  # forecasts refreshed past the new last day
    after = _tree(landing)
    old_sales = {k: v for k, v in before.items() if k.startswith("sales/")}
    assert {k: after[k] for k in old_sales} == old_sales  # live mode only adds days

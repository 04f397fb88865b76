"""The simulator: determinism, the landing contract, the broken rows it owns up to, and the planted effects;
its profiles (friendly, realistic, export), its scenarios, and live mode.

Rules are checked here with plain pandas, independently of the simulator's code path.
"""

from __future__ import annotations

import csv
import hashlib
import json
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
from globolatte_dagster.simulate import SimConfig, last_sales_day, load_config, simulate, write_day
from globolatte_dagster.simulate.cli import simulate as simulate_command

START = date(2025, 1, 1)
DAYS = 60
CUSTOMERS = 400
BROKEN_SHARE = 0.02
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_sales(landing: Path) -> pd.DataFrame:
    frames = []
    for path in sorted((landing / "sales").rglob("*.csv")):
        rel = path.relative_to(landing).as_posix()
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame["_file"] = rel
        frame["_line"] = np.arange(len(frame)) + 2
        frame["_region"] = path.parts[-3]
        frame["_day"] = path.parts[-2]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sim")
    summary = simulate(
        root / "landing", root / "truth", START, DAYS, CUSTOMERS, seed=11, broken_share=BROKEN_SHARE
    )
    landing, truth = root / "landing", root / "truth"
    products = pd.read_csv(landing / "reference/products.csv", dtype=str, keep_default_na=False)
    customers = pd.read_csv(landing / "reference/customers.csv", dtype=str, keep_default_na=False)
    sales = _read_sales(landing)
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


# ------------------------------------------------------------------------------------------------ profiles
def _digest(root: Path) -> str:
    """sha256 over every file under `root` (path and bytes), the ground truth's parameters.json aside."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel != "truth/parameters.json":
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


# The files of a friendly run (landing and ground truth, parameters.json aside) as the simulator wrote them
# before it had profiles (commit 700d97f): the data every benchmark and ML test is built on. NumPy may change
# a random stream and `holidays` a calendar between versions, so the digest holds for these versions only.
FRIENDLY_GOLDEN = {
    "numpy": "2.4.6",
    "pandas": "2.3.3",
    "holidays": "0.109",
    "sha256": "cabe741b5908dff54d7cf0a25ea612686ba4841abb6324d64d7714ee2d70b8c7",
}


def test_friendly_profile_writes_the_same_files_as_before_profiles(tmp_path: Path) -> None:
    import importlib.metadata

    versions = {name: importlib.metadata.version(name) for name in ("numpy", "pandas", "holidays")}
    if any(versions[name] != FRIENDLY_GOLDEN[name] for name in versions):
        pytest.skip(f"digest recorded with other library versions than {versions}")
    # Holiday season (seasonal and festive items), split days and broken rows: every code path of a day.
    simulate(tmp_path / "landing", tmp_path / "truth", date(2024, 11, 10), 70, 300, 7)
    assert _digest(tmp_path) == FRIENDLY_GOLDEN["sha256"]
    params = json.loads((tmp_path / "truth/parameters.json").read_text())
    assert params["profile"]["name"] == "friendly" and params["scenario"] is None


REALISTIC_CUSTOMERS = 600


def _load(landing: Path, truth: Path) -> dict:
    return {
        "landing": landing,
        "truth": truth,
        "products": pd.read_csv(landing / "reference/products.csv", dtype=str, keep_default_na=False),
        "sales": _read_sales(landing),
        "params": json.loads((truth / "parameters.json").read_text()),
    }


@pytest.fixture(scope="module")
def realistic(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("realistic")
    simulate(root / "landing", root / "truth", START, DAYS, REALISTIC_CUSTOMERS, seed=11, profile="realistic")
    return _load(root / "landing", root / "truth")


def _visit_days(sales: pd.DataFrame) -> pd.Series:
    members = sales[sales["customer_id"] != ""]
    return members.groupby(["_region", "customer_id"])["_day"].nunique()


def test_realistic_most_customers_visit_one_to_three_times_around_a_loyal_core(realistic, sim) -> None:
    for region, visits in _visit_days(realistic["sales"]).groupby(level=0):
        assert visits.median() <= 3, region
        assert (visits <= 3).mean() > 0.6, region
        assert visits.quantile(0.95) >= 10, region  # a small loyal core still comes back often
    assert _visit_days(sim["sales"]).median() > 10  # the friendly profile: everyone a regular


def _new_buyer_shares(sales: pd.DataFrame) -> tuple[dict[str, float], float]:
    members = sales[sales["customer_id"] != ""]
    cut = sorted(members["_day"].unique())[-14]
    shares, new, buyers = {}, 0, 0
    for region, g in members.groupby("_region"):
        first = g.groupby("customer_id")["_day"].min()
        recent = g.loc[g["_day"] >= cut, "customer_id"].unique()
        is_new = first[recent] >= cut
        shares[region] = float(is_new.mean())
        new, buyers = new + int(is_new.sum()), buyers + len(recent)
    return shares, new / buyers


def test_realistic_about_a_fifth_of_the_last_14_days_buyers_are_new(realistic, sim) -> None:
    shares, pooled = _new_buyer_shares(realistic["sales"])
    assert 0.14 <= pooled <= 0.26, shares
    assert all(0.07 < s < 0.35 for s in shares.values()), shares
    assert _new_buyer_shares(sim["sales"])[1] < 0.05


def test_realistic_product_launched_halfway_sells_only_from_its_day_and_well(realistic) -> None:
    launches = pd.read_csv(realistic["truth"] / "launches.csv", dtype=str)
    assert set(launches["region"]) == set(REGION_KEYS) and launches["product_id"].nunique() == 1
    pid, day = launches["product_id"].iloc[0], launches["launch_day"].iloc[0]
    assert abs((date.fromisoformat(day) - START).days - DAYS / 2) <= 1
    assert pid in set(realistic["products"]["product_id"])  # on products.csv from the start
    adopters = pd.read_csv(realistic["truth"] / "adopters.csv", dtype=str)
    assert (adopters["adoption_day"] >= day).all() and len(adopters) > 0.2 * REALISTIC_CUSTOMERS
    for region, g in realistic["sales"].groupby("_region"):
        before, after = g[g["_day"] < day], g[g["_day"] >= day]
        assert (before["product_id"] == pid).sum() == 0, region
        tx_share = (
            after.loc[after["product_id"] == pid, "transaction_id"].nunique()
            / after["transaction_id"].nunique()
        )
        assert tx_share > 0.05, region
        assert pid in after["product_id"].value_counts().index[:5], region


def test_realistic_has_a_single_store_region_and_a_region_without_weather(realistic) -> None:
    landing, profile = realistic["landing"], realistic["params"]["profile"]
    assert profile["single_store_regions"] == ["mexico"] and profile["no_weather_regions"] == ["canada"]
    mexico = {d.name: sorted(p.name for p in d.glob("*.csv")) for d in (landing / "sales/mexico").iterdir()}
    assert len(mexico) == DAYS and all(files == ["sales.csv"] for files in mexico.values())
    assert any(len(list(d.glob("*.csv"))) > 1 for d in (landing / "sales/america").iterdir())
    assert not (landing / "weather/canada").exists()
    assert (landing / "sales/canada").exists()
    for region in ("america", "mexico"):
        assert len(list((landing / "weather" / region).glob("*.csv"))) >= DAYS - 5


def _iced_gap(data: dict, exclude: set[str]) -> float:
    """Iced share of drinks on the hottest third of days minus the coldest third, in mexico."""
    sales = data["sales"]
    good = sales[~_rule_breaking(sales, data["products"])].merge(data["products"], on="product_id")
    good = good[
        (good["_region"] == "mexico") & (good["serving"] != "none") & ~good["product_id"].isin(exclude)
    ]
    weather = pd.concat(
        [pd.read_csv(p) for p in (data["landing"] / "weather" / "mexico").glob("*.csv")]
    ).set_index("date")["temp_max_c"]
    good = good.assign(t=good["_day"].map(weather)).dropna(subset=["t"])
    low, high = good["t"].quantile([1 / 3, 2 / 3])
    iced = good["serving"] == "iced"
    return float(iced[good["t"] >= high].mean() - iced[good["t"] <= low].mean())


def test_realistic_weather_moves_choices_far_less_than_friendly(realistic, sim) -> None:
    launched = set(realistic["params"]["launches"])  # launched mid-period: its iced sales follow the date
    assert _iced_gap(realistic, launched) < 0.5 * _iced_gap(sim, set())


def test_realistic_personas_are_planted_for_every_customer(realistic) -> None:
    truth, landing = realistic["truth"], realistic["landing"]
    personas = pd.read_csv(truth / "personas.csv", dtype=str)
    customers = pd.read_csv(landing / "reference/customers.csv", dtype=str)
    assert (
        set(personas["customer_id"]) == set(customers["customer_id"]) and personas["persona"].nunique() == 6
    )
    assert set(personas["visit_tier"]) == {"core", "tail"}
    assert 0.03 <= (personas["visit_tier"] == "core").mean() <= 0.3
    sales = realistic["sales"]
    good = sales[~_rule_breaking(sales, realistic["products"])].merge(realistic["products"], on="product_id")
    core = good.merge(personas[personas["visit_tier"] == "core"], on="customer_id")
    hour = pd.to_datetime(core["transaction_date"]).dt.hour
    assert hour.groupby(core["persona"]).mean().idxmin() == "morning_commuter"
    assert (core["category"] == "tea").groupby(core["persona"]).mean().idxmax() == "tea_lover"


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("export")
    args = ["--profile", "export", "--landing", str(root / "landing"), "--truth", str(root / "truth")]
    result = CliRunner().invoke(simulate_command, [*args, "--customers", "300", "--seed", "4"])
    assert result.exit_code == 0, result.output
    return _load(root / "landing", root / "truth")


def test_export_profile_is_one_unit_in_2019_without_weather_with_a_longer_menu_and_guests(export) -> None:
    landing, sales = export["landing"], export["sales"]
    assert sorted(p.name for p in (landing / "sales").iterdir()) == ["america"]
    days = sorted(sales["_day"].unique())
    assert days[0] == "2019-04-01" and len(days) == 30 and days[-1] == "2019-04-30"
    assert not (landing / "weather").exists()
    assert (sales["business_unit"] == "BU_US").mean() > 0.99  # the rest are the deliberately broken rows
    assert len(export["products"]) > 50 and sales["product_id"].nunique() > 40
    assert 0.15 < (sales["customer_id"] == "").mean() < 0.6
    for day in (landing / "sales/america").iterdir():  # three outlets a day, each file with its store_id
        files = sorted(day.glob("*.csv"))
        assert len(files) == 3 and all("store_id" in f.open().readline() for f in files)


def test_export_customers_file_has_unquoted_commas_and_the_truth_lists_those_rows(export) -> None:
    path = export["landing"] / "reference/customers.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    malformed = {line: row for line, row in enumerate(rows, start=1) if len(row) != len(header)}
    assert len(malformed) >= 5
    # The e-mail address lands in `location` of such a row, the hazard a reader must reject, not shift.
    assert all(re.fullmatch(r"\S+@example\.\w+", row[3]) for row in malformed.values())
    assert any(", " in row[1] for row in rows[1:] if len(row) == len(header))  # quoted commas are fine
    listed = pd.read_csv(export["truth"] / "malformed_reference_rows.csv")
    assert set(listed["line"]) == set(malformed)
    assert (listed["fields"] != listed["expected_fields"]).all()


# ----------------------------------------------------------------------------------------------- scenarios
SCENARIO_DAY = START + timedelta(days=30)


def _dated(landing: Path) -> dict[str, tuple[str, bytes]]:
    """Sales and weather files by landing path: (their day, their bytes)."""
    out = {}
    for path in landing.rglob("*.csv"):
        rel = path.relative_to(landing).as_posix()
        parts = rel.split("/")
        if parts[0] == "sales":
            out[rel] = (parts[2], path.read_bytes())
        elif parts[0] == "weather":
            out[rel] = (parts[2].removesuffix(".csv"), path.read_bytes())
    return out


def _scenario(sim: dict, tmp_path: Path, kind: str) -> dict:
    """The `sim` fixture's world with a scenario from SCENARIO_DAY: same files before it, others after."""
    landing, truth = tmp_path / "landing", tmp_path / "truth"
    simulate(landing, truth, START, DAYS, CUSTOMERS, seed=11, broken_share=BROKEN_SHARE, scenario=kind,
             scenario_from=SCENARIO_DAY)  # fmt: skip
    calm, changed = _dated(sim["landing"]), _dated(landing)
    day = SCENARIO_DAY.isoformat()
    before = {k for k, (d, _) in calm.items() | changed.items() if d < day}
    assert [k for k in before if calm.get(k) != changed.get(k)] == []
    data = _load(landing, truth)
    assert data["params"]["scenario"]["kind"] == kind and data["params"]["scenario"]["day"] == day
    return data | {"calm": calm, "changed": changed}


def _mix_distance(sales: pd.DataFrame, day: str) -> dict[str, float]:
    """Per region, the mean total-variation distance between a customer's product mix before and after
    `day`, over customers with at least 8 items on each side."""
    members = sales[sales["customer_id"] != ""]
    out = {}
    for region, g in members.groupby("_region"):
        pre = g[g["_day"] < day].groupby(["customer_id", "product_id"]).size().unstack(fill_value=0)
        post = g[g["_day"] >= day].groupby(["customer_id", "product_id"]).size().unstack(fill_value=0)
        ids = pre.index[pre.sum(axis=1) >= 8].intersection(post.index[post.sum(axis=1) >= 8])
        cols = pre.columns.union(post.columns)
        p = pre.reindex(index=ids, columns=cols, fill_value=0)
        q = post.reindex(index=ids, columns=cols, fill_value=0)
        p, q = p.div(p.sum(axis=1), axis=0), q.div(q.sum(axis=1), axis=0)
        assert len(ids) > 100
        out[region] = float((0.5 * (p - q).abs().sum(axis=1)).mean())
    return out


def test_taste_shift_changes_most_customers_mix_from_its_day(sim, tmp_path: Path) -> None:
    data = _scenario(sim, tmp_path, "taste-shift")
    day = SCENARIO_DAY.isoformat()
    calm, shifted = _mix_distance(sim["sales"], day), _mix_distance(data["sales"], day)
    assert all(shifted[r] > calm[r] + 0.15 for r in REGION_KEYS), (calm, shifted)
    changes = pd.read_csv(data["truth"] / "persona_changes.csv", dtype=str)
    assert (changes["day"] == day).all() and (changes["persona_before"] != changes["persona_after"]).all()
    assert (changes.groupby("region").size() > CUSTOMERS / 2).all() and set(changes["region"]) == set(
        REGION_KEYS
    )


def test_new_product_is_launched_on_its_day_and_many_customers_adopt_it(sim, tmp_path: Path) -> None:
    data = _scenario(sim, tmp_path, "new-product")
    day = SCENARIO_DAY.isoformat()
    launch = pd.read_csv(data["truth"] / "launches.csv", dtype=str)
    pid = launch["product_id"].iloc[0]
    assert (launch["launch_day"] == day).all() and pid in set(data["products"]["product_id"])
    assert pid not in set(sim["products"]["product_id"])
    for region, g in data["sales"].groupby("_region"):
        before, after = g[g["_day"] < day], g[g["_day"] >= day]
        assert (before["product_id"] == pid).sum() == 0
        assert (
            after.loc[after["product_id"] == pid, "transaction_id"].nunique()
            > 0.1 * after["transaction_id"].nunique()
        )
        members = after[after["customer_id"] != ""]
        adopters = members.loc[members["product_id"] == pid, "customer_id"].nunique()
        assert adopters > 0.3 * members["customer_id"].nunique(), region


def test_price_change_moves_total_price_and_demand_from_its_day(sim, tmp_path: Path) -> None:
    data = _scenario(sim, tmp_path, "price-change")
    day = SCENARIO_DAY.isoformat()
    changes = pd.read_csv(data["truth"] / "price_changes.csv", dtype={"product_id": str})
    assert (changes["day"] == day).all() and len(changes) >= 2
    assert (changes["factor"] > 1.2).any() and (changes["factor"] < 0.8).any()
    snapshot = data["products"].set_index("product_id")["price"].astype(float)
    assert np.allclose(snapshot[changes["product_id"]], changes["price_after_usd"])  # as of the last day
    sales = data["sales"][~_rule_breaking(data["sales"], data["products"])]
    unit = sales["total_price"].astype(float) / sales["quantity"].astype(int)
    sales = sales.assign(unit=unit, after=sales["_day"] >= day)
    for row in changes.itertuples():
        median = sales[sales["product_id"] == row.product_id].groupby(["_region", "after"])["unit"].median()
        ratio = median.xs(True, level="after") / median.xs(False, level="after")
        assert np.allclose(ratio, row.factor, rtol=0.01), (row.product_name, ratio)

    def share_after(frame: pd.DataFrame, pids) -> float:
        after = frame[frame["_day"] >= day]
        return float(after["product_id"].isin(pids).mean())

    up, down = (
        changes.loc[changes["factor"] > 1, "product_id"],
        changes.loc[changes["factor"] < 1, "product_id"],
    )
    assert share_after(data["sales"], up) < 0.8 * share_after(sim["sales"], up)
    assert share_after(data["sales"], down) > share_after(sim["sales"], down)


def test_unit_outage_stops_one_units_sales_and_weather_from_its_day(sim, tmp_path: Path) -> None:
    data = _scenario(sim, tmp_path, "unit-outage")
    day = SCENARIO_DAY.isoformat()
    region = data["params"]["scenario"]["region"]
    assert region in REGION_KEYS
    files = data["changed"]
    own = {k: d for k, (d, _) in files.items() if k.split("/")[1] == region}
    assert own and max(own.values()) < day  # nothing of it on or after the day, forecasts included
    assert (
        max(d for k, d in own.items() if k.startswith("sales/"))
        == (SCENARIO_DAY - timedelta(days=1)).isoformat()
    )
    for other in set(REGION_KEYS) - {region}:
        days = {d for k, (d, _) in files.items() if k.startswith(f"sales/{other}/")}
        assert len(days) == DAYS


# --------------------------------------------------------------------------------------------------- live
def test_live_continues_a_realistic_world_with_its_scenario_day_for_day(tmp_path: Path) -> None:
    kw = {
        "profile": "realistic",
        "scenario": "new-product",
        "scenario_from": START + timedelta(days=6),
        "regions": ("canada", "mexico"),
        "horizon_days": 10,
    }
    simulate(tmp_path / "batch/landing", tmp_path / "batch/truth", START, 10, 150, 5, **kw)
    simulate(tmp_path / "live/landing", tmp_path / "live/truth", START, 7, 150, 5, **kw)
    config = load_config(tmp_path / "live/truth")
    assert config is not None and config.profile.name == "realistic" and config.horizon_days == 10
    assert config.scenario is not None and config.scenario.kind == "new-product"
    for i in range(7, 10):
        write_day(tmp_path / "live/landing", tmp_path / "live/truth", START + timedelta(days=i), config)
    batch, live = _tree(tmp_path / "batch"), _tree(tmp_path / "live")
    assert batch.keys() == live.keys()
    assert [k for k in batch if batch[k] != live[k]] == []


def _mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_cli_live_never_rewrites_the_seeded_history(tmp_path: Path) -> None:
    landing, truth = tmp_path / "landing", tmp_path / "truth"
    args = ["--landing", str(landing), "--truth", str(truth), "--customers", "50", "--seed", "2"]
    runner = CliRunner()
    seeded = runner.invoke(simulate_command, [*args, "--days", "3", "--start", "2025-03-01"])
    assert seeded.exit_code == 0, seeded.output
    before, stamps = _tree(landing), _mtimes(landing)
    history = [
        k for k in before if k.startswith(("sales/", "reference/")) or k.split("/")[-1] <= "2025-03-03.csv"
    ]

    # As `make dev` starts it: --live without --if-empty, the other options at their defaults.
    live = runner.invoke(simulate_command, [*args, "--live", "--interval", "0", "--max-live-days", "2"])
    assert live.exit_code == 0, live.output
    after, stamps_after = _tree(landing), _mtimes(landing)
    assert [k for k in history if after.get(k) != before[k]] == []
    rewritten = [k for k in history if stamps_after[k] != stamps[k]]
    assert rewritten == []  # not even rewritten with the same bytes
    assert last_sales_day(landing) == date(2025, 3, 5)
    assert "not re-seeding" in live.output


def test_cli_live_keeps_the_seeded_profile_and_scenario(tmp_path: Path) -> None:
    landing, truth = tmp_path / "landing", tmp_path / "truth"
    args = ["--landing", str(landing), "--truth", str(truth), "--customers", "80", "--seed", "3"]
    world = ["--profile", "realistic", "--scenario", "taste-shift", "--scenario-from", "2025-03-04"]
    runner = CliRunner()
    seeded = runner.invoke(simulate_command, [*args, *world, "--days", "6", "--start", "2025-03-01"])
    assert seeded.exit_code == 0, seeded.output
    live = runner.invoke(simulate_command, [*args, "--live", "--interval", "0", "--max-live-days", "2"])
    assert live.exit_code == 0, live.output
    assert "profile realistic" in live.output and "taste-shift" in live.output
    params = json.loads((truth / "parameters.json").read_text())
    assert params["profile"]["name"] == "realistic" and params["horizon_days"] == 6
    assert params["scenario"]["kind"] == "taste-shift" and params["end"] == "2025-03-08"

    batch = tmp_path / "batch"
    simulate(batch / "landing", batch / "truth", date(2025, 3, 1), 8, 80, 3, profile="realistic",
             scenario="taste-shift", scenario_from=date(2025, 3, 4), horizon_days=6)  # fmt: skip
    expected, got = _tree(batch / "landing"), _tree(landing)
    new_days = [k for k in expected if k.startswith("sales/") and k.split("/")[2] >= "2025-03-07"]
    assert len(new_days) >= 6 and [k for k in new_days if got.get(k) != expected[k]] == []


def test_cli_rejects_scenario_options_without_a_scenario(tmp_path: Path) -> None:
    args = ["--landing", str(tmp_path / "landing"), "--truth", str(tmp_path / "truth"), "--days", "2"]
    result = CliRunner().invoke(simulate_command, [*args, "--scenario-from", "2025-01-02"])
    assert result.exit_code == 2 and "--scenario-from needs --scenario" in result.output
    result = CliRunner().invoke(
        simulate_command, [*args, "--scenario", "taste-shift", "--scenario-region", "canada"]
    )
    assert result.exit_code == 2 and "only used with --scenario unit-outage" in result.output
    assert not (tmp_path / "landing").exists()

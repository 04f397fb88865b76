"""B5 Quality: hit rate@3 of every recommender candidate, per simulator profile, region and list.

Per profile (friendly, realistic, export), the simulator's landing zone is parsed and loaded into a DuckDB
warehouse with the project's own functions (the ingestion lib's parsers and validation, the schema's DDL,
the `core/purchase_history` asset's SQL: what the ML tests use, `globolatte_dagster_tests.ml_data`), then
per region, as the assets do: `load_history`, segments fitted on the purchase mix (`SegmentsConfig`'s
defaults), and `tournament.train_region` with the default `TrainParams` (every candidate, the 14-day
hold-out, 1,000 bootstrap resamples).

Each candidate is compared with the best baseline of the same run, on the same hold-out customer-days:
the paired difference with its 95% bootstrap interval (the tournament's own figures), and the ratio of the
hit rates. Both lists: `top` (every loyalty customer who bought that day) and `discover` (known customers
who bought a product new to them; only products they never bought count). No figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmarks.common import (
    WORK,
    log,
    machine,
    machine_line,
    md_table,
    self_peak_rss_mb,
    simulated,
    write_result,
)

NAME = "b5_quality"
SEED = 11
# (days, customers per region); None: the profile's default days. Export: its default 30 days x 1,500.
SIZES = {
    "full": {"friendly": (120, 2_000), "realistic": (120, 2_000), "export": (30, 1_500)},
    "quick": {"friendly": (60, 400), "realistic": (60, 600), "export": (30, 600)},
}
CANDIDATE_ORDER = ("popularity", "repeat", "recency_repeat", "tifu_knn", "context_model")
BASELINES = {"top": ("popularity", "repeat"), "discover": ("popularity",)}


def _case(profile: str, quick: bool) -> tuple[Path, dict, Path]:
    """The profile's landing zone and its warehouse (both cached under benchmarks/.work while unchanged)."""
    import json
    import shutil

    days, customers = SIZES["quick" if quick else "full"][profile]
    name = f"b5_{profile}_{days}x{customers}"
    landing, sim = simulated(name, customers, days, None, None, SEED, profile=profile)
    home = WORK / "b5" / name
    marker = home / "loaded.json"
    if marker.exists() and json.loads(marker.read_text()) == sim["params"]:
        return landing, sim, home / "warehouse.duckdb"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    database = home / "warehouse.duckdb"
    load_warehouse(landing, database, sim["params"]["regions"])
    marker.write_text(json.dumps(sim["params"]))
    return landing, sim, database


def load_warehouse(landing: Path, database: Path, regions: list[str]) -> None:
    """raw.sales, raw.weather, core.products/customers/calendar and core.purchase_history, as the tests load them."""
    from globolatte_dagster.resources.warehouse import DuckDBWarehouse
    from globolatte_dagster_tests.ml_data import landed_frames, load_duckdb
    from globolatte_dagster_tests.serving_fixtures import build_purchase_history

    t0 = time.perf_counter()
    frames = landed_frames(landing)
    load_duckdb(str(database), frames)
    build_purchase_history(
        DuckDBWarehouse(database=str(database)), sorted(frames["sales"]["region"].unique())
    )
    log(f"B5: loaded {len(frames['sales']):,} sales rows into {database} in {time.perf_counter() - t0:.0f} s")


def prepare(quick: bool = False) -> None:
    for profile in SIZES["quick" if quick else "full"]:
        _case(profile, quick)


def train_profile(database: Path) -> dict[str, dict]:
    """The tournament of every region in the warehouse, as `ml/customer_segments` and `ml/preference_model` run it."""
    import duckdb
    from threadpoolctl import threadpool_limits

    from globolatte_dagster.defs.ml.assets import PreferenceModelConfig, SegmentsConfig
    from globolatte_dagster.lib import segments as S
    from globolatte_dagster.lib.recommend import data as D
    from globolatte_dagster.lib.recommend.tournament import train_region

    seg_config, params = SegmentsConfig(), PreferenceModelConfig().train_params()
    conn = duckdb.connect(str(database), read_only=True)

    def query(sql, args=None):
        return conn.execute(sql, list(args or [])).df()

    out: dict[str, dict] = {}
    try:
        regions = query("SELECT DISTINCT region FROM core.purchase_history ORDER BY region")[
            "region"
        ].tolist()
        for region in regions:
            t0 = time.perf_counter()
            with threadpool_limits(limits=params.threads):
                history = D.load_history(query, region, params.lookback_days)
                mix = S.purchase_mix(history)
                seg = S.fit_segments(
                    mix,
                    seg_config.seed,
                    range(seg_config.k_min, seg_config.k_max + 1),
                    n_init=seg_config.n_init,
                )
                t1 = time.perf_counter()
                result = train_region(history, params, seg.assign, seg.assign(history))
            m = result.metrics
            out[region] = {
                "customers": m["customers"],
                "products": m["products"],
                "sales_days": m["sales_days"],
                "weather": m["weather"],
                "holdout_days": m.get("holdout_days"),
                "holdout_customer_days": m.get("holdout_customer_days"),
                "holdout_unseen_customer_share": m.get("holdout_unseen_customer_share"),
                "discover_customer_days": m.get("discover_customer_days"),
                "segments_k": seg.k,
                "tournament": m["tournament"],
                "skipped": m.get("skipped", {}),
                "context_model_training": m["candidates"].get("context_model", {}).get("training", {}),
                "segments_seconds": round(t1 - t0, 1),
                "train_seconds": round(time.perf_counter() - t1, 1),
                "timings_s": result.timings,
            }
            top, disc = m["tournament"]["top"], m["tournament"]["discover"]
            log(
                f"B5: {region}: top {top['champion']} (best baseline {top['best_baseline']}), "
                f"discover {disc['champion']}, {time.perf_counter() - t0:.0f} s"
            )
    finally:
        conn.close()
    return out


def run(quick: bool = False) -> dict:
    m = machine()
    results: dict[str, dict] = {}
    for profile in SIZES["quick" if quick else "full"]:
        _landing, sim, database = _case(profile, quick)
        days, customers = SIZES["quick" if quick else "full"][profile]
        log(f"B5: {profile}, {days} days x {customers:,} customers per region")
        when = {
            "measured_at_utc": machine()["when_utc"],
            "load_average_at_start": round(os.getloadavg()[0], 2),
        }
        t0 = time.perf_counter()
        regions = train_profile(database)
        results[profile] = {
            "days": days,
            "customers_per_region": customers,
            "sales_rows": sim["sales_rows"],
            "start": sim["params"]["start"],
            **when,
            "load_average_at_end": round(os.getloadavg()[0], 2),
            "seconds": round(time.perf_counter() - t0, 1),
            "regions": regions,
        }
    goals = {
        "every_region_has_a_champion": all(
            r["tournament"]["top"]["champion"] for p in results.values() for r in p["regions"].values()
        ),
        "top_champion_not_below_best_baseline": all(
            _champion_vs_best(r["tournament"]["top"]) >= 0
            for p in results.values()
            for r in p["regions"].values()
        ),
        "discover_champion_not_below_popularity": all(
            _champion_vs_best(r["tournament"]["discover"]) >= 0
            for p in results.values()
            for r in p["regions"].values()
            if r["tournament"]["discover"]["candidates"]
        ),
    }
    payload = {
        "benchmark": NAME,
        "mode": "quick" if quick else "full",
        "machine": m,
        "seed": SEED,
        "peak_rss_mb": round(self_peak_rss_mb()),
        "results": results,
        "goals": goals,
    }
    write_result(NAME, quick, payload, markdown(payload))
    return payload


def _champion_vs_best(t: dict) -> float:
    c = t["candidates"]
    if not c:
        return 0.0
    return c[t["champion"]]["hit_rate"] - c[t["best_baseline"]]["hit_rate"]


# ---- tables -------------------------------------------------------------------------------------------
def _ci(s: dict, key: str, low: str, high: str, sign: str = "") -> str:
    return f"{s[key]:{sign}.3f} ({s[low]:{sign}.3f} .. {s[high]:{sign}.3f})"


def candidate_rows(results: dict) -> list[list]:
    rows = []
    for profile, p in results.items():
        for region, r in p["regions"].items():
            for lst in ("top", "discover"):
                t = r["tournament"][lst]
                best = t["best_baseline"]
                best_rate = t["candidates"].get(best, {}).get("hit_rate")
                for name in CANDIDATE_ORDER:
                    s = t["candidates"].get(name)
                    if s is None:
                        continue
                    is_best = name == best
                    rows.append(
                        [
                            profile,
                            region,
                            lst,
                            name + (" (best baseline)" if is_best else ""),
                            _ci(s, "hit_rate", "ci_low", "ci_high"),
                            "" if is_best else _ci(s, "diff", "diff_ci_low", "diff_ci_high", "+"),
                            "" if is_best or not best_rate else f"{s['hit_rate'] / best_rate:.2f}x",
                            "**yes**" if name == t["champion"] else "",
                            t["rows"],
                        ]
                    )
    return rows


CANDIDATE_HEAD = [
    "profile",
    "region",
    "list",
    "candidate",
    "hit rate@3 (95% CI)",
    "minus best baseline (95% CI)",
    "ratio to best baseline",
    "champion",
    "customer-days",
]


def summary_rows(results: dict) -> list[list]:
    rows = []
    for profile, p in results.items():
        for region, r in p["regions"].items():
            top, disc = r["tournament"]["top"], r["tournament"]["discover"]
            cm = top["candidates"].get("context_model")
            rows.append(
                [
                    profile,
                    region,
                    top["champion"],
                    f"{top['best_baseline']} {top['candidates'][top['best_baseline']]['hit_rate']:.3f}"
                    if top["candidates"]
                    else "",
                    _ci(top["candidates"][top["champion"]], "hit_rate", "ci_low", "ci_high")
                    if top["candidates"]
                    else "",
                    _ci(cm, "diff", "diff_ci_low", "diff_ci_high", "+") if cm else "not fitted",
                    disc["champion"],
                    _ci(disc["candidates"][disc["champion"]], "hit_rate", "ci_low", "ci_high")
                    if disc["candidates"]
                    else "no discover days",
                    r["holdout_customer_days"],
                    r["discover_customer_days"],
                    "no" if r["weather"].startswith("absent") else "yes",
                    f"{r['segments_seconds'] + r['train_seconds']:.0f}",
                ]
            )
    return rows


SUMMARY_HEAD = [
    "profile",
    "region",
    "top champion",
    "best baseline",
    "champion hit rate@3 (95% CI)",
    "context_model minus best baseline (95% CI)",
    "discover champion",
    "discover hit rate@3 (95% CI)",
    "top customer-days",
    "discover customer-days",
    "weather",
    "segments + tournament s",
]


def markdown(p: dict) -> str:
    sizes = "; ".join(
        f"{name}: {r['days']} days x {r['customers_per_region']:,} customers per region from {r['start']} "
        f"({r['sales_rows']:,} sales rows; {r['seconds']:.0f} s, load average {r['load_average_at_start']} "
        f"at start, {r['load_average_at_end']} at end)"
        for name, r in p["results"].items()
    )
    goals = "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in p["goals"].items())
    return "\n".join(
        [
            f"### B5 Quality ({p['mode']})",
            "",
            f"Machine: {machine_line(p['machine'])}.",
            "",
            f"Simulator profiles (seed {p['seed']}): {sizes}. Each profile loaded into DuckDB with the project's "
            "own functions, then per region segments and `train_region` with the default parameters (every "
            "candidate, hold-out of the last 14 sales days or a quarter of a short history, 1,000 bootstrap "
            "resamples over customer-days). Differences are paired, on the same customer-days, against the "
            "best baseline of the same run (top: the better of popularity and repeat; discover: popularity "
            "among the customer's unbought products); the ratio is hit rate over the best baseline's. "
            "The champion replaces the best baseline only when the interval of its lead is above zero.",
            "",
            md_table(SUMMARY_HEAD, summary_rows(p["results"])),
            "",
            "Every candidate:",
            "",
            md_table(CANDIDATE_HEAD, candidate_rows(p["results"])),
            "",
            f"Goals (invariants, not figures): {goals}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run(quick=args.quick)


if __name__ == "__main__":
    os.environ.setdefault("GLOBOLATTE_ENV", "local")
    main()

"""The figures of docs/monitoring.md: alert delays per scenario, alarms on the calm run, and the plot.

    .venv/bin/python -m globolatte_dagster_tests.monitor_figures [--customers 240] [--out docs]

Replays the same cases as test_monitor_scenarios.py (one unit, `america`) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from globolatte_dagster.lib import plots
from globolatte_dagster.lib.schema import DATA_QUALITY, RECOMMENDATION_PERFORMANCE
from globolatte_dagster_tests import test_monitor_scenarios as T
from globolatte_dagster_tests.ml_data import simulate_case
from globolatte_dagster_tests.monitor_replay import DayLog, Replay


def _first(log: Sequence[DayLog], day: date, test) -> str:
    hit = next((e for e in log if e.day >= day and test(e)), None)
    return "-" if hit is None else str((hit.day - day).days + 1)


def _count(log: Sequence[DayLog], day: date, test) -> int:
    return sum(1 for e in log if e.day < day and test(e))


def run(customers: int, out: Path) -> str:
    rows = []
    start = date(2025, 1, 1)
    for scenario, policy, days in (
        ("taste-shift", "alert", T.SCENARIO_DAY + 20),
        ("new-product", "alert", T.SCENARIO_DAY + 12),
        ("price-change", "alert", T.SCENARIO_DAY + 12),
        (None, "daily", 60),
    ):
        root = Path(tempfile.mkdtemp(prefix=f"monitor-{scenario or 'calm'}-"))
        day = start + timedelta(days=T.SCENARIO_DAY) if scenario else start + timedelta(days=days)
        case = simulate_case(
            root,
            days,
            customers,
            regions=[T.REGION],
            scenario=scenario,
            scenario_from=day if scenario else None,
        )
        replay = Replay(case, root, T.REGION, policy=policy)
        log = replay.run(start + timedelta(days=T.SERVE_FROM), case.last_day)
        tests = {
            "performance": lambda e: e.performance is not None,
            "feature drift": lambda e: bool(e.feature_drift),
            "prediction drift": lambda e: e.prediction_drift,
            "weather drift": lambda e: bool(e.context_drift),
        }
        row = {"case": scenario or "calm (daily retrain)", "landed days": len(log)}
        for name, test in tests.items():
            row[f"first {name} (landed day)"] = _first(log, day, test) if scenario else "-"
            row[f"{name} alerts before"] = _count(log, day, test)
        row["first features"] = ", ".join(
            next((e.feature_drift for e in log if e.day >= day and e.feature_drift), [])
        )
        row["retrains"] = sum(e.retrained_after for e in log)
        rows.append(row)
        if scenario == "taste-shift":
            perf = replay.table(RECOMMENDATION_PERFORMANCE)
            (out / "monitoring-taste-shift.png").write_bytes(plots.performance_plot(perf))
        if scenario is None:
            dq = replay.table(DATA_QUALITY)
            row["data-quality alerts"] = (
                ", ".join(sorted(set(dq.loc[dq["alert"].astype(bool), "metric"]))) or "none"
            )
        replay.close()
    table = pd.DataFrame(rows).fillna("")
    return plots.markdown_table(table)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=T.CUSTOMERS)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(run(args.customers, args.out))


if __name__ == "__main__":
    main()

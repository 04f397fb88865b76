"""`globolatte run`: materialise every landed partition not yet loaded, then everything downstream.

Runs go through Dagster and are recorded in the instance (`$DAGSTER_HOME`), so the UI shows them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import dagster as dg

from globolatte_dagster.defs.partitions import region_day_key, region_days_tags
from globolatte_dagster.lib import contract
from globolatte_dagster.lib.recommend.metrics import HIT_RATE
from globolatte_dagster.lib.schema import CALENDAR, CUSTOMERS, PRODUCTS, SALES, WEATHER


def _key(table) -> dg.AssetKey:
    return dg.AssetKey(table.key)


@dataclass
class RunRecord:
    what: str
    partitions: str
    run_id: str
    success: bool
    detail: str = ""


@dataclass
class RunSummary:
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.runs)


def landed_partitions(landing, kind: str) -> dict[str, list[str]]:
    """Days with files of `kind` (sales or weather), per region."""
    found: dict[str, set[str]] = defaultdict(set)
    for region in contract.REGION_KEYS:
        prefix = contract.sales_prefix(region) if kind == "sales" else contract.weather_prefix(region)
        for obj in landing.list(prefix):
            try:
                path = contract.parse_landing_path(obj.path)
            except contract.ContractError:
                continue
            if path.kind == kind and path.day is not None:
                found[region].add(path.day.isoformat())
    return {r: sorted(d) for r, d in found.items()}


def run_everything(defs: dg.Definitions, instance: dg.DagsterInstance, echo=print) -> RunSummary:
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    landing = defs.resources["landing"]
    summary = RunSummary()

    def execute(what: str, keys: list[dg.AssetKey], partitions: str = "", **kwargs) -> bool:
        result = job.execute_in_process(
            instance=instance, asset_selection=keys, raise_on_error=False, **kwargs
        )
        detail = ""
        if not result.success:
            failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
            detail = "; ".join(
                (
                    f.step_failure_data.user_failure_data.description
                    if f.step_failure_data.user_failure_data
                    else None
                )
                or (
                    f.step_failure_data.error.message.strip().splitlines()[-1]
                    if f.step_failure_data.error
                    else "failed"
                )
                for f in failures
            )
        summary.runs.append(RunRecord(what, partitions or "-", result.run_id, result.success, detail))
        echo(f"{'ok    ' if result.success else 'FAILED'} {what} {partitions} ({result.run_id[:8]}) {detail}")
        return result.success

    execute("reference", [_key(PRODUCTS), _key(CUSTOMERS), _key(CALENDAR)])
    for table, kind in ((SALES, "sales"), (WEATHER, "weather")):
        keys = [k for k in graph.get_all_asset_keys() if k == _key(table) or _sibling(graph, k, _key(table))]
        done = instance.get_materialized_partitions(_key(table))
        for region, days in landed_partitions(landing, kind).items():
            new = [d for d in days if str(region_day_key(region, d)) not in done]
            if not new:
                continue
            tags = region_days_tags(region, new[0], new[-1])
            execute(
                f"{table.schema}/{table.name}",
                keys,
                f"{region} {new[0]}..{new[-1]} ({len(new)} new)",
                tags=tags,
            )

    downstream = _downstream(graph)
    by_region = [k for k in downstream if graph.get(k).partitions_def is not None]
    unpartitioned = [k for k in downstream if graph.get(k).partitions_def is None]
    if by_region:
        for region in contract.REGION_KEYS:
            execute("downstream", by_region, region, partition_key=region)
    if unpartitioned:
        execute("downstream", unpartitioned, "all regions")
    return summary


def _sibling(graph, key: dg.AssetKey, of: dg.AssetKey) -> bool:
    """Assets computed by the same multi-asset (raw/sales_rejects with raw/sales)."""
    return graph.get(key).assets_def is graph.get(of).assets_def and key != of


def _downstream(graph) -> list[dg.AssetKey]:
    raw_layer = {_key(SALES), _key(WEATHER), _key(PRODUCTS), _key(CUSTOMERS), _key(CALENDAR)}
    raw_layer |= {k for k in graph.get_all_asset_keys() if _sibling(graph, k, _key(SALES))}
    return [k for k in graph.toposorted_asset_keys if k not in raw_layer]


def print_summary(summary: RunSummary, instance: dg.DagsterInstance, warehouse, echo=print) -> None:
    echo("")
    echo(f"{'step':<22} {'partitions':<44} {'status':<7} run")
    for r in summary.runs:
        echo(f"{r.what:<22} {r.partitions:<44} {'ok' if r.success else 'FAILED':<7} {r.run_id[:8]}")
    counts = warehouse.query(
        "SELECT region, COUNT(DISTINCT day) AS days, COUNT(*) AS rows_loaded FROM raw.sales GROUP BY region"
    ).set_index("region")
    rejects = warehouse.query(
        "SELECT region, COUNT(*) AS n FROM raw.sales_rejects GROUP BY region"
    ).set_index("region")
    echo("")
    echo(f"{'region':<10} {'days loaded':>11} {'rows loaded':>12} {'rows rejected':>14}")
    for region in contract.REGION_KEYS:
        days = int(counts["days"].get(region, 0)) if len(counts) else 0
        rows = int(counts["rows_loaded"].get(region, 0)) if len(counts) else 0
        rej = int(rejects["n"].get(region, 0)) if len(rejects) else 0
        echo(f"{region:<10} {days:>11} {rows:>12} {rej:>14}")
    for line in metrics_lines(instance):
        echo(line)


def metrics_lines(instance: dg.DagsterInstance) -> list[str]:
    """Per region: the champion candidate's hold-out hit rate@3 beside the best baseline's, from the tournament."""
    key = dg.AssetKey(["ml", "preference_model"])
    lines = []
    for region in contract.REGION_KEYS:
        recs = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[region]), limit=1
        ).records
        if not recs or recs[0].asset_materialization is None:
            continue
        meta = recs[0].asset_materialization.metadata
        if not lines:
            lines += [
                "",
                f"{'region':<10} {'champion':<16} {'hit@3':>7} {'best baseline':<14} {'hit@3':>7}   on the time-based hold-out",
            ]
        champion = str(getattr(meta.get("champion"), "value", "-"))
        baseline = str(getattr(meta.get("best_baseline"), "value", "-"))
        lines.append(
            f"{region:<10} {champion:<16} {_num(meta.get(HIT_RATE)):>7} {baseline:<14} "
            f"{_num(meta.get(f'best_baseline_{HIT_RATE}')):>7}"
        )
    return lines


def _num(value) -> str:
    v = getattr(value, "value", value)
    return f"{v:.3f}" if isinstance(v, int | float) else "-"

"""`globolatte run`: materialise every landed partition not yet loaded, then everything downstream.

Runs go through Dagster and are recorded in the instance (`$DAGSTER_HOME`), so the UI shows them.
The run succeeds when everything landed has loaded and every region with sales has a champion model; a
region with no landed sales is idle ("no sales yet"), not failed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.defs.partitions import region_day_key, region_days_tags
from globolatte_dagster.lib import contract
from globolatte_dagster.lib.recommend.metrics import HIT_RATE

OK, FAILED, IDLE = "ok", "FAILED", "no sales yet"


@dataclass
class RunRecord:
    what: str
    partitions: str
    run_id: str
    success: bool
    detail: str = ""
    status: str = ""  # ok | FAILED | no sales yet
    failed_checks: list[str] = field(default_factory=list)  # "asset check (severity)"
    region: str = ""

    def __post_init__(self) -> None:
        self.status = self.status or (OK if self.success else FAILED)


@dataclass
class RunSummary:
    runs: list[RunRecord] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)  # landed days outside the partitions, with the reason
    problems: list[str] = field(default_factory=list)  # what makes the run fail, naming region and step

    @property
    def success(self) -> bool:
        return not self.problems and all(r.success for r in self.runs)


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


def consecutive_runs(days: list[str]) -> list[tuple[str, str, int]]:
    """(first, last, count) per run of consecutive days: a range never covers a day without files."""
    runs: list[list[str]] = []
    for day in sorted(days):
        if runs and date.fromisoformat(day) - date.fromisoformat(runs[-1][-1]) == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return [(r[0], r[-1], len(r)) for r in runs]


def _day_bounds(graph, key: dg.AssetKey) -> tuple[str, str]:
    """The first and last day of an asset's region x day partitions (as loaded: GLOBOLATTE_FIRST_DAY)."""
    multi = graph.get(key).partitions_def
    days = next(d.partitions_def for d in multi.partitions_defs if d.name == "day")
    keys = days.get_partition_keys()
    return keys[0], keys[-1]


def _failure_detail(result) -> tuple[str, list[str]]:
    """A readable message per failed step, and the steps (asset names) that failed."""
    messages, steps = [], []
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        data = event.step_failure_data
        text = (data.user_failure_data.description if data.user_failure_data else None) or (
            data.error.message.strip().splitlines()[-1] if data.error else "failed"
        )
        step = (event.step_key or "?").replace("__", "/")
        steps.append(step)
        messages.append(f"{step}: {text}")
    return "; ".join(messages), steps


def _failed_checks(result) -> list[str]:
    return [
        f"{c.asset_key.to_user_string()} {c.check_name} ({c.severity.value.lower()})"
        for c in result.get_asset_check_evaluations()
        if not c.passed
    ]


def run_everything(defs: dg.Definitions, instance: dg.DagsterInstance, echo=print) -> RunSummary:
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    landing = defs.resources["landing"]
    summary = RunSummary()
    created = defs.resources["warehouse"].ensure_tables()  # every table exists, empty until its feed lands
    echo(f"warehouse tables ready: {len(created)}")

    def execute(what: str, keys: list[dg.AssetKey], partitions: str = "", region: str = "", **kwargs) -> bool:
        try:
            result = job.execute_in_process(
                instance=instance, asset_selection=keys, raise_on_error=False, **kwargs
            )
        except Exception as exc:  # a run that could not even start is a failure of this step, not a crash
            record = RunRecord(
                what, partitions or "-", "-", False, f"{type(exc).__name__}: {exc}", region=region
            )
        else:
            detail = "" if result.success else _failure_detail(result)[0]
            record = RunRecord(
                what,
                partitions or "-",
                result.run_id,
                result.success,
                detail,
                region=region,
                failed_checks=_failed_checks(result),
            )
        summary.runs.append(record)
        checks = f" [checks failed: {', '.join(record.failed_checks)}]" if record.failed_checks else ""
        echo(f"{record.status:<7} {what} {partitions} ({record.run_id[:8]}) {record.detail}{checks}")
        if not record.success:
            summary.problems.append(f"{region or 'all regions'}: {what} failed: {record.detail}")
        return record.success

    execute("reference", [asset_keys.PRODUCTS, asset_keys.CUSTOMERS, asset_keys.CALENDAR])
    for key, kind in ((asset_keys.SALES, "sales"), (asset_keys.WEATHER, "weather")):
        keys = [k for k in graph.get_all_asset_keys() if k == key or _sibling(graph, k, key)]
        first, last = _day_bounds(graph, key)
        done = instance.get_materialized_partitions(key)
        for region, days in landed_partitions(landing, kind).items():
            for day in days:
                if not first <= day <= last:
                    summary.stray.append(
                        f"{kind}/{region}/{day}: "
                        + (
                            f"before the first partition day {first} (GLOBOLATTE_FIRST_DAY)"
                            if day < first
                            else f"after the last partition day {last}"
                        )
                    )
            new = [d for d in days if first <= d <= last and str(region_day_key(region, d)) not in done]
            for start, end, count in consecutive_runs(new):
                execute(
                    key.to_user_string(),
                    keys,
                    f"{region} {start}..{end} ({count} day{'s' if count > 1 else ''})",
                    region=region,
                    tags=region_days_tags(region, start, end),
                )
    for line in summary.stray[:20]:
        echo(f"stray   {line}")

    with_sales = _regions_with_sales(instance)
    downstream = _downstream(graph)
    by_region = [k for k in downstream if graph.get(k).partitions_def is not None]
    unpartitioned = [k for k in downstream if graph.get(k).partitions_def is None]
    for region in contract.REGION_KEYS:
        if region not in with_sales:
            summary.runs.append(RunRecord("downstream", region, "-", True, status=IDLE, region=region))
            echo(f"{IDLE:<7} downstream {region}: no sales have landed for this region")
        elif by_region:
            execute("downstream", by_region, region, region=region, partition_key=region)
    if unpartitioned and _any_champion(defs, with_sales):
        execute("downstream", unpartitioned, "all regions")
    elif unpartitioned:
        summary.runs.append(RunRecord("downstream", "all regions", "-", True, status="skipped"))
        echo("skipped downstream all regions: no region has a champion model to serve")
    summary.problems += _without_champion(defs, with_sales, summary)
    return summary


def _regions_with_sales(instance: dg.DagsterInstance) -> set[str]:
    return {k.rsplit("|", 1)[-1] for k in instance.get_materialized_partitions(asset_keys.SALES)}


def _without_champion(defs: dg.Definitions, regions: set[str], summary: RunSummary) -> list[str]:
    """Every region with sales must have a champion model; name the step that stopped the others."""
    registry = defs.resources.get("registry")
    if registry is None:
        return []
    problems = []
    for region in sorted(regions):
        if any(r.region == region and not r.success for r in summary.runs):
            continue  # the failed step is already named
        try:
            champion = registry.get_alias(region, "champion")
        except Exception as exc:
            problems.append(f"{region}: the model registry could not be read ({type(exc).__name__}: {exc})")
            continue
        if not champion:
            problems.append(
                f"{region}: no champion model ({asset_keys.REGISTERED_MODEL.to_user_string()} did not promote one)"
            )
    return problems


def _any_champion(defs: dg.Definitions, regions: set[str]) -> bool:
    registry = defs.resources.get("registry")
    if registry is None:
        return bool(regions)
    try:
        return any(registry.get_alias(region, "champion") for region in regions)
    except Exception:
        return True  # let the endpoint's own run report what is wrong


def _sibling(graph, key: dg.AssetKey, of: dg.AssetKey) -> bool:
    """Assets computed by the same multi-asset (raw/sales_rejects with raw/sales)."""
    return graph.get(key).assets_def is graph.get(of).assets_def and key != of


def _downstream(graph) -> list[dg.AssetKey]:
    raw_layer = {
        asset_keys.SALES,
        asset_keys.WEATHER,
        asset_keys.PRODUCTS,
        asset_keys.CUSTOMERS,
        asset_keys.CALENDAR,
    }
    raw_layer |= {k for k in graph.get_all_asset_keys() if _sibling(graph, k, asset_keys.SALES)}
    return [k for k in graph.toposorted_asset_keys if k not in raw_layer]


def print_summary(summary: RunSummary, instance: dg.DagsterInstance, warehouse, echo=print) -> None:
    echo("")
    echo(f"{'step':<22} {'partitions':<44} {'status':<13} run")
    for r in summary.runs:
        echo(f"{r.what:<22} {r.partitions:<44} {r.status:<13} {r.run_id[:8]}")
        for check in r.failed_checks:
            echo(f"{'':<22} {'check failed: ' + check}")
    counts = warehouse.query(
        "SELECT region, COUNT(DISTINCT day) AS days, COUNT(*) AS rows_loaded FROM raw.sales GROUP BY region"
    ).set_index("region")
    rejects = warehouse.query(
        "SELECT region, COUNT(*) AS n FROM raw.sales_rejects GROUP BY region"
    ).set_index("region")
    weather = warehouse.query("SELECT region, COUNT(*) AS n FROM raw.weather GROUP BY region").set_index(
        "region"
    )
    for frame in (counts, rejects, weather):
        frame.index = [str(i).lower() for i in frame.index]
        frame.columns = [str(c).lower() for c in frame.columns]
    echo("")
    echo(f"{'region':<10} {'days loaded':>11} {'rows loaded':>12} {'rows rejected':>14} {'weather days':>13}")
    for region in contract.REGION_KEYS:
        days = int(counts["days"].get(region, 0)) if len(counts) else 0
        rows = int(counts["rows_loaded"].get(region, 0)) if len(counts) else 0
        rej = int(rejects["n"].get(region, 0)) if len(rejects) else 0
        wx = int(weather["n"].get(region, 0)) if len(weather) else 0
        note = "   no sales yet" if not days else ("   no weather loaded" if not wx else "")
        echo(f"{region:<10} {days:>11} {rows:>12} {rej:>14} {wx:>13}{note}")
    if summary.stray:
        echo(
            f"\n{len(summary.stray)} landed day(s) outside the partitions, not loaded (first: {summary.stray[0]})"
        )
    for line in metrics_lines(instance):
        echo(line)
    echo("")
    if summary.success:
        echo("result: ok (everything landed has loaded; every region with sales has a champion)")
    for problem in summary.problems:
        echo(f"FAILED  {problem}")


def metrics_lines(instance: dg.DagsterInstance) -> list[str]:
    """Per region: the champion candidate's hold-out hit rate@3 beside the best baseline's, from the tournament."""
    key = asset_keys.PREFERENCE_MODEL
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
        if HIT_RATE not in meta:
            days = getattr(meta.get("sales_days"), "value", "?")
            lines.append(f"{region:<10} {champion:<16} no hold-out yet ({days} landed sales day(s))")
            continue
        baseline = str(getattr(meta.get("best_baseline"), "value", "-"))
        lines.append(
            f"{region:<10} {champion:<16} {_num(meta.get(HIT_RATE)):>7} {baseline:<14} "
            f"{_num(meta.get(f'best_baseline_{HIT_RATE}')):>7}"
        )
    return lines


def _num(value) -> str:
    v = getattr(value, "value", value)
    return f"{v:.3f}" if isinstance(v, int | float) else "-"

"""ml/registered_model: each new preference model becomes a registry version, behind a champion/challenger gate.

The gate is a blocking asset check declared on the asset: when the challenger is not promoted, the check
fails and `serving/scoring_endpoint` does not run downstream in the same run (the champion keeps serving).

What the asset holds: its materialisation records the version it registered (`model_version`
metadata, the challenger), but its value (through `model_io_manager`) is the region's CHAMPION after the
gate, carrying its registry `model_version`, so batch scoring downstream (mart/recommendations) uses the
same model as the endpoint; None while a region has no champion yet. The key keeps its name because the
UI, monitoring and deployment name it.
"""

from datetime import date, timedelta

import dagster as dg

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.defs.automation import register_new_model
from globolatte_dagster.defs.partitions import region_day_key, region_partitions
from globolatte_dagster.lib.gate import gate
from globolatte_dagster.lib.json_io import to_jsonable
from globolatte_dagster.lib.lineage import day_range, lineage_record
from globolatte_dagster.lib.model_store import model_version_id
from globolatte_dagster.lib.recommend import data as D
from globolatte_dagster.lib.recommend.data import Window
from globolatte_dagster.lib.recommend.evaluation import rescore
from globolatte_dagster.lib.recommend.metrics import HIT_RATE
from globolatte_dagster.lib.schema import SALES
from globolatte_dagster.resources.model_registry import ModelRegistry
from globolatte_dagster.resources.warehouse import Warehouse

GATE = "champion_challenger_gate"


class RegisterConfig(dg.Config):
    """How the gate judges a challenger."""

    margin: float = 0.01  # how far (hit rate@3) the challenger may fall below the champion and still win
    force_promotion: bool = False  # promote whatever the figures say; the decision is recorded as forced


def _upstream(context: dg.AssetExecutionContext, region: str) -> dict:
    """The run that materialised this region's ml/preference_model (normally this run)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_keys.PREFERENCE_MODEL, asset_partitions=[region]), limit=1
    ).records
    run_id = records[0].run_id if records else None
    return {
        "asset": asset_keys.REGISTERED_MODEL.to_user_string(),
        "partition": region,
        "model_run_id": run_id,
    }


def _upstream_partitions(model, region: str) -> dict[str, str]:
    """The upstream partitions a model was built from, spelled as Dagster spells keys and ranges."""
    first, last = day_range(model)
    sales = f"{region_day_key(region, first)}...{region_day_key(region, last)}" if first and last else region
    return {
        asset_keys.PREFERENCE_MODEL.to_user_string(): region,
        asset_keys.PURCHASE_HISTORY.to_user_string(): region,
        asset_keys.SALES.to_user_string(): sales,
    }


def _sales_rows(warehouse: Warehouse, region: str, last_day: str | None) -> dict:
    sql = (
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT day) AS days, MIN(day) AS first_day, MAX(day) AS last_day "
        f"FROM {SALES.schema}.{SALES.name} WHERE region = ? AND day <= ?"
    )
    row = warehouse.query(sql, [region, last_day or "9999-12-31"]).iloc[0]
    row.index = [str(c).lower() for c in row.index]
    return {
        "raw_sales_rows": int(row["n"]),
        "raw_sales_days": int(row["days"]),
        "raw_sales_first_day": str(row["first_day"])[:10],
        "raw_sales_last_day": str(row["last_day"])[:10],
    }


def _champion_value(
    registry: ModelRegistry, warehouse: Warehouse, region: str, version: str | None, challenger: dict
) -> tuple[float | None, str]:
    """The champion's hit rate on the challenger's hold-out, and how it was obtained.

    A champion that never saw the hold-out's days is rescored on them, answering the same requests the
    endpoint would get. One that did (it was trained after they landed) would be judged on what it learned
    from, so its candidate kind as retrained on this split stands in for it.
    """
    if version is None:
        return None, "no champion yet"
    window = challenger.get("holdout_days")
    if not window:
        return None, "the new version has no hold-out"
    recorded = registry.metrics(region, version)
    last = recorded.get("last_day")
    first = date.fromisoformat(window[0])
    if last and date.fromisoformat(last) < first:
        history = D.load_history(
            warehouse.query, region, int(recorded.get("params", {}).get("lookback_days", 365))
        )
        cutoff = first - timedelta(days=1)
        figures = rescore(
            registry.load(region, version), history, Window(cutoff, first, date.fromisoformat(window[1]))
        )
        return figures[
            "hit_rate"
        ], f"champion rescored on the new hold-out {window[0]}..{window[1]} it never saw"
    kind = recorded.get("champion")
    value = challenger.get(f"{HIT_RATE}_{kind}") if kind else None
    if value is None:
        return (
            None,
            f"champion {version} was trained on the new hold-out and its kind is not in this tournament",
        )
    return float(
        value
    ), f"the champion's candidate ({kind}) retrained on this split: the champion itself saw these days"


@dg.asset(
    key=asset_keys.REGISTERED_MODEL,
    ins={"preference_model": dg.AssetIn(key=asset_keys.PREFERENCE_MODEL)},
    partitions_def=region_partitions,
    io_manager_key="model_io_manager",
    check_specs=[
        dg.AssetCheckSpec(
            GATE,
            asset=asset_keys.REGISTERED_MODEL,
            blocking=True,
            description="Promote the new version unless it serves below the best baseline, or below the champion by more than the margin",
        )
    ],
    kinds={"python", "azureml"},
    group_name="ml",
    automation_condition=register_new_model(),
)
def registered_model(
    context: dg.AssetExecutionContext,
    config: RegisterConfig,
    preference_model,
    registry: ModelRegistry,
    warehouse: Warehouse,
):  # a dg.MaterializeResult whose value is the champion: no annotation, so the output is typed Any
    """Registers the region's new model (challenger) behind a blocking gate; its value is the champion after the gate."""
    region = context.partition_key
    model = preference_model
    metrics = to_jsonable(dict(model.metrics))
    last_day = model.as_of.isoformat() if getattr(model, "as_of", None) else None
    lineage = lineage_record(
        model,
        run_id=context.run_id,
        upstream=_upstream(context, region),
        data_rows=_sales_rows(warehouse, region, last_day),
        partitions=_upstream_partitions(model, region),
    )
    champion = registry.get_alias(region, "champion")
    registered = registry.register(region, model, metrics, lineage)
    champion_value, comparison = _champion_value(registry, warehouse, region, champion, metrics)
    decision = gate(
        metrics,
        champion_value,
        champion_version=champion,
        margin=config.margin,
        force=config.force_promotion,
        comparison=comparison,
    )
    registry.record_decision(region, registered.version, decision.as_dict())
    if decision.promote:
        registry.set_alias(region, "champion", registered.version)
        champion_model = model
    else:
        champion_model = registry.load(region, champion) if champion else None
    outcome = "forced" if decision.forced else ("promoted" if decision.promote else "rejected")
    context.log.info(f"{registered.model_version}: {outcome}. " + "; ".join(decision.reasons))
    figures = {
        "decision": outcome,
        "promoted": decision.promote,
        "forced": decision.forced,
        "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
        "comparison": comparison,
        "holdout_window": " .. ".join(decision.window or []),
        "candidate": decision.candidate,
        f"challenger_{HIT_RATE}": decision.challenger,
        "best_baseline": decision.best_baseline,
        f"best_baseline_{HIT_RATE}": decision.best_baseline_value,
        f"champion_{HIT_RATE}": decision.champion,
        "champion_version": model_version_id(region, champion) if champion else None,
        "margin": decision.margin,
    }
    return dg.MaterializeResult(
        value=champion_model,
        metadata={
            "model_version": registered.model_version,
            "registry_uri": registered.uri,
            "champion": model_version_id(region, registry.get_alias(region, "champion") or "none"),
            **figures,
            "lineage": dg.MetadataValue.json(lineage),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GATE,
                passed=decision.promote,
                # A rejected challenger with a champion in place is a warning: the champion keeps serving and
                # the recommendations go on. With no champion at all nothing downstream may run.
                severity=dg.AssetCheckSeverity.WARN
                if champion_model is not None
                else dg.AssetCheckSeverity.ERROR,
                metadata={"challenger": registered.model_version, **figures},
            )
        ],
    )

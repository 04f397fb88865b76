"""ml/registered_model: each new preference model becomes a registry version, behind a champion/challenger gate.

The gate is a blocking asset check declared on the asset: when the challenger is not promoted, the check
fails and `serving/scoring_endpoint` does not run downstream in the same run (the champion keeps serving).

The asset's value (through `model_io_manager`) is the region's champion after the gate, carrying its
registry `model_version`, so batch scoring downstream uses the same model as the endpoint; None while a
region has no champion yet.
"""

import dagster as dg

from globolatte_dagster.defs.partitions import region_partitions
from globolatte_dagster.lib import registry as R
from globolatte_dagster.lib.schema import SALES
from globolatte_dagster.resources.registry import ModelRegistry
from globolatte_dagster.resources.warehouse import Warehouse

PREFERENCE_MODEL = dg.AssetKey(["ml", "preference_model"])
REGISTERED_MODEL = dg.AssetKey(["ml", "registered_model"])
GATE = "champion_challenger_gate"


class RegisterConfig(dg.Config):
    """How the gate judges a challenger."""

    margin: float = 0.01  # how far (hit rate@3) the challenger may fall below the champion and still win
    force_promotion: bool = False  # promote whatever the figures say; the decision is recorded as forced


def _upstream(context: dg.AssetExecutionContext, region: str) -> dict:
    """The run that materialised this region's ml/preference_model (normally this run)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PREFERENCE_MODEL, asset_partitions=[region]), limit=1
    ).records
    run_id = records[0].run_id if records else None
    return {"asset": "ml/registered_model", "partition": region, "model_run_id": run_id}


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


def _champion_metrics(
    registry: ModelRegistry, warehouse: Warehouse, region: str, version: str | None, challenger: dict
) -> tuple[dict | None, str]:
    """The champion's figures on the challenger's hold-out window, and how they were obtained."""
    if version is None:
        return None, "no champion yet"
    recorded = registry.metrics(region, version)
    if R.same_window(challenger, recorded):
        return recorded, "recorded metrics of both on the same hold-out window"
    rescored = R.rescore_on_window(
        registry.load(region, version), warehouse.query, challenger["holdout_days"]
    )
    seen = rescored["days_seen_in_training"]
    return (
        rescored,
        f"champion rescored on the challenger's hold-out window ({seen} of its days were in the champion's training data)",
    )


@dg.asset(
    key=REGISTERED_MODEL,
    ins={"preference_model": dg.AssetIn(key=PREFERENCE_MODEL)},
    partitions_def=region_partitions,
    io_manager_key="model_io_manager",
    check_specs=[
        dg.AssetCheckSpec(
            GATE,
            asset=REGISTERED_MODEL,
            blocking=True,
            description="Promote the challenger only if it beats the baselines and is not worse than the champion by more than the margin",
        )
    ],
    kinds={"python", "azureml"},
    group_name="ml",
    automation_condition=dg.AutomationCondition.eager(),
)
def registered_model(
    context: dg.AssetExecutionContext,
    config: RegisterConfig,
    preference_model,
    registry: ModelRegistry,
    warehouse: Warehouse,
):  # a dg.MaterializeResult whose value is the champion: no annotation, so the output is typed Any
    """The region's new model as a registry version (challenger), promoted to champion by a blocking gate."""
    region = context.partition_key
    model = preference_model
    metrics = R.to_jsonable(dict(model.metrics))
    last_day = model.as_of.isoformat() if getattr(model, "as_of", None) else None
    lineage = R.lineage_record(
        model,
        run_id=context.run_id,
        upstream=_upstream(context, region),
        data_rows=_sales_rows(warehouse, region, last_day),
    )
    champion = registry.get_alias(region, "champion")
    registered = registry.register(region, model, metrics, lineage)
    champion_metrics, comparison = _champion_metrics(registry, warehouse, region, champion, metrics)
    decision = R.gate(
        metrics,
        champion_metrics,
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
        "challenger_hit_rate_at_3": decision.challenger,
        "repeat_hit_rate_at_3": decision.repeat_baseline,
        "popularity_hit_rate_at_3": decision.popularity_baseline,
        "champion_hit_rate_at_3": decision.champion,
        "champion_version": R.model_version_id(region, champion) if champion else None,
        "margin": decision.margin,
    }
    return dg.MaterializeResult(
        value=champion_model,
        metadata={
            "model_version": registered.model_version,
            "registry_uri": registered.uri,
            "champion": R.model_version_id(region, registry.get_alias(region, "champion") or "none"),
            **figures,
            "lineage": dg.MetadataValue.json(lineage),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GATE,
                passed=decision.promote,
                # A rejected challenger with a champion in place is a warning: the champion keeps serving and
                # the recommendations go on. With no champion at all nothing downstream may run.
                severity=dg.AssetCheckSeverity.WARN if champion_model is not None else dg.AssetCheckSeverity.ERROR,
                metadata={"challenger": registered.model_version, **figures},
            )
        ],
    )

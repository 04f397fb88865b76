"""Customer segments and the preference model per region, with their profiles, metrics and plots."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd

from globolatte_dagster import settings
from globolatte_dagster.defs.automation import daily_refresh
from globolatte_dagster.defs.partitions import region_partitions
from globolatte_dagster.lib import features as F
from globolatte_dagster.lib import model as Mo
from globolatte_dagster.lib import plots
from globolatte_dagster.lib import segments as S
from globolatte_dagster.resources.warehouse import Warehouse
from globolatte_dagster.settings import default_sensor_status

ML_KINDS = {"scikitlearn", "pandas"}


class SegmentsConfig(dg.Config):
    """k is chosen by silhouette over [k_min, k_max] unless `k` is set; `truth_dir` holds personas.csv."""

    seed: int = 0
    k_min: int = 2
    k_max: int = 10
    k: int = 0
    n_init: int = 10
    truth_dir: str = ""  # default: $GLOBOLATTE_HOME/simulator when it exists


def _previous_segments(warehouse: Warehouse, region: str) -> pd.DataFrame:
    warehouse.ensure_tables([S.SEGMENTS])
    sql = "SELECT customer_id, segment FROM ml.customer_segments WHERE region = ?"
    df = warehouse.query(sql, [region])
    df.columns = [c.lower() for c in df.columns]
    return df


def _personas(truth_dir: str, region: str) -> pd.DataFrame | None:
    path = Path(truth_dir) if truth_dir else settings.home() / "simulator"
    file = path / "personas.csv"
    if not file.exists():
        return None
    personas = pd.read_csv(file, dtype=str)
    return personas[personas["region"] == region]


@dg.asset(
    key=S.SEGMENTS.key,
    partitions_def=region_partitions,
    ins={"features": dg.AssetIn(key=F.CUSTOMER_FEATURES.key)},
    metadata={"partition_expr": "region"},
    io_manager_key="warehouse_io_manager",
    kinds=ML_KINDS | {"duckdb", "snowflake"},
    group_name="ml",
    pool="warehouse",
    automation_condition=daily_refresh(),
)
def customer_segments(
    context: dg.AssetExecutionContext, config: SegmentsConfig, warehouse: Warehouse, features: pd.DataFrame
) -> pd.DataFrame:
    """K-means segments of scaled customer features, k by silhouette, ids aligned with the last run."""
    region = context.partition_key
    if len(features) < 4:
        raise dg.Failure(
            description=f"{region}: {len(features)} customer(s) with features, too few to segment"
        )
    k_range = range(config.k_min, config.k_max + 1)
    seg = S.fit_segments(features, config.seed, k_range, k=config.k or None, n_init=config.n_init)
    labels, dist = seg.assign(features)
    out = pd.DataFrame({"customer_id": features["customer_id"], "segment": labels})
    previous = _previous_segments(warehouse, region)
    if len(previous):
        S.align_to_previous(seg, out, previous)
        labels, dist = seg.assign(features)
        out["segment"] = labels
    stability, shared = S.stability(out, previous)
    personas = _personas(config.truth_dir, region)
    persona_ari = S.persona_agreement(out, personas)[0] if personas is not None else None
    products = F.products(warehouse.query)
    profile = S.profiles(
        features, out, dict(zip(products["product_id"], products["product_name"], strict=True))
    )
    png = plots.segments_plot(seg._scaled(features), labels, profile, config.seed)
    meta = {
        "k": seg.k,
        "silhouette_by_k": dg.MetadataValue.json({str(k): round(v, 4) for k, v in seg.silhouette.items()}),
        "customers": len(out),
        "profiles": dg.MetadataValue.md(plots.markdown_table(profile)),
        "plot": dg.MetadataValue.md(plots.markdown_image(png, "segments")),
        "stability_ari": dg.MetadataValue.float(stability) if stability is not None else "no previous run",
        "stability_shared_customers": shared,
    }
    if persona_ari is not None:
        meta["persona_ari"] = dg.MetadataValue.float(persona_ari)
    context.add_output_metadata(meta)
    return out.assign(
        region=region, as_of=features["as_of"], low_history=features["low_history"], distance=dist
    )[S.SEGMENTS.column_names]


class PreferenceModelConfig(dg.Config):
    """Split, booster hyperparameters and feature windows of the preference model (seeds fixed)."""

    holdout_days: int = 14
    train_days: int = 28
    max_iter: int = 120
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    negative_sample: float = 1.0  # 1.0: every candidate row, unweighted (see lib.model.TrainParams)
    sample_customers: int = 1000  # customers whose training and hold-out rows are built (seeded sample)
    train_buyers_per_day: int = 200  # buyers per training day the booster learns from (seeded sample)
    seed: int = 0
    k: int = 3
    # OpenMP threads of the booster's fits. The fitted model is the same for any count (histograms are
    # built per feature); 1 suits a machine that runs several runs at once, the core count a lone run.
    threads: int = 1
    lookback_days: int = 180
    recent_days: int = 28
    half_life_days: float = 14.0
    min_visit_days: int = 3

    def train_params(self) -> Mo.TrainParams:
        fields = Mo.TrainParams.__dataclass_fields__
        return Mo.TrainParams(**{k: v for k, v in self.model_dump().items() if k in fields})

    def feature_params(self) -> F.FeatureParams:
        return F.FeatureParams(self.lookback_days, self.recent_days, self.half_life_days, self.min_visit_days)


@dg.asset(
    key=["ml", "preference_model"],
    partitions_def=region_partitions,
    ins={"segments": dg.AssetIn(key=S.SEGMENTS.key)},
    deps=[dg.AssetDep(F.CUSTOMER_FEATURES.key)],
    io_manager_key="model_io_manager",
    kinds=ML_KINDS,
    group_name="ml",
    automation_condition=daily_refresh(),
)
def preference_model(
    context: dg.AssetExecutionContext,
    config: PreferenceModelConfig,
    warehouse: Warehouse,
    segments: pd.DataFrame,
) -> Mo.PreferenceModel:
    """Which products a customer buys on a day: evaluated on a time-based hold-out, refit for serving."""
    region = context.partition_key
    try:
        result = Mo.train_region(
            warehouse.query,
            region,
            segments,
            config.train_params(),
            config.feature_params(),
            context.log.info,
        )
    except ValueError as exc:
        raise dg.Failure(description=f"{region}: {exc}") from exc
    ev, m, k = result.evaluation, result.model.metrics, config.k
    names = ("model", "repeat", "popularity")
    table = pd.DataFrame([{"baseline": n, f"hit_rate_at_{k}": ev[f"hit_rate_at_{k}_{n}"]} for n in names])
    context.add_output_metadata(
        {
            **{
                f"hit_rate_at_{k}_{n}": dg.MetadataValue.float(round(ev[f"hit_rate_at_{k}_{n}"], 4))
                for n in names
            },
            "beats_repeat": ev[f"hit_rate_at_{k}_model"] > ev[f"hit_rate_at_{k}_repeat"],
            "coverage": dg.MetadataValue.float(round(ev["coverage"], 4)),
            "holdout_buyer_days": ev["holdout_buyer_days"],
            "sample_customers": m["sample_customers"],
            "region_customers": m["region_customers"],
            "train_buyer_days": m["train_buyer_days"],
            "train_rows": m["train_rows"],
            "metrics_table": dg.MetadataValue.md(plots.markdown_table(table)),
            "per_segment": dg.MetadataValue.md(plots.markdown_table(pd.DataFrame(ev["per_segment"]))),
            "per_day": dg.MetadataValue.md(plots.markdown_table(pd.DataFrame(ev["per_day"]))),
            "plot": dg.MetadataValue.md(plots.markdown_image(plots.model_plot(ev, k), "hit rate")),
            "train_days": " .. ".join(m["train_days"]),
            "holdout_days": " .. ".join(m["holdout_days"]),
            "as_of": result.model.as_of.isoformat(),
            "products": m["products"],
            "customers": m["customers"],
            "timings_s": dg.MetadataValue.json({key: round(v, 2) for key, v in result.timings.items()}),
            "params": dg.MetadataValue.json(json.loads(json.dumps(result.model.params, default=str))),
        }
    )
    return result.model


ml_automation_sensor = dg.AutomationConditionSensorDefinition(
    "ml_automation_sensor",
    target=dg.AssetSelection.assets(F.CUSTOMER_FEATURES.key, S.SEGMENTS.key, ["ml", "preference_model"])
    | dg.AssetSelection.assets(["mart", "recommendations"]),
    default_status=default_sensor_status(),
    minimum_interval_seconds=30,
    description="Refreshes features, segments, models and recommendations once new sales land (once a day per region).",
)

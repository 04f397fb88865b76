"""Customer segments and the recommender tournament per region, with their profiles, metrics and plots."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from globolatte_dagster import keys as asset_keys
from globolatte_dagster import settings
from globolatte_dagster.defs.automation import daily_refresh, retrain_on_alert
from globolatte_dagster.defs.partitions import region_of_region_day, region_partitions
from globolatte_dagster.lib import plots
from globolatte_dagster.lib import segments as S
from globolatte_dagster.lib.recommend import data as D
from globolatte_dagster.lib.recommend.metrics import HIT_RATE
from globolatte_dagster.lib.recommend.scoring import RegionRecommender
from globolatte_dagster.lib.recommend.training import CANDIDATES, TrainParams
from globolatte_dagster.lib.schema import SEGMENTS
from globolatte_dagster.resources.model_training import ModelTraining
from globolatte_dagster.resources.warehouse import Warehouse
from globolatte_dagster.training.folder import TrainingRequest

ML_KINDS = {"scikitlearn", "pandas"}


class SegmentsConfig(dg.Config):
    """k is chosen by silhouette over [k_min, k_max] unless `k` is set; `truth_dir` holds personas.csv."""

    seed: int = 0
    k_min: int = 2
    k_max: int = 10
    k: int = 0
    n_init: int = 10
    lookback_days: int = 365
    truth_dir: str = ""  # default: $GLOBOLATTE_HOME/simulator when it exists


def _previous_segments(warehouse: Warehouse, region: str) -> pd.DataFrame:
    warehouse.ensure_tables([SEGMENTS])
    df = warehouse.query("SELECT customer_id, segment FROM ml.customer_segments WHERE region = ?", [region])
    df.columns = [c.lower() for c in df.columns]
    return df


def _personas(truth_dir: str, region: str) -> pd.DataFrame | None:
    path = Path(truth_dir) if truth_dir else settings.home() / "simulator"
    file = path / "personas.csv"
    if not file.exists():
        return None
    personas = pd.read_csv(file, dtype=str)
    return personas[personas["region"] == region]


@dg.multi_asset(
    outs={
        "customer_segments": dg.AssetOut(
            key=asset_keys.CUSTOMER_SEGMENTS,
            io_manager_key="warehouse_io_manager",
            metadata={"partition_expr": "region"},
            description="Customers clustered on what they buy (k by silhouette), ids aligned with the last run.",
            kinds=ML_KINDS | {"duckdb", "snowflake"},
            automation_condition=daily_refresh(),
        ),
        "segment_model": dg.AssetOut(
            key=asset_keys.SEGMENT_MODEL,
            io_manager_key="model_io_manager",
            description="The fitted segmenter, which places customers in segments at any cutoff.",
            kinds=ML_KINDS,
            automation_condition=daily_refresh(),
        ),
    },
    partitions_def=region_partitions,
    ins={"features": dg.AssetIn(key=asset_keys.CUSTOMER_FEATURES)},
    deps=[dg.AssetDep(asset_keys.PURCHASE_HISTORY)],
    group_name="ml",
    pool="warehouse",
)
def customer_segments(
    context: dg.AssetExecutionContext, config: SegmentsConfig, warehouse: Warehouse, features: pd.DataFrame
):
    """K-means segments of what customers buy, k by silhouette, ids aligned with the last run."""
    region = context.partition_key
    history = D.load_history(warehouse.query, region, config.lookback_days)
    mix = S.purchase_mix(history)
    k_range = range(config.k_min, config.k_max + 1)
    try:
        seg = S.fit_segments(mix, config.seed, k_range, k=config.k or None, n_init=config.n_init)
    except ValueError as exc:
        raise dg.Failure(description=f"{region}: {exc}") from exc
    ids = history.customers[mix.customers].astype(str)
    labels, _ = seg.assign_mix(mix)
    previous = _previous_segments(warehouse, region)
    if len(previous):
        S.align_to_previous(seg, pd.DataFrame({"customer_id": ids, "segment": labels}), previous)
    labels, dist = seg.assign_mix(mix)
    out = pd.DataFrame({"customer_id": ids, "segment": labels})
    stability, shared = S.stability(out, previous)
    personas = _personas(config.truth_dir, region)
    persona_ari = S.persona_agreement(out, personas)[0] if personas is not None else None
    profile = S.profiles(mix, labels, history.product_names)
    spend = (
        features.set_index("customer_id")["spend_per_visit_usd"] if len(features) else pd.Series(dtype=float)
    )
    profile["spend_per_visit_usd"] = [
        round(float(spend.reindex(ids[labels == s]).mean()), 2) for s in profile["segment"]
    ]
    meta = {
        "k": seg.k,
        "silhouette_by_k": dg.MetadataValue.json({str(k): round(v, 4) for k, v in seg.silhouette.items()}),
        "customers": len(out),
        "fitted_on": f"customers with at least {S.MIN_VISITS} visit days ({int((mix.visits >= S.MIN_VISITS).sum())})",
        "profiles": dg.MetadataValue.md(plots.markdown_table(profile)),
        "plot": dg.MetadataValue.md(
            plots.markdown_image(
                plots.segments_plot(seg.matrix(mix), labels, profile, config.seed), "segments"
            )
        ),
        "stability_ari": dg.MetadataValue.float(stability) if stability is not None else "no previous run",
        "stability_shared_customers": shared,
    }
    if persona_ari is not None:
        meta["persona_ari"] = dg.MetadataValue.float(persona_ari)
    table = out.assign(
        region=region,
        as_of=pd.Timestamp(history.last_day),
        low_history=mix.visits < S.MIN_VISITS,
        distance=dist,
    )[SEGMENTS.column_names]
    yield dg.Output(table, output_name="customer_segments", metadata=meta)
    yield dg.Output(
        seg, output_name="segment_model", metadata={"k": seg.k, "as_of": history.last_day.isoformat()}
    )


class PreferenceModelConfig(dg.Config):
    """The tournament: split, candidates, the context model's booster (seeds fixed), forced choices."""

    holdout_days: int = 14
    lookback_days: int = 365
    recent_days: int = 28
    train_windows: int = 3
    max_candidates: int = 10
    negative_share: float = 0.25
    max_train_rows: int = 400_000  # named option for scale: the booster's seeded row sample (0: every row)
    max_iter: int = 120
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 50
    l2_regularization: float = 1.0
    # OpenMP threads of the booster's fits; the fitted model is the same for any count.
    threads: int = 1
    # Score the hold-out in a second thread while the candidates are refitted for serving (same results).
    overlap: bool = True
    seed: int = 0
    n_boot: int = 1000
    candidates: list[str] = Field(default_factory=lambda: list(CANDIDATES))
    force_candidate: str = (
        ""  # serve this candidate in the top list whatever the figures (recorded as forced)
    )
    force_discover: str = ""

    def train_params(self) -> TrainParams:
        fields = TrainParams.__dataclass_fields__
        values = {k: v for k, v in self.model_dump().items() if k in fields}
        values["candidates"] = tuple(values["candidates"])
        return TrainParams(**values)


def _tournament_metadata(result, region: str) -> dict:
    m, k = result.metrics, HIT_RATE
    table = result.tables.get("tournament")
    reasons = [f"{lst}: {r}" for lst in ("top", "discover") for r in m["tournament"][lst]["reasons"]]
    meta = {
        "champion": m["champion"],
        "discover_champion": m["discover_champion"],
        "forced": m["forced"],
        "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in reasons)),
        "weather": m["weather"],
        "customers": m["customers"],
        "products": m["products"],
        "sales_days": m["sales_days"],
        "as_of": m["last_day"],
        "candidates": dg.MetadataValue.json(json.loads(json.dumps(m["candidates"], default=str))),
        "skipped": dg.MetadataValue.json(m["skipped"]),
        "timings_s": dg.MetadataValue.json(result.timings),
    }
    if k in m:
        meta[k] = dg.MetadataValue.float(round(m[k], 4))
        meta[f"best_baseline_{k}"] = dg.MetadataValue.float(round(m[f"best_baseline_{k}"], 4))
        meta["best_baseline"] = m["best_baseline"]
        meta["holdout_days"] = " .. ".join(m["holdout_days"])
        meta["holdout_customer_days"] = m["holdout_customer_days"]
        meta["discover_customer_days"] = m["discover_customer_days"]
        for name in CANDIDATES:
            if f"{k}_{name}" in m:
                meta[f"{k}_{name}"] = dg.MetadataValue.float(round(m[f"{k}_{name}"], 4))
    if f"discover_{k}" in m:
        meta[f"discover_{k}"] = dg.MetadataValue.float(round(m[f"discover_{k}"], 4))
    if table is not None:
        meta["tournament"] = dg.MetadataValue.md(plots.markdown_table(table, "{:.4f}"))
        per_day = result.tables.get("per_day")
        meta["plot"] = dg.MetadataValue.md(
            plots.markdown_image(plots.tournament_plot(table, per_day), "tournament")
        )
        if per_day is not None:
            meta["per_day"] = dg.MetadataValue.md(plots.markdown_table(per_day, "{:.3f}"))
    return meta


@dg.asset(
    key=asset_keys.PREFERENCE_MODEL,
    partitions_def=region_partitions,
    ins={"segment_model": dg.AssetIn(key=asset_keys.SEGMENT_MODEL)},
    deps=[
        dg.AssetDep(asset_keys.PURCHASE_HISTORY),
        dg.AssetDep(asset_keys.WEATHER, partition_mapping=region_of_region_day),
        dg.AssetDep(asset_keys.PRODUCTS),
        dg.AssetDep(asset_keys.CALENDAR),
    ],
    io_manager_key="model_io_manager",
    kinds=ML_KINDS,
    group_name="ml",
    # new data once a day; and after a monitor run whose realised hit-rate or feature-drift check failed
    automation_condition=daily_refresh() | retrain_on_alert(),
)
def preference_model(
    context: dg.AssetExecutionContext,
    config: PreferenceModelConfig,
    warehouse: Warehouse,
    training: ModelTraining,
    segment_model: S.Segmenter,
) -> dg.Output[RegionRecommender]:
    """Every candidate recommender judged on a time-based hold-out; the champions refit for serving."""
    region = context.partition_key
    try:
        params = config.train_params()
        frames = D.load_frames(warehouse.query, region, params.lookback_days)
        request = TrainingRequest(
            frames, params, segment_model, config.force_candidate, config.force_discover
        )
        run = training.train(context, request)  # in the run, a subprocess or Azure ML (GLOBOLATTE_TRAINING)
    except ValueError as exc:
        raise dg.Failure(description=f"{region}: {exc}") from exc
    # an Output, not a bare value: a Pipes session (subprocess, Azure ML) requires typed results
    return dg.Output(run.result.model, metadata={**run.metadata, **_tournament_metadata(run.result, region)})

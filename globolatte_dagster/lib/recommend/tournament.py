"""`train_region`: the one training entry point. Data and parameters in; fitted candidates, champions and report out.

1. Split by time: the last `holdout_length` sales days are the hold-out; everything is fitted as of the
   day before it (hyperparameters tuned on that training window only).
2. Tournament on the hold-out (`evaluation.py`): the `top` and the `discover` list each get a champion.
3. Refit every candidate on the whole history (same hyperparameters) for serving, as of the last landed day
   (with `overlap`, while the hold-out is scored in a second thread).

A region with one landed day has no hold-out: popularity serves (and repeat is fitted) until a second day
lands. A candidate that cannot be fitted (too little history for the context model's windows, say) is
skipped with its reason; popularity always can be.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from globolatte_dagster.lib.recommend.candidates import customer_product_matrix
from globolatte_dagster.lib.recommend.data import History, Window
from globolatte_dagster.lib.recommend.design import WEATHER_FEATURES
from globolatte_dagster.lib.recommend.evaluation import (
    DISCOVER_BASELINES,
    TOP_BASELINES,
    ListResult,
    choose,
    evaluate,
    force,
    holdout_rows,
)
from globolatte_dagster.lib.recommend.fit_cache import FitCache, SegmentAt
from globolatte_dagster.lib.recommend.metrics import HIT_RATE, K
from globolatte_dagster.lib.recommend.scoring import RegionRecommender
from globolatte_dagster.lib.recommend.training import (
    CANDIDATES,
    ContextModel,
    FittedSet,
    TrainParams,
    describe_all,
    fit_candidates,
    holdout_length,
    params_dict,
)

COMPLEXITY: dict[str, int] = {name: i for i, name in enumerate(CANDIDATES)}
assert COMPLEXITY["context_model"] == ContextModel.complexity


@dataclass
class TrainingResult:
    model: RegionRecommender
    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _no_tournament(list_name: str, reason: str) -> ListResult:
    return ListResult(list_name, 0, {}, {}, "popularity", "popularity", [reason, "champion: popularity"])


def train_region(
    history: History,
    params: TrainParams | None = None,
    segment_at: SegmentAt | None = None,
    segments_now: np.ndarray | None = None,
    force_candidate: str = "",
    force_discover: str = "",
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Train and judge every candidate of one region (see the module docstring)."""
    p = params or TrainParams()
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    days = history.sales_days
    last = days[-1]
    h = holdout_length(len(days), p)
    tables: dict[str, pd.DataFrame] = {}
    evaluation: dict[str, Any] = {}
    if h == 0:
        serve = fit_candidates(
            history, last, replace(p, candidates=("popularity", "repeat")), 1, segment_at, log=say
        )
        top = _no_tournament(
            "top", "one landed sales day: no hold-out to judge on, popularity serves until a second day lands"
        )
        disc = _no_tournament("discover", "one landed sales day: no hold-out to judge on")
        eval_set: FittedSet | None = None
    else:
        cutoff = days[len(days) - h - 1]
        window = Window(cutoff, cutoff + timedelta(days=1), last)
        say(
            f"{history.region}: hold-out {window.first}..{window.last} ({h} sales days), fitting as of {cutoff}"
        )
        # One cache and one view of the history per cutoff for both fits and the scoring (`FitCache`).
        with history.shared_views():
            t = time.perf_counter()
            cache = FitCache(history, {})
            eval_set = fit_candidates(history, cutoff, p, h, segment_at, log=say, cache=cache)
            timings["fit_for_holdout_s"] = time.perf_counter() - t
            t = time.perf_counter()
            rows = holdout_rows(history, window)

            def score_holdout() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], pd.DataFrame, float]:
                return *evaluate(eval_set.models, rows), time.perf_counter() - t

            # The scoring reads only the fitted hold-out candidates and the refit only adds to the cache:
            # with `overlap`, the scoring runs in a second thread while the refit runs here.
            with ThreadPoolExecutor(max_workers=1) as pool:
                scoring = pool.submit(score_holdout) if p.overlap else None
                t_refit = time.perf_counter()
                serve = fit_candidates(
                    history, last, p, h, segment_at, tuned=eval_set.models, log=say, cache=cache
                )
                timings["refit_s"] = time.perf_counter() - t_refit
                top_hits, disc_hits, per_day, timings["holdout_scoring_s"] = (
                    scoring.result() if scoring is not None else score_holdout()
                )
            del cache
        top = (
            choose(top_hits, COMPLEXITY, TOP_BASELINES, p.n_boot, p.seed, "top")
            if top_hits
            else _no_tournament("top", "no loyalty customer bought in the hold-out: popularity serves")
        )
        disc = (
            choose(disc_hits, COMPLEXITY, DISCOVER_BASELINES, p.n_boot, p.seed, "discover")
            if disc_hits
            else _no_tournament("discover", "no known customer bought a product new to them in the hold-out")
        )
        tables["per_day"] = per_day
        evaluation = {
            "holdout_days": [window.first.isoformat(), window.last.isoformat()],
            "holdout_sales_days": h,
            "train_days": [days[0].isoformat(), cutoff.isoformat()],
            "holdout_customer_days": len(rows.bought),
            "holdout_unseen_customer_share": float(np.mean(rows.requests.cust < 0))
            if len(rows.bought)
            else None,
            "discover_customer_days": len(rows.new_bought),
        }
    if force_candidate:
        top = force(top, force_candidate)
    if force_discover:
        disc = force(disc, force_discover)
    for result in (top, disc):
        if result.champion not in serve.models:  # fitted for the hold-out but not on the whole history
            fallback = result.best_baseline if result.best_baseline in serve.models else "popularity"
            result.reasons.append(
                f"{result.champion} could not be refitted for serving ({serve.skipped.get(result.champion)}): "
                f"{fallback} serves"
            )
            result.champion = fallback
    if top_table := [r.table(COMPLEXITY) for r in (top, disc) if r.summary]:
        tables["tournament"] = pd.concat(top_table, ignore_index=True)
    metrics = _metrics(history, p, top, disc, evaluation, eval_set, serve)
    timings["total_s"] = time.perf_counter() - t0
    say(f"{history.region}: champion {top.champion} (top), {disc.champion} (discover)")
    model = RegionRecommender(
        region=history.region,
        as_of=last,
        products=history.products,
        product_names=history.product_names,
        customers=history.customers,
        bought=customer_product_matrix(history).tocsr(),
        segment=np.full(history.n_customers, -1) if segments_now is None else np.asarray(segments_now),
        weather=history.weather,
        candidates=serve.models,
        champion=top.champion,
        discover_champion=disc.champion,
        metrics=metrics,
        params=params_dict(p),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return TrainingResult(model, metrics, tables, {k: round(v, 2) for k, v in timings.items()})


def _metrics(
    history: History,
    p: TrainParams,
    top: ListResult,
    disc: ListResult,
    evaluation: dict[str, Any],
    eval_set: FittedSet | None,
    serve: FittedSet,
) -> dict[str, Any]:
    """The figures the registry records and the gate reads (names derive from K)."""
    out: dict[str, Any] = {"k": K, "champion": top.champion, "discover_champion": disc.champion, **evaluation}
    if top.summary:
        out[HIT_RATE] = top.summary[top.champion]["hit_rate"]
        out["best_baseline"] = top.best_baseline
        out[f"best_baseline_{HIT_RATE}"] = top.summary[top.best_baseline]["hit_rate"]
        for name, s in top.summary.items():
            out[f"{HIT_RATE}_{name}"] = s["hit_rate"]
    if disc.summary:
        out[f"discover_{HIT_RATE}"] = disc.summary[disc.champion]["hit_rate"]
        for name, s in disc.summary.items():
            out[f"discover_{HIT_RATE}_{name}"] = s["hit_rate"]
    out["tournament"] = {"top": top.as_dict(), "discover": disc.as_dict()}
    out["forced"] = top.forced or disc.forced
    out["candidates"] = describe_all(serve.models)
    out["skipped"] = {**(eval_set.skipped if eval_set else {}), **serve.skipped}
    out["fit_seconds"] = {"holdout": eval_set.seconds if eval_set else {}, "serving": serve.seconds}
    weather_days = len(history.weather.by_day)
    out["weather"] = (
        f"{weather_days} days of weather"
        if weather_days
        else f"absent: no weather features ({', '.join(WEATHER_FEATURES)})"
    )
    out["customers"] = history.n_customers
    out["products"] = history.n_products
    out["sales_days"] = len(history.sales_days)
    out["last_day"] = history.last_day.isoformat()
    out["params"] = params_dict(p)
    return out

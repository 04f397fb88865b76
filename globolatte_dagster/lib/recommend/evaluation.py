"""The hold-out tournament: hit rate@K of every candidate on the same customer-days, and the champion.

Both lists are judged on the time-based hold-out, with each candidate fitted as of the day before it and
every hold-out day scored in that day's own context (its observed weather, weekday and holidays):
- `top`: over every (day, loyalty customer who bought that day), a hit when one of the K products was bought;
- `discover`: over (day, known customer who bought something new to them that day), a hit when one of the
  K products never bought before the cutoff was among the new ones.

The champion: the best baseline by its point estimate (ties to the simpler), replaced by a more complex
candidate only when its lead over the current choice is beyond noise (the 95% bootstrap interval of the
paired difference over customer-days lies above zero). So the champion is never below the best baseline on
the hold-out, and a region with sales always has one (popularity at worst).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from globolatte_dagster.lib.recommend.candidates import Recommender, customer_product_matrix
from globolatte_dagster.lib.recommend.data import History, Requests, Window, label_requests
from globolatte_dagster.lib.recommend.metrics import (
    HIT_RATE,
    K,
    boot_means,
    bootstrap,
    hits,
    paired_lead,
    top_k,
)

TOP_BASELINES: tuple[str, ...] = ("popularity", "repeat")
DISCOVER_BASELINES: tuple[str, ...] = ("popularity",)
DISCOVER_CANDIDATES: tuple[str, ...] = ("popularity", "tifu_knn", "context_model")


@dataclass
class ListResult:
    """One list's tournament: hits per candidate on the same rows, intervals, and the choice."""

    list: str
    rows: int
    hits: dict[str, np.ndarray] = field(repr=False)
    summary: dict[str, dict[str, float]]
    champion: str
    best_baseline: str
    reasons: list[str]
    forced: bool = False

    def table(self, complexity: dict[str, int]) -> pd.DataFrame:
        rows = []
        for name, s in sorted(self.summary.items(), key=lambda kv: complexity.get(kv[0], 9)):
            rows.append(
                {
                    "list": self.list,
                    "candidate": name,
                    HIT_RATE: round(s["hit_rate"], 4),
                    "ci_95": f"{s['ci_low']:.3f} .. {s['ci_high']:.3f}",
                    "vs_best_baseline": round(s["diff"], 4),
                    "diff_ci_95": f"{s['diff_ci_low']:+.3f} .. {s['diff_ci_high']:+.3f}",
                    "champion": "yes" if name == self.champion else "",
                }
            )
        return pd.DataFrame(rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "list": self.list,
            "rows": self.rows,
            "champion": self.champion,
            "best_baseline": self.best_baseline,
            "forced": self.forced,
            "reasons": self.reasons,
            "candidates": self.summary,
        }


def choose(
    hit_arrays: dict[str, np.ndarray],
    complexity: dict[str, int],
    baselines: tuple[str, ...],
    n_boot: int = 1000,
    seed: int = 0,
    list_name: str = "top",
) -> ListResult:
    """The champion of one list (see the module docstring), with the reasons that name the figures."""
    present = [b for b in baselines if b in hit_arrays]
    if not present:
        raise ValueError(f"no baseline among {baselines} to judge the {list_name} list")
    best = max(present, key=lambda b: (float(hit_arrays[b].mean()), -complexity[b]))
    draws = boot_means(hit_arrays, n_boot, seed)  # one set of resamples for the table and the gate
    summary = bootstrap(hit_arrays, best, n_boot, seed, draws)
    reasons = [
        f"best baseline: {best} {summary[best]['hit_rate']:.4f} "
        f"(95% {summary[best]['ci_low']:.4f}..{summary[best]['ci_high']:.4f}) on {len(hit_arrays[best])} customer-days"
    ]
    current = best
    for name in sorted(hit_arrays, key=lambda n: complexity[n]):
        if complexity[name] <= complexity[current] or name in baselines:
            continue
        lead, low, high = paired_lead(
            hit_arrays[name], hit_arrays[current], draws=(draws[name], draws[current])
        )
        verdict = "replaces" if low > 0 else "does not replace"
        reasons.append(
            f"{name} {verdict} {current}: lead {lead:+.4f} (95% {low:+.4f}..{high:+.4f})"
            + ("" if low > 0 else ": not beyond noise")
        )
        if low > 0:
            current = name
    reasons.append(f"champion: {current} {summary[current]['hit_rate']:.4f}")
    return ListResult(list_name, len(hit_arrays[best]), hit_arrays, summary, current, best, reasons)


def force(result: ListResult, candidate: str) -> ListResult:
    """The same tournament with `candidate` promoted by hand (recorded as forced)."""
    if candidate not in result.hits:
        raise ValueError(
            f"cannot force '{candidate}' for the {result.list} list: not among {sorted(result.hits)}"
        )
    result.reasons.append(
        f"FORCED by config: {candidate} ({result.summary[candidate]['hit_rate']:.4f}) serves instead of "
        f"{result.champion} ({result.summary[result.champion]['hit_rate']:.4f})"
    )
    result.champion, result.forced = candidate, True
    return result


@dataclass
class HoldoutRows:
    """The hold-out requests of both lists, built once for every candidate."""

    window: Window
    requests: Requests
    bought: list[set[int]]
    discover_rows: np.ndarray  # indices of requests with a new product, known customers only
    new_bought: list[set[int]]
    exclude: np.ndarray  # (len(discover_rows), P) products bought before the cutoff


def holdout_rows(history: History, window: Window) -> HoldoutRows:
    requests, bought = label_requests(history, window)
    before = customer_product_matrix(history.until(window.cutoff))
    seen_products = np.diff(before.indptr)  # products each customer bought before the cutoff
    known = np.flatnonzero((requests.cust >= 0) & (seen_products[np.clip(requests.cust, 0, None)] > 0))
    # what each known customer bought that day and had not bought before the cutoff
    counts = [len(b) for b in bought]
    day_bought = sparse.csr_matrix(
        (
            np.ones(sum(counts)),
            (
                np.repeat(np.arange(len(bought)), counts),
                np.fromiter((i for b in bought for i in b), np.int64),
            ),
        ),
        shape=(len(bought), history.n_products),
    )[known]
    fresh = (day_bought - day_bought.multiply(before[requests.cust[known]] > 0)).tocsr()
    fresh.eliminate_zeros()
    has_new = np.flatnonzero(np.diff(fresh.indptr) > 0)
    rows = known[has_new].tolist()
    new = [set(fresh.indices[fresh.indptr[i] : fresh.indptr[i + 1]].tolist()) for i in has_new]
    rows_arr = np.array(rows, dtype=np.int64)
    exclude = (
        before[requests.cust[rows_arr]].toarray() > 0
        if len(rows_arr)
        else np.zeros((0, history.n_products), dtype=bool)
    )
    return HoldoutRows(window, requests, bought, rows_arr, new, exclude)


def evaluate(
    models: dict[str, Recommender], rows: HoldoutRows
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], pd.DataFrame]:
    """(top hits, discover hits, per-day table) of every candidate on the hold-out rows."""
    top_hits: dict[str, np.ndarray] = {}
    disc_hits: dict[str, np.ndarray] = {}
    days = rows.requests.day
    per_day = pd.DataFrame({"day": [date.fromordinal(int(d)).isoformat() for d in days]})
    for name, model in models.items():
        scores = model.score(rows.requests) if len(rows.requests) else np.zeros((0, 0))
        if len(rows.requests):
            top_hits[name] = hits(top_k(scores, K), rows.bought)
            per_day[name] = top_hits[name]
        if name in DISCOVER_CANDIDATES and len(rows.discover_rows):
            picks = top_k(scores[rows.discover_rows], K, exclude=rows.exclude)
            disc_hits[name] = hits(picks, rows.new_bought)
    names = [c for c in per_day.columns if c != "day"]
    table = per_day.groupby("day")[names].mean().round(4)
    table.insert(0, "buyers", per_day.groupby("day").size())
    return top_hits, disc_hits, table.reset_index()


def rescore(model: Any, history: History, window: Window, k: int = K) -> dict[str, Any]:
    """Hit rate@k of a served model (anything with `recommend`) on a window's customer-days, in each day's context.

    Used for a registered champion on a newer hold-out: it answers the same requests the endpoint would get.
    """
    requests, bought = label_requests(history, window)
    if not bought:
        raise ValueError(f"no loyalty customer bought in {window.first}..{window.last}")
    payload = []
    for c, d, t in zip(requests.cust, requests.day, requests.ctx.temp, strict=True):
        day = date.fromordinal(int(d)).isoformat()
        req = {"region": history.region, "customer_id": str(history.customers[c]), "date": day, "k": k}
        if np.isfinite(t):
            req["temp_max_c"] = float(t)
        payload.append(req)
    position = {str(p): i for i, p in enumerate(history.products)}
    got = np.zeros(len(payload))
    for start in range(0, len(payload), 1000):
        answers = model.recommend(payload[start : start + 1000])
        for i, a in enumerate(answers, start=start):
            picks = {position[r["product_id"]] for r in a["recommendations"] if r["product_id"] in position}
            got[i] = float(bool(picks & bought[i]))
    return {
        "hit_rate": float(got.mean()),
        "customer_days": len(got),
        "holdout_days": [window.first.isoformat(), window.last.isoformat()],
    }

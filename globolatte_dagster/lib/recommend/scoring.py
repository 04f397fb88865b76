"""What the endpoint and the mart serve: one region's fitted candidates and its champions, behind the contract.

`RegionRecommender` is one self-contained, picklable object per region: every candidate fitted on the
region's history up to its last landed day, the champion of the `top` list and of the `discover` list (new
products for the customer), the weather book (observed and forecast days), the customers' segments and the
tournament's metrics. `recommend(requests)` answers DESIGN.md's scoring contract; `lists(for_date, k)` gives
the mart's rows for every known customer.

A known customer, however short their history, is scored from their own purchases by the champion;
`cold_start` is true only for a customer the warehouse has never seen, who gets the region's picks in the
request's context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from globolatte_dagster.lib.contract import REGIONS, ContractError, parse_day
from globolatte_dagster.lib.recommend.candidates import Recommender
from globolatte_dagster.lib.recommend.context import ContextArrays, DayContext, WeatherBook, day_context
from globolatte_dagster.lib.recommend.data import Requests
from globolatte_dagster.lib.recommend.metrics import K, top_k

MAX_K = 20
LISTS = ("top", "discover")


class BadRequest(ValueError):
    """A scoring request that does not fit the scoring contract (the endpoint answers 400)."""


@dataclass(frozen=True)
class Parsed:
    customer_id: str
    day: date
    temp: float | None
    k: int
    discover: bool


@dataclass
class RegionRecommender:
    """One region's candidates and champions, ready to score (see the module docstring)."""

    region: str
    as_of: date
    products: np.ndarray
    product_names: dict[str, str]
    customers: np.ndarray  # every customer the warehouse has seen in the region
    bought: sparse.csr_matrix  # (C, P) > 0: bought within the history's look-back
    segment: np.ndarray  # (C,) -1: no segment
    weather: WeatherBook
    candidates: dict[str, Recommender]
    champion: str
    discover_champion: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    trained_at: str
    model_version: str = "unregistered"
    index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.index = {str(c): i for i, c in enumerate(self.customers)}

    # ------------------------------------------------------------------------------------ requests
    def validate(self, req: Any) -> Parsed:
        if not isinstance(req, dict):
            raise BadRequest("a request must be a JSON object")
        region = req.get("region")
        if not isinstance(region, str) or region not in REGIONS:
            raise BadRequest(f"unknown region {region!r} (known: {', '.join(REGIONS)})")
        if region != self.region:
            raise BadRequest(f"this model serves region '{self.region}', not '{region}'")
        cid = req.get("customer_id")
        if not isinstance(cid, str) or not cid.strip():
            raise BadRequest("customer_id must be a non-empty string")
        day_text = req.get("date")
        if not isinstance(day_text, str):
            raise BadRequest("date must be a string YYYY-MM-DD")
        try:
            day = parse_day(day_text)
        except ContractError as exc:
            raise BadRequest(f"date: {exc}") from exc
        temp = req.get("temp_max_c")
        if temp is not None:
            if isinstance(temp, bool) or not isinstance(temp, int | float) or not math.isfinite(temp):
                raise BadRequest("temp_max_c must be a number")
            if not -60.0 <= float(temp) <= 60.0:
                raise BadRequest("temp_max_c must be between -60 and 60 °C")
        k = req.get("k", K)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise BadRequest(f"k must be an integer from 1 to {MAX_K}")
        discover = req.get("exclude_purchased", False)
        if not isinstance(discover, bool):
            raise BadRequest("exclude_purchased must be true or false")
        return Parsed(cid.strip(), day, None if temp is None else float(temp), k, discover)

    def context(self, day: date, temp: float | None) -> DayContext:
        ctx = self.weather.context(self.region, day, known_until=self.as_of)
        if temp is None:
            return ctx
        return day_context(
            self.region, day, temp, None if math.isnan(ctx.precip_mm) else ctx.precip_mm, "request"
        )

    def _requests(self, parsed: Sequence[Parsed]) -> Requests:
        cache: dict[tuple[date, float | None], DayContext] = {}
        contexts = []
        for p in parsed:
            key = (p.day, p.temp)
            if key not in cache:
                cache[key] = self.context(p.day, p.temp)
            contexts.append(cache[key])
        ords = np.array([p.day.toordinal() for p in parsed], dtype=np.int32)
        return Requests(
            cust=np.array([self.index.get(p.customer_id, -1) for p in parsed], dtype=np.int64),
            day=ords,
            ctx=ContextArrays.of(contexts),
            horizon=np.maximum(ords - self.as_of.toordinal(), 1).astype(float),
        )

    def _picks(self, parsed: Sequence[Parsed], discover: bool) -> tuple[np.ndarray, np.ndarray, str]:
        """(product indices, scores) per request, padded with -1, and the candidate that scored them."""
        name = self.discover_champion if discover else self.champion
        req = self._requests(parsed)
        scores = self.candidates[name].score(req)
        exclude = None
        if discover:
            known = req.cust >= 0
            exclude = np.zeros(scores.shape, dtype=bool)
            if known.any():
                exclude[known] = self.bought[req.cust[known]].toarray() > 0
        picks = top_k(scores, max(p.k for p in parsed), exclude=exclude)
        values = np.take_along_axis(scores, np.clip(picks, 0, None), axis=1)
        return picks, values, name

    def rank(self, requests: Sequence[dict]) -> list[dict]:
        """Validated requests answered in order (raises BadRequest before scoring any of them)."""
        parsed = [self.validate(r) for r in requests]
        answers: list[dict | None] = [None] * len(parsed)
        for discover in (False, True):
            rows = [i for i, p in enumerate(parsed) if p.discover == discover]
            if not rows:
                continue
            picks, values, name = self._picks([parsed[i] for i in rows], discover)
            for j, i in enumerate(rows):
                p = parsed[i]
                c = self.index.get(p.customer_id, -1)
                recs = [
                    {"product_id": str(self.products[col]), "score": round(float(v), 6)}
                    for col, v in zip(picks[j, : p.k], values[j, : p.k], strict=True)
                    if col >= 0
                ]
                answers[i] = {
                    "region": self.region,
                    "customer_id": p.customer_id,
                    "recommendations": recs,
                    "segment": int(self.segment[c]) if c >= 0 and self.segment[c] >= 0 else None,
                    "model_version": self.model_version,
                    "candidate": name,
                    "cold_start": c < 0,
                }
        return [a for a in answers if a is not None]

    def recommend(self, requests: Sequence[dict]) -> list[dict]:
        """Answers in request order, exactly as the DESIGN.md scoring contract (raises BadRequest)."""
        return self.rank(requests)

    # --------------------------------------------------------------------------------------- mart
    def lists(self, for_date: date, k: int = K, chunk: int = 20000) -> pd.DataFrame:
        """Both lists for every known customer, for `for_date` in that day's forecast context."""
        everyone = np.arange(len(self.customers))
        frames = []
        for discover, list_name in ((False, "top"), (True, "discover")):
            for rows in np.array_split(everyone, max(1, len(everyone) // chunk + 1)):
                if not len(rows):
                    continue
                parsed = [Parsed(str(self.customers[c]), for_date, None, k, discover) for c in rows]
                picks, values, name = self._picks(parsed, discover)
                r_idx, rank = np.nonzero(picks >= 0)
                frames.append(
                    pd.DataFrame(
                        {
                            "customer_id": self.customers[rows][r_idx].astype(str),
                            "list": list_name,
                            "rank": rank + 1,
                            "product_id": self.products[picks[r_idx, rank]].astype(str),
                            "score": np.round(values[r_idx, rank], 6),
                            "candidate": name,
                        }
                    )
                )
        if not frames:
            return pd.DataFrame(columns=["customer_id", "list", "rank", "product_id", "score", "candidate"])
        return pd.concat(frames, ignore_index=True)


def recommend(models: dict[str, RegionRecommender], requests: Sequence[dict]) -> list[dict]:
    """Dispatch requests to each region's model; answers in request order (raises BadRequest)."""
    for req in requests:
        region = req.get("region") if isinstance(req, dict) else None
        if not isinstance(region, str) or region not in models:
            raise BadRequest(f"unknown region {region!r} (served: {', '.join(sorted(models))})")
    answers: list[dict | None] = [None] * len(requests)
    for region, model in models.items():
        picks = [i for i, r in enumerate(requests) if r["region"] == region]
        if picks:
            for i, a in zip(picks, model.recommend([requests[i] for i in picks]), strict=True):
                answers[i] = a
    return [a for a in answers if a is not None]

"""Smoke tests of a deployment: real requests built from the champions, and the checks on the answers.

Used by the local blue/green deployment (over HTTP) and by the Azure ML deployment (through
`online_endpoints.invoke`). No Dagster.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.lib.model_store import ARTEFACT

UNKNOWN_CUSTOMER = "SMOKE-TEST-UNKNOWN-CUSTOMER"
ANSWER_FIELDS = (
    "region",
    "customer_id",
    "recommendations",
    "segment",
    "model_version",
    "candidate",
    "cold_start",
)
BAD_REQUEST = {"region": "atlantis", "customer_id": "C1", "date": "2025-01-01"}


class SmokeTestFailed(RuntimeError):
    """A deployment answered wrongly: it must not take the traffic."""


def load_bundle(folder: str | Path) -> dict[str, Any]:
    import joblib

    folder = Path(folder)
    return {r: joblib.load(folder / r / ARTEFACT) for r in REGION_KEYS if (folder / r / ARTEFACT).exists()}


def smoke_requests(models: dict[str, Any]) -> list[dict[str, Any]]:
    """Per region: a known customer (k=3) and an unknown one (k=2), for the day after the model's data."""
    out = []
    for region, model in sorted(models.items()):
        day = (model.as_of + timedelta(days=1)).isoformat()
        customers = [str(c) for c in model.customers]
        if customers:
            out.append({"region": region, "customer_id": customers[0], "date": day, "k": 3})
            out.append(
                {
                    "region": region,
                    "customer_id": customers[0],
                    "date": day,
                    "k": 2,
                    "exclude_purchased": True,
                }
            )
        out.append(
            {"region": region, "customer_id": UNKNOWN_CUSTOMER, "date": day, "k": 2, "temp_max_c": 31.0}
        )
    return out


def expected_answers(models: dict[str, Any], requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the served champions must answer, computed in process with the same artefacts."""
    from globolatte_dagster.lib.recommend.scoring import recommend

    return json.loads(json.dumps(recommend(models, requests)))


def check_answers(
    requests: list[dict[str, Any]],
    payload: Any,
    versions: dict[str, str],
    expected: list[dict[str, Any]] | None = None,
) -> None:
    """Raise SmokeTestFailed unless `payload` ({"responses": [...]}) answers `requests` by the contract."""
    if not isinstance(payload, dict) or not isinstance(payload.get("responses"), list):
        raise SmokeTestFailed(f"the batch answer has no 'responses' list: {str(payload)[:300]}")
    answers = payload["responses"]
    if len(answers) != len(requests):
        raise SmokeTestFailed(f"{len(answers)} answers to {len(requests)} requests")
    for i, (req, ans) in enumerate(zip(requests, answers, strict=True)):
        missing = [f for f in ANSWER_FIELDS if f not in ans]
        if missing:
            raise SmokeTestFailed(f"answer {i} lacks {missing}")
        if ans["region"] != req["region"] or ans["customer_id"] != req["customer_id"]:
            raise SmokeTestFailed(
                f"answer {i} is for {ans['region']}/{ans['customer_id']}, not {req['region']}/{req['customer_id']}"
            )
        if ans["model_version"] != versions.get(req["region"]):
            raise SmokeTestFailed(
                f"answer {i} names model {ans['model_version']}, expected {versions.get(req['region'])}"
            )
        want = len(expected[i]["recommendations"]) if expected is not None else req.get("k", 3)
        empty_top = want == 0 and not req.get("exclude_purchased")
        if len(ans["recommendations"]) != want or empty_top:
            raise SmokeTestFailed(
                f"answer {i} has {len(ans['recommendations'])} recommendations, k={req.get('k', 3)}"
            )
        if req["customer_id"] == UNKNOWN_CUSTOMER and ans["cold_start"] is not True:
            raise SmokeTestFailed(f"answer {i}: an unknown customer must be answered as cold start")
        if expected is not None and ans != expected[i]:
            raise SmokeTestFailed(
                f"answer {i} differs from the champion's own answer: {ans} != {expected[i]}"
            )

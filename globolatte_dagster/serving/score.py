"""The Azure ML scoring script: `init()` loads every region's champion, `run()` serves POST /score.

The same file runs under Azure ML's inference server (`azmlinfsrv`) on 127.0.0.1 locally and in the
managed online endpoint. It imports only the standard library, `globolatte_dagster.lib` and the inference
server: no Dagster.

Models: `AZUREML_MODEL_DIR` holds the champions bundle (`<region>/model.joblib`, written by the registry's
`export_champions`); in Azure ML the bundle may sit one folder deeper, under the registered path's name.

The scoring contract is DESIGN.md's: one request, or `{"requests": [...]}` with at most 1,000. Bad input
gets a 400 with `{"message": ...}` (malformed JSON, unknown region, a missing or ill-typed field, k out of
range, too large a batch, and the request bounds of `serving/bounds.py`: JSON nested deeper than 8
levels, a `customer_id` that is not 1-64 printable characters, a `date` more than two years from the
model's last landed day; a body over 2 MiB gets a 413); an unexpected exception becomes the server's 500.
`GET /score` answers the served model versions (used as a readiness probe). `init()` refuses a bundle
whose models were pickled by another scikit-learn major.minor (`lib.environment`), naming both versions.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

# In Azure ML the package folder is uploaded as the code folder: make `globolatte_dagster` importable.
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
if _PACKAGE_PARENT not in sys.path:
    sys.path.insert(0, _PACKAGE_PARENT)

from azureml_inference_server_http.api.aml_request import rawhttp  # noqa: E402
from azureml_inference_server_http.api.aml_response import AMLResponse  # noqa: E402

from globolatte_dagster import settings  # noqa: E402
from globolatte_dagster.lib.contract import REGION_KEYS  # noqa: E402
from globolatte_dagster.lib.environment import load_artefact  # noqa: E402
from globolatte_dagster.lib.model_store import ARTEFACT, MANIFEST  # noqa: E402
from globolatte_dagster.serving.bounds import body_problem, request_problem  # noqa: E402

MAX_BATCH = 1000
MODEL_DIR_ENV = "AZUREML_MODEL_DIR"
logger = logging.getLogger("globolatte.score")


class ScoringError(ValueError):
    """Bad input: answered with this status and `{"message": ...}`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def find_bundle(model_dir: str | Path) -> Path:
    """The folder holding `<region>/model.joblib` inside `model_dir` (itself, or one or two levels down)."""
    root = Path(model_dir)
    candidates = [
        root,
        *sorted(p for p in root.glob("*") if p.is_dir()),
        *sorted(p for p in root.glob("*/*") if p.is_dir()),
    ]
    for folder in candidates:
        if (folder / MANIFEST).exists() or any((folder / r / ARTEFACT).exists() for r in REGION_KEYS):
            return folder
    raise FileNotFoundError(f"no champion model (<region>/{ARTEFACT}) under {root}")


class Scorer:
    """Every region's champion, and the contract's request handling (no HTTP)."""

    def __init__(self, models: dict[str, Any]) -> None:
        if not models:
            raise ValueError("no champion model to serve")
        self.models = models
        from globolatte_dagster.lib.recommend.scoring import BadRequest

        self._bad_request = BadRequest

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> Scorer:
        """Load every region's champion; refuse one trained with libraries this environment cannot load."""
        bundle = find_bundle(model_dir)
        models = {}
        for region in REGION_KEYS:
            path = bundle / region / ARTEFACT
            if path.exists():
                models[region] = load_artefact(path)
        return cls(models)

    @property
    def versions(self) -> dict[str, str]:
        return {region: str(m.model_version) for region, m in self.models.items()}

    def parse(self, body: bytes | str) -> tuple[list[Any], bool]:
        """(requests, is_batch) from a request body, or ScoringError."""
        problem = body_problem(body.encode() if isinstance(body, str) else bytes(body))
        if problem is not None:
            raise ScoringError(problem[1], status=problem[0])
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ScoringError(f"malformed JSON: {exc}") from exc
        except RecursionError as exc:  # bounded above; kept in case the parser's limit is lower
            raise ScoringError("JSON nested too deeply") from exc
        if not isinstance(payload, dict):
            raise ScoringError('the body must be a JSON object: one request, or {"requests": [...]}')
        if "requests" not in payload:
            return [payload], False
        requests = payload["requests"]
        if not isinstance(requests, list):
            raise ScoringError('"requests" must be a list of request objects')
        if len(requests) > MAX_BATCH:
            raise ScoringError(f"too many requests in one batch: {len(requests)} (at most {MAX_BATCH})")
        return requests, True

    def validate(self, requests: list[Any], batch: bool) -> None:
        """Check every request against the contract before scoring any of them."""
        for i, req in enumerate(requests):
            where = f"requests[{i}]: " if batch else ""
            if not isinstance(req, dict):
                raise ScoringError(f"{where}a request must be a JSON object")
            region = req.get("region")
            if not isinstance(region, str) or region not in REGION_KEYS:
                raise ScoringError(f"{where}unknown region {region!r} (known: {', '.join(REGION_KEYS)})")
            if region not in self.models:
                raise ScoringError(f"{where}no champion model is deployed for region '{region}'", status=503)
            problem = request_problem(req, getattr(self.models[region], "as_of", None))
            if problem is not None:
                raise ScoringError(f"{where}{problem}")
            try:
                self.models[region].validate(req)
            except self._bad_request as exc:
                raise ScoringError(f"{where}{exc}") from exc

    def score(self, requests: list[dict]) -> list[dict]:
        """Answers in request order; each names its region's model version."""
        from globolatte_dagster.lib.recommend.scoring import recommend

        try:
            return recommend(self.models, requests)
        except self._bad_request as exc:
            raise ScoringError(str(exc)) from exc

    def handle(self, method: str, body: bytes | str) -> tuple[int, dict[str, Any]]:
        """(status, JSON payload) for one HTTP call."""
        if method == "GET":
            return 200, {"status": "ready", "model_versions": self.versions}
        if method != "POST":
            return 405, {"message": f"method {method} not allowed: POST a scoring request"}
        try:
            requests, batch = self.parse(body)
            self.validate(requests, batch)
            answers = self.score(requests) if requests else []
        except ScoringError as exc:
            return exc.status, {"message": str(exc)}
        if batch:
            return 200, {"responses": answers, "model_versions": self.versions}
        return 200, answers[0]


_scorer: Scorer | None = None


def init() -> None:
    """Load every region's champion from AZUREML_MODEL_DIR."""
    global _scorer
    model_dir = settings.azureml_model_dir(MODEL_DIR_ENV)
    if not model_dir:
        raise RuntimeError(f"{MODEL_DIR_ENV} is not set: the inference server passes the model folder in it")
    _scorer = Scorer.from_dir(model_dir)
    logger.info("serving %s", _scorer.versions)
    print(f"globolatte score.py: serving {json.dumps(_scorer.versions)}", flush=True)


@rawhttp
def run(request: Any) -> AMLResponse:
    """POST /score (the DESIGN.md scoring contract); GET /score answers the served model versions."""
    if _scorer is None:
        raise RuntimeError("init() has not loaded the models")
    status, payload = _scorer.handle(request.method, request.get_data())
    return AMLResponse(payload, status, json_str=True)

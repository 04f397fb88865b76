"""The training folders: what a training run reads and writes, whichever process or machine runs it.

Inputs (written by the Dagster asset, read by `job.py`):

    history.parquet     core.purchase_history rows of the region over the look-back window
    products.parquet    core.products (product_id, product_name, category, serving)
    weather.parquet     raw.weather rows of the region (day, temp_max_c, precip_mm)
    customers.parquet   every loyalty customer the warehouse has seen in the region
    segmenter.joblib    the fitted lib.segments.Segmenter (ml/segment_model), or absent
    request.json        region, TrainParams, forced choices, format version

Outputs (written by `job.py`, read back by the asset):

    model.joblib        the lib.recommend.scoring.RegionRecommender
    result.json         metrics (JSON), timings, the tables written, format version
    tables/<name>.parquet  the tournament's tables (tournament, per_day)

The frames are the rows `data.load_frames` read from the warehouse, so the job builds the very History
the in-process path builds; `train()` is the one call every path makes. No Dagster here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from globolatte_dagster.lib.json_io import to_jsonable, write_json_atomic
from globolatte_dagster.lib.model_store import ARTEFACT
from globolatte_dagster.lib.recommend.data import HistoryFrames
from globolatte_dagster.lib.recommend.tournament import TrainingResult, train_region
from globolatte_dagster.lib.recommend.training import TrainParams, params_dict

FORMAT = 1
REQUEST = "request.json"
SEGMENTER = "segmenter.joblib"
RESULT = "result.json"
TABLES = "tables"
FRAMES = ("history", "products", "weather", "customers")


class TrainingFolderError(RuntimeError):
    """A training folder that cannot be read: missing or malformed files, another format version."""


@dataclass
class TrainingRequest:
    """Everything one region's training needs: the warehouse rows, the segmenter and the parameters."""

    frames: HistoryFrames
    params: TrainParams
    segmenter: Any | None = None  # lib.segments.Segmenter
    force_candidate: str = ""
    force_discover: str = ""

    @property
    def region(self) -> str:
        return self.frames.region


def train(request: TrainingRequest, log: Callable[[str], None] | None = None) -> TrainingResult:
    """Build the History from the frames and run the tournament (`tournament.train_region`)."""
    history = request.frames.history()
    seg = request.segmenter
    return train_region(
        history,
        request.params,
        segment_at=seg.assign if seg is not None else None,
        segments_now=seg.assign(history) if seg is not None else None,
        force_candidate=request.force_candidate,
        force_discover=request.force_discover,
        log=log,
    )


# ----------------------------------------------------------------------------------------------- inputs
def write_inputs(folder: str | Path, request: TrainingRequest) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    f = request.frames
    customers = pd.DataFrame({"customer_id": pd.Series(list(f.customers), dtype="string")})
    for name, frame in zip(FRAMES, (f.lines, f.products, f.weather, customers), strict=True):
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    if request.segmenter is not None:
        joblib.dump(request.segmenter, folder / SEGMENTER)
    write_json_atomic(
        folder / REQUEST,
        {
            "format": FORMAT,
            "region": request.region,
            "params": params_dict(request.params),
            "force_candidate": request.force_candidate,
            "force_discover": request.force_discover,
        },
    )
    return folder


def _read_json(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrainingFolderError(f"{path.parent}: no {path.name}") from exc
    except (OSError, ValueError) as exc:
        raise TrainingFolderError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TrainingFolderError(f"{path}: format {payload.get('format')!r}, expected {FORMAT}")
    return payload


def read_inputs(folder: str | Path) -> TrainingRequest:
    folder = Path(folder)
    spec = _read_json(folder / REQUEST)
    frames = {}
    for name in FRAMES:
        try:
            frames[name] = pd.read_parquet(folder / f"{name}.parquet")
        except FileNotFoundError as exc:
            raise TrainingFolderError(f"{folder}: no {name}.parquet") from exc
    params = dict(spec["params"])
    params["candidates"] = tuple(params["candidates"])
    segmenter = joblib.load(folder / SEGMENTER) if (folder / SEGMENTER).exists() else None
    return TrainingRequest(
        frames=HistoryFrames(
            spec["region"],
            frames["history"],
            frames["products"],
            frames["weather"],
            frames["customers"]["customer_id"].astype(str).tolist(),
        ),
        params=TrainParams(**params),
        segmenter=segmenter,
        force_candidate=spec.get("force_candidate", ""),
        force_discover=spec.get("force_discover", ""),
    )


# ---------------------------------------------------------------------------------------------- outputs
def write_outputs(folder: str | Path, result: TrainingResult) -> Path:
    """Write the model, its tables and result.json (last: its presence means the folder is complete)."""
    folder = Path(folder)
    (folder / TABLES).mkdir(parents=True, exist_ok=True)
    artefact = folder / ARTEFACT
    joblib.dump(result.model, artefact)
    for name, table in result.tables.items():
        table.to_parquet(folder / TABLES / f"{name}.parquet")
    write_json_atomic(
        folder / RESULT,
        {
            "format": FORMAT,
            "region": result.model.region,
            "metrics": to_jsonable(result.metrics),
            "timings": to_jsonable(result.timings),
            "tables": sorted(result.tables),
        },
    )
    return artefact


def read_outputs(folder: str | Path) -> TrainingResult:
    """The TrainingResult of a finished run (the metrics are the model's own, as in-process)."""
    folder = Path(folder)
    spec = _read_json(folder / RESULT)
    model = joblib.load(folder / ARTEFACT)
    tables = {name: pd.read_parquet(folder / TABLES / f"{name}.parquet") for name in spec["tables"]}
    return TrainingResult(model, model.metrics, tables, dict(spec["timings"]))

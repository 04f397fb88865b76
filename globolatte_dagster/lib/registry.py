"""The model registry, without Dagster: versioned folders, aliases, lineage and the promotion gate.

Layout under the registry root (`GLOBOLATTE_HOME/registry` locally):

    <region>/<version>/model.joblib     the artefact (a lib.recommend.scoring.RegionRecommender)
    <region>/<version>/metrics.json     hit rate@3 of the model and the baselines on its hold-out
    <region>/<version>/lineage.json     data (partitions, days, rows), code version, parameters, run id,
                                        library versions (`environment`, lib.environment)
    <region>/<version>/decision.json    the champion/challenger decision taken when it was registered
    <region>/aliases.json               {"champion": "3", "challenger": "4"}
    .locks/<region>.aliases.lock        held (flock) while aliases.json is read, changed and written

A version folder is written under a temporary name, then renamed into place; aliases.json is written to a
temporary file, then renamed over the old one. Readers therefore never see half a version or half an
alias file. Versions are 1, 2, 3, ... per region; a model's `model_version` is `globolatte-<region>:<n>`,
the same name the Azure ML registry uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import joblib

from globolatte_dagster.lib.environment import with_environment
from globolatte_dagster.lib.recommend.metrics import HIT_RATE

ALIASES: tuple[str, ...] = ("champion", "challenger")
ARTEFACT = "model.joblib"
METRICS = "metrics.json"
LINEAGE = "lineage.json"
DECISION = "decision.json"
MANIFEST = "champions.json"
MODEL_NAME_PREFIX = "globolatte-"
BUNDLE_MODEL_NAME = "globolatte-champions"
SERVED_METRIC = HIT_RATE  # the champion candidate's hold-out hit rate@K
BASELINE_METRIC = f"best_baseline_{HIT_RATE}"


def model_name(region: str) -> str:
    return f"{MODEL_NAME_PREFIX}{region}"


def model_version_id(region: str, version: str | int) -> str:
    """The model version string answers carry: `globolatte-<region>:<n>`."""
    return f"{model_name(region)}:{version}"


# ------------------------------------------------------------------------------------------ JSON helpers
def to_jsonable(value: Any) -> Any:
    """Plain JSON types from metrics and params (numpy scalars, dates, tuples, NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write `payload` to a temporary file next to `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(to_jsonable(payload), f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------ code version
def code_version(start: Path | None = None) -> dict[str, str]:
    """`{"git_sha": ...}` read from the enclosing repository's .git (no git process), else the package version."""
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        git = folder / ".git"
        if git.is_dir():
            sha = _git_head(git)
            if sha:
                return {"git_sha": sha}
            break
    try:
        return {"package_version": importlib_metadata.version("globolatte-dagster")}
    except importlib_metadata.PackageNotFoundError:
        return {"package_version": "unknown"}


def _git_head(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head or None
    ref = head[len("ref: ") :]
    loose = git / ref
    if loose.exists():
        return loose.read_text().strip() or None
    packed = git / "packed-refs"
    if packed.exists():
        for line in packed.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None  # a fresh repository without commits


# ----------------------------------------------------------------------------------------------- lineage
def lineage_record(
    model: Any,
    *,
    run_id: str,
    upstream: dict[str, Any] | None = None,
    data_rows: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Where a model came from: data (partitions, day range, row counts), code version, parameters, run."""
    metrics = dict(getattr(model, "metrics", {}) or {})
    params = dict(getattr(model, "params", {}) or {})
    region = getattr(model, "region", None)
    as_of = getattr(model, "as_of", None)
    last_day = as_of.isoformat() if isinstance(as_of, date) else None
    lookback = params.get("lookback_days")
    first_day = None
    if last_day and isinstance(lookback, int):
        first_day = (date.fromisoformat(last_day) - timedelta(days=lookback)).isoformat()
    return to_jsonable(
        {
            "region": region,
            "data": {
                "partitions": {
                    "ml/preference_model": region,
                    "core/purchase_history": region,
                    "raw/sales": f"{region}|{first_day}..{last_day}" if first_day and last_day else region,
                },
                "day_range": [first_day, last_day],
                "train_days": metrics.get("train_days"),
                "holdout_days": metrics.get("holdout_days"),
                "rows": {
                    k: metrics[k]
                    for k in (
                        "holdout_customer_days",
                        "discover_customer_days",
                        "customers",
                        "products",
                        "sales_days",
                    )
                    if k in metrics
                }
                | dict(data_rows or {}),
            },
            "candidates": {
                name: {"kind": d.get("kind"), "params": d.get("params")}
                for name, d in (metrics.get("candidates") or {}).items()
            },
            "champion": metrics.get("champion"),
            "discover_champion": metrics.get("discover_champion"),
            "code": code_version(),
            "params": params,
            "dagster": {"run_id": run_id, **dict(upstream or {})},
            "trained_at": getattr(model, "trained_at", None),
            "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )


# -------------------------------------------------------------------------------------------------- gate
@dataclass
class GateDecision:
    """The champion/challenger decision for one region, with every figure it rests on."""

    promote: bool
    forced: bool
    reasons: list[str]
    window: list[str] | None
    candidate: str
    challenger: float | None
    best_baseline: str | None
    best_baseline_value: float | None
    champion: float | None
    champion_version: str | None
    margin: float
    comparison: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))


def gate(
    challenger_metrics: dict[str, Any],
    champion_value: float | None,
    *,
    champion_version: str | None = None,
    margin: float = 0.01,
    force: bool = False,
    comparison: str = "no champion yet",
) -> GateDecision:
    """Promote a new version unless it serves worse than the best baseline, or than the champion by more than margin.

    `challenger_metrics`: the tournament's figures (`hit_rate_at_K` of the candidate it serves and of the best
    baseline, on its hold-out). `champion_value`: the current champion's hit rate on the same hold-out
    (`comparison` says how it was obtained), None without a champion. A version without a hold-out (a region
    with one landed day) is promoted while there is no champion: popularity is better than nothing.
    `force` promotes whatever the figures say, and the decision says so.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, not {margin}")
    candidate = str(challenger_metrics.get("champion") or "unknown")
    served = challenger_metrics.get(SERVED_METRIC)
    baseline = challenger_metrics.get(BASELINE_METRIC)
    baseline_name = challenger_metrics.get("best_baseline")
    window = challenger_metrics.get("holdout_days")
    reasons: list[str] = []
    ok = True
    if served is None:
        reasons.append(
            f"no hold-out to judge on ({challenger_metrics.get('sales_days', '?')} landed sales day(s)): serves {candidate}"
        )
        if champion_version is not None:
            ok = False
            reasons.append(f"champion {champion_version} keeps serving until this version can be judged")
    else:
        served, baseline = float(served), float(baseline)
        if served + 1e-12 >= baseline:
            reasons.append(
                f"serves {candidate} at {served:.4f}, not below the best baseline {baseline_name} ({baseline:.4f})"
            )
        else:
            ok = False
            reasons.append(
                f"serves {candidate} at {served:.4f}, below the best baseline {baseline_name} ({baseline:.4f})"
            )
        if champion_value is None:
            reasons.append(
                "no champion yet"
                if champion_version is None
                else f"champion {champion_version}: {comparison}"
            )
        elif served >= champion_value - margin:
            reasons.append(
                f"not worse than champion {champion_version} by more than {margin}: {served:.4f} vs "
                f"{champion_value:.4f} ({comparison})"
            )
        else:
            ok = False
            reasons.append(
                f"worse than champion {champion_version} by more than {margin}: {served:.4f} vs "
                f"{champion_value:.4f} ({comparison})"
            )
    if force and not ok:
        reasons.append("promotion FORCED by config despite the reasons above")
    elif force:
        reasons.append("promotion forced by config (the gate would have promoted anyway)")
    return GateDecision(
        promote=ok or force,
        forced=force,
        reasons=reasons,
        window=list(window) if window else None,
        candidate=candidate,
        challenger=None if served is None else float(served),
        best_baseline=baseline_name,
        best_baseline_value=None if baseline is None else float(baseline),
        champion=champion_value,
        champion_version=champion_version,
        margin=margin,
        comparison=comparison,
    )


def same_window(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return bool(
        a and b and a.get("holdout_days") and list(a["holdout_days"]) == list(b.get("holdout_days") or [])
    )


# -------------------------------------------------------------------------------------------- local store
@dataclass(frozen=True)
class RegisteredVersion:
    region: str
    version: str
    model_version: str
    uri: str


class LocalRegistryStore:
    """Versioned folders per region with atomically kept aliases (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _region_dir(self, region: str) -> Path:
        if not region or "/" in region or region.startswith("."):
            raise ValueError(f"bad region name {region!r}")
        return self.root / region

    def versions(self, region: str) -> list[str]:
        folder = self._region_dir(region)
        if not folder.exists():
            return []
        return sorted((p.name for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=int)

    def register(
        self, region: str, model: Any, metrics: dict[str, Any], lineage: dict[str, Any]
    ) -> RegisteredVersion:
        """Store a new version (the artefact gets its `model_version`), then point `challenger` at it."""
        folder = self._region_dir(region)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".incoming-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            for _ in range(100):
                existing = self.versions(region)
                version = str(int(existing[-1]) + 1 if existing else 1)
                model.model_version = model_version_id(region, version)
                joblib.dump(model, tmp / ARTEFACT)
                write_json_atomic(tmp / METRICS, metrics)
                write_json_atomic(
                    tmp / LINEAGE,
                    {
                        **with_environment(lineage, model),
                        "version": version,
                        "model_version": model.model_version,
                    },
                )
                try:
                    os.rename(tmp, folder / version)  # atomic; fails if another writer took the number
                    break
                except OSError:
                    continue
            else:
                raise RuntimeError(f"could not allocate a registry version for {region}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.set_alias(region, "challenger", version)
        return RegisteredVersion(region, version, model.model_version, str(folder / version))

    def aliases(self, region: str) -> dict[str, str]:
        path = self._region_dir(region) / "aliases.json"
        return read_json(path) if path.exists() else {}

    def get_alias(self, region: str, alias: str) -> str | None:
        return self.aliases(region).get(alias)

    @contextlib.contextmanager
    def alias_lock(self, region: str) -> Iterator[None]:
        """Exclusive hold of `region`'s aliases across threads and processes (`flock` on a lock file)."""
        self._region_dir(region)  # validates the name
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with (locks / f"{region}.aliases.lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def set_alias(self, region: str, alias: str, version: str) -> None:
        """Read, change and write aliases.json under the region's lock: concurrent writers lose nothing."""
        if alias not in ALIASES:
            raise ValueError(f"unknown alias {alias!r} (known: {', '.join(ALIASES)})")
        with self.alias_lock(region):
            if version not in self.versions(region):
                raise KeyError(f"{region} has no version {version}")
            aliases = {**self.aliases(region), alias: version}
            write_json_atomic(self._region_dir(region) / "aliases.json", aliases)

    def path(self, region: str, version: str) -> Path:
        folder = self._region_dir(region) / str(version)
        if not (folder / ARTEFACT).exists():
            raise KeyError(f"{region} has no version {version} in {self.root}")
        return folder

    def load(self, region: str, version: str) -> Any:
        return joblib.load(self.path(region, version) / ARTEFACT)

    def metrics(self, region: str, version: str) -> dict[str, Any]:
        return read_json(self.path(region, version) / METRICS)

    def lineage(self, region: str, version: str) -> dict[str, Any]:
        return read_json(self.path(region, version) / LINEAGE)

    def record_decision(self, region: str, version: str, decision: dict[str, Any]) -> None:
        write_json_atomic(self.path(region, version) / DECISION, decision)

    def decision(self, region: str, version: str) -> dict[str, Any] | None:
        path = self.path(region, version) / DECISION
        return read_json(path) if path.exists() else None

    def export_champions(self, dest: str | Path, regions: Iterable[str]) -> dict[str, str]:
        """Copy each region's champion into `dest/<region>/` plus a manifest; {region: model_version}."""
        found = {}
        for region in regions:
            version = self.get_alias(region, "champion")
            if version is None:
                continue
            found[region] = (version, self.path(region, version))
        return export_bundle(dest, {r: (p, model_version_id(r, v)) for r, (v, p) in found.items()})


def export_bundle(dest: str | Path, sources: dict[str, tuple[Path, str]]) -> dict[str, str]:
    """Lay out a champions bundle: `dest/<region>/{model.joblib,metrics.json,lineage.json}` + champions.json."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    versions = {}
    for region, (folder, model_version) in sorted(sources.items()):
        target = dest / region
        target.mkdir(parents=True, exist_ok=True)
        for name in (ARTEFACT, METRICS, LINEAGE):
            if (Path(folder) / name).exists():
                shutil.copy2(Path(folder) / name, target / name)
        versions[region] = model_version
    write_json_atomic(dest / MANIFEST, {"models": versions})
    return versions

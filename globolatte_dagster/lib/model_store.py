"""The local model store, without Dagster: versioned folders, aliases, and the champions bundle.

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
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from globolatte_dagster.lib.environment import with_environment
from globolatte_dagster.lib.json_io import read_json, write_json_atomic

ALIASES: tuple[str, ...] = ("champion", "challenger")
ARTEFACT = "model.joblib"
METRICS = "metrics.json"
LINEAGE = "lineage.json"
DECISION = "decision.json"
MANIFEST = "champions.json"
MODEL_NAME_PREFIX = "globolatte-"
BUNDLE_MODEL_NAME = "globolatte-champions"


def model_name(region: str) -> str:
    return f"{MODEL_NAME_PREFIX}{region}"


def model_version_id(region: str, version: str | int) -> str:
    """The model version string answers carry: `globolatte-<region>:<n>`."""
    return f"{model_name(region)}:{version}"


# -------------------------------------------------------------------------------------------- local store
@dataclass(frozen=True)
class RegisteredVersion:
    region: str
    version: str
    model_version: str
    uri: str


@dataclass(frozen=True)
class ChampionBundle:
    """Every region's champion laid out for a deployment: a local folder, and the Azure ML model if any."""

    path: Path
    versions: dict[str, str]  # region -> model_version
    model_ref: str | None = None  # azureml:globolatte-champions:<n> in Azure


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

"""The model registry resource: `ModelRegistry`, with a local and an Azure ML implementation.

- `LocalModelRegistry`: versioned folders under `GLOBOLATTE_HOME/registry/<region>/<version>/`
  (`lib.model_store.LocalRegistryStore`), aliases kept atomically in `aliases.json`.
- `AzureMLModelRegistry`: one Azure ML `Model` per region (`globolatte-<region>`, versions 1, 2, ...)
  through `azure-ai-ml`, with the metrics and lineage as tags and properties and the aliases as tags
  (`champion`/`challenger` = `"true"` on the version that holds them). Version numbers, alias moves and
  decision tags are written under a per-region lock, a blob lease in the workspace's default datastore
  (`resources/alias_lock.py`): model tags have no ETag, so concurrent runs would otherwise lose updates. The deployable bundle of every
  region's champion is registered as one model, `globolatte-champions` (deploy/azureml/deployment.yml).
  `MLClient` uses `DefaultAzureCredential`; subscription, resource group and workspace come from
  AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE_NAME.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg
import joblib
from pydantic import PrivateAttr

from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.lib.environment import with_environment
from globolatte_dagster.lib.json_io import to_jsonable, write_json_atomic
from globolatte_dagster.lib.model_store import (
    ALIASES,
    ARTEFACT,
    BUNDLE_MODEL_NAME,
    LINEAGE,
    METRICS,
    ChampionBundle,
    LocalRegistryStore,
    RegisteredVersion,
    export_bundle,
    model_name,
    model_version_id,
)
from globolatte_dagster.resources.alias_lock import BlobLeaseLock, workspace_lease_lock
from globolatte_dagster.resources.azureml_client import workspace_ml_client


class ModelRegistry(dg.ConfigurableResource):
    """Abstract model registry: versions with metrics and lineage, and the champion/challenger aliases."""

    def register(self, region: str, model: Any, metrics: dict, lineage: dict) -> RegisteredVersion:
        """Store a new version of `region`'s model (setting its `model_version`) as the challenger."""
        raise NotImplementedError

    def get_alias(self, region: str, alias: str) -> str | None:
        raise NotImplementedError

    def set_alias(self, region: str, alias: str, version: str) -> None:
        raise NotImplementedError

    def metrics(self, region: str, version: str) -> dict:
        raise NotImplementedError

    def lineage(self, region: str, version: str) -> dict:
        raise NotImplementedError

    def load(self, region: str, version: str) -> Any:
        raise NotImplementedError

    def record_decision(self, region: str, version: str, decision: dict) -> None:
        raise NotImplementedError

    def champion_bundle(self, dest: str | Path, regions: Iterable[str] = REGION_KEYS) -> ChampionBundle:
        """Lay out every region's champion under `dest` (and register the bundle where the platform needs it)."""
        raise NotImplementedError

    def uri(self, region: str, version: str) -> str:
        raise NotImplementedError


class LocalModelRegistry(ModelRegistry):
    """Versioned folders with lineage JSON under `root` (default `GLOBOLATTE_HOME/registry`)."""

    root: str

    @property
    def store(self) -> LocalRegistryStore:
        return LocalRegistryStore(self.root)

    def register(self, region: str, model: Any, metrics: dict, lineage: dict) -> RegisteredVersion:
        return self.store.register(region, model, metrics, lineage)

    def get_alias(self, region: str, alias: str) -> str | None:
        return self.store.get_alias(region, alias)

    def set_alias(self, region: str, alias: str, version: str) -> None:
        self.store.set_alias(region, alias, version)

    def metrics(self, region: str, version: str) -> dict:
        return self.store.metrics(region, version)

    def lineage(self, region: str, version: str) -> dict:
        return self.store.lineage(region, version)

    def load(self, region: str, version: str) -> Any:
        return self.store.load(region, version)

    def record_decision(self, region: str, version: str, decision: dict) -> None:
        self.store.record_decision(region, version, decision)

    def champion_bundle(self, dest: str | Path, regions: Iterable[str] = REGION_KEYS) -> ChampionBundle:
        return ChampionBundle(Path(dest), self.store.export_champions(dest, regions))

    def uri(self, region: str, version: str) -> str:
        return str(self.store.path(region, version))


# --------------------------------------------------------------------------------------------- Azure ML
def _tag(value: Any, limit: int = 256) -> str:
    text = value if isinstance(value, str) else json.dumps(to_jsonable(value), sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AzureMLRegistryOps:
    """The registry over an `MLClient` (real, or the recorded double of the tests).

    `lock` serialises the read-modify-writes of one region (version numbers, alias tags, decision tags)
    across processes; without one (a single writer, as in some tests) they are not locked.
    """

    def __init__(
        self, ml_client: Any, scratch: str | Path | None = None, lock: BlobLeaseLock | None = None
    ) -> None:
        self.ml = ml_client
        self.scratch = Path(scratch or tempfile.gettempdir())
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.lock = lock

    def _locked(self, region: str) -> contextlib.AbstractContextManager:
        return self.lock.hold(model_name(region)) if self.lock else contextlib.nullcontext()

    def _versions(self, name: str) -> list[Any]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return sorted(self.ml.models.list(name=name), key=lambda m: int(m.version))
        except ResourceNotFoundError:
            return []

    def _next_version(self, name: str) -> str:
        versions = self._versions(name)
        return str(int(versions[-1].version) + 1 if versions else 1)

    def register(self, region: str, model: Any, metrics: dict, lineage: dict) -> RegisteredVersion:
        with self._locked(region):
            return self._register(region, model, metrics, lineage)

    def _register(self, region: str, model: Any, metrics: dict, lineage: dict) -> RegisteredVersion:
        from azure.ai.ml.entities import Model

        name = model_name(region)
        version = self._next_version(name)
        model.model_version = model_version_id(region, version)
        lineage = {
            **with_environment(lineage, model),
            "version": version,
            "model_version": model.model_version,
        }
        with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
            folder = Path(tmp) / region
            folder.mkdir()
            joblib.dump(model, folder / ARTEFACT)
            write_json_atomic(folder / METRICS, metrics)
            write_json_atomic(folder / LINEAGE, lineage)
            scalars = {
                f"metric.{k}": _tag(v)
                for k, v in to_jsonable(metrics).items()
                if not isinstance(v, list | dict)
            }
            entity = Model(
                name=name,
                version=version,
                path=str(folder),
                type="custom_model",
                description=f"GloboLatte preference model for {region}",
                tags={
                    **scalars,
                    "region": region,
                    "holdout_days": _tag(metrics.get("holdout_days")),
                    "code": _tag(lineage.get("code")),
                    "dagster_run_id": _tag((lineage.get("dagster") or {}).get("run_id", "")),
                },
                properties={"metrics": _tag(metrics, 8000), "lineage": _tag(lineage, 8000)},
            )
            created = self.ml.models.create_or_update(entity)
        self._move_alias(region, "challenger", str(created.version))
        return RegisteredVersion(
            region, str(created.version), model.model_version, f"azureml:{name}:{created.version}"
        )

    def get_alias(self, region: str, alias: str) -> str | None:
        holders = [m for m in self._versions(model_name(region)) if (m.tags or {}).get(alias) == "true"]
        return str(holders[-1].version) if holders else None

    def set_alias(self, region: str, alias: str, version: str) -> None:
        """Tag the new holder first, then untag the others (a reader takes the highest tagged version);
        under the region's lock, so concurrent moves never drop a tag or leave no holder."""
        if alias not in ALIASES:
            raise ValueError(f"unknown alias {alias!r} (known: {', '.join(ALIASES)})")
        with self._locked(region):
            self._move_alias(region, alias, version)

    def _move_alias(self, region: str, alias: str, version: str) -> None:
        name = model_name(region)
        target = self.ml.models.get(name=name, version=version)
        target.tags = {**(target.tags or {}), alias: "true"}
        self.ml.models.create_or_update(target)
        for other in self._versions(name):
            if str(other.version) != str(version) and (other.tags or {}).get(alias) == "true":
                other.tags = {k: v for k, v in other.tags.items() if k != alias}
                self.ml.models.create_or_update(other)

    def _properties(self, region: str, version: str) -> dict:
        return dict(self.ml.models.get(name=model_name(region), version=version).properties or {})

    def metrics(self, region: str, version: str) -> dict:
        return json.loads(self._properties(region, version)["metrics"])

    def lineage(self, region: str, version: str) -> dict:
        return json.loads(self._properties(region, version)["lineage"])

    def download(self, region: str, version: str, dest: Path) -> Path:
        """The folder holding the version's model.joblib after download."""
        self.ml.models.download(name=model_name(region), version=version, download_path=str(dest))
        found = sorted(Path(dest).rglob(ARTEFACT))
        if not found:
            raise FileNotFoundError(f"{model_name(region)}:{version} downloaded without {ARTEFACT}")
        return found[0].parent

    def load(self, region: str, version: str) -> Any:
        with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
            return joblib.load(self.download(region, version, Path(tmp)) / ARTEFACT)

    def record_decision(self, region: str, version: str, decision: dict) -> None:
        with self._locked(region):
            self._record_decision(region, version, decision)

    def _record_decision(self, region: str, version: str, decision: dict) -> None:
        model = self.ml.models.get(name=model_name(region), version=version)
        outcome = (
            "forced" if decision.get("forced") else ("promoted" if decision.get("promote") else "rejected")
        )
        model.tags = {
            **(model.tags or {}),
            "gate": outcome,
            "gate_reasons": _tag("; ".join(decision.get("reasons", []))),
        }
        self.ml.models.create_or_update(model)

    def champion_bundle(self, dest: str | Path, regions: Iterable[str] = REGION_KEYS) -> ChampionBundle:
        """Download every champion into `dest`, then register the folder as `globolatte-champions`."""
        from azure.ai.ml.entities import Model

        dest = Path(dest)
        sources = {}
        with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
            for region in regions:
                version = self.get_alias(region, "champion")
                if version is not None:
                    sources[region] = (
                        self.download(region, version, Path(tmp) / region),
                        model_version_id(region, version),
                    )
            if not sources:
                return ChampionBundle(dest, {})
            versions = export_bundle(dest, sources)
        bundle = self.ml.models.create_or_update(
            Model(
                name=BUNDLE_MODEL_NAME,
                version=self._next_version(BUNDLE_MODEL_NAME),
                path=str(dest),
                type="custom_model",
                description="Every region's champion, served together by globolatte_dagster/serving/score.py",
                tags=dict(versions),
            )
        )
        return ChampionBundle(dest, versions, f"azureml:{BUNDLE_MODEL_NAME}:{bundle.version}")


class AzureMLModelRegistry(ModelRegistry):
    """Azure ML model registry of the workspace named by the environment (see the module docstring)."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    scratch_dir: str = tempfile.gettempdir()

    _ops: AzureMLRegistryOps | None = PrivateAttr(default=None)
    _ops_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def ml_client(self) -> Any:
        """A new `MLClient` for the workspace; `ops` builds one per resource instance and keeps it."""
        return workspace_ml_client(self.subscription_id, self.resource_group, self.workspace_name)

    def alias_lock(self, ml_client: Any) -> BlobLeaseLock:
        """Per-region locks: leases on blobs of the workspace's default datastore."""
        from azure.identity import DefaultAzureCredential

        return workspace_lease_lock(ml_client, DefaultAzureCredential())

    @property
    def ops(self) -> AzureMLRegistryOps:
        """The registry operations over this instance's one `MLClient` and lock, built on first use."""
        with self._ops_lock:
            if self._ops is None:
                ml = self.ml_client()
                self._ops = AzureMLRegistryOps(ml, self.scratch_dir, self.alias_lock(ml))
            return self._ops

    def register(self, region: str, model: Any, metrics: dict, lineage: dict) -> RegisteredVersion:
        return self.ops.register(region, model, metrics, lineage)

    def get_alias(self, region: str, alias: str) -> str | None:
        return self.ops.get_alias(region, alias)

    def set_alias(self, region: str, alias: str, version: str) -> None:
        self.ops.set_alias(region, alias, version)

    def metrics(self, region: str, version: str) -> dict:
        return self.ops.metrics(region, version)

    def lineage(self, region: str, version: str) -> dict:
        return self.ops.lineage(region, version)

    def load(self, region: str, version: str) -> Any:
        return self.ops.load(region, version)

    def record_decision(self, region: str, version: str, decision: dict) -> None:
        self.ops.record_decision(region, version, decision)

    def champion_bundle(self, dest: str | Path, regions: Iterable[str] = REGION_KEYS) -> ChampionBundle:
        return self.ops.champion_bundle(dest, regions)

    def uri(self, region: str, version: str) -> str:
        return f"azureml:{model_name(region)}:{version}"

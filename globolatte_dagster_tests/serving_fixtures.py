"""Small real preference models for the registry, scoring and endpoint tests, built once per process.

Simulator data is loaded into a DuckDB warehouse (`ml_data`), segmented and trained with the ML code
(`lib.segments`, `lib.model.train_region`). Training runs with one BLAS/OpenMP thread: the test machines
have two cores and oversubscription makes small fits several times slower.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from globolatte_dagster.lib import features as F
from globolatte_dagster.lib import model as M
from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.lib.registry import LocalRegistryStore
from globolatte_dagster.lib.segments import fit_segments
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.ml_data import SimCase, landed_frames, load_duckdb, simulate_case

DAYS = 24  # the smallest history train_region accepts with PARAMS is 15 days
CUSTOMERS = 40
PARAMS = M.TrainParams(max_iter=30, holdout_days=7, train_days=14)


@dataclass
class ModelsCase:
    root: Path
    case: SimCase
    database: str
    models: dict[str, Any]

    @property
    def warehouse(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(database=self.database)

    def fresh(self) -> dict[str, Any]:
        """Deep copies: registering sets `model_version` on the object."""
        return {r: copy.deepcopy(m) for r, m in self.models.items()}


def segments_for(query, region: str, last_day, seed: int = 0) -> pd.DataFrame:
    cf = F.customer_features(query, region, last_day)
    segmenter = fit_segments(cf, seed=seed, k=3, n_init=2)
    seg, _ = segmenter.assign(cf)
    return pd.DataFrame({"customer_id": cf["customer_id"].astype(str), "segment": seg})


@contextlib.contextmanager
def shuffled_labels(seed: int = 0) -> Iterator[None]:
    """Train on shuffled labels: the estimator learns noise, the hold-out evaluation stays honest."""
    original = M.fit_estimator
    rng = np.random.default_rng(seed)

    def fit(rows, p):
        return original([dataclasses.replace(r, label=rng.permutation(r.label)) for r in rows], p)

    M.fit_estimator = fit
    try:
        yield
    finally:
        M.fit_estimator = original


def train(
    query, region: str, last_day, params: M.TrainParams = PARAMS, shuffle: bool = False
) -> M.PreferenceModel:
    with threadpool_limits(limits=1), shuffled_labels() if shuffle else contextlib.nullcontext():
        return M.train_region(query, region, segments_for(query, region, last_day), params).model


@functools.lru_cache(maxsize=4)
def trained_models(
    days: int = DAYS,
    customers: int = CUSTOMERS,
    regions: tuple[str, ...] = REGION_KEYS,
    params: M.TrainParams = PARAMS,
    shuffle: bool = False,
) -> ModelsCase:
    root = Path(tempfile.mkdtemp(prefix="globolatte-serving-tests-"))
    case = simulate_case(root, days, customers, regions=regions)
    database = str(root / "warehouse.duckdb")
    load_duckdb(database, landed_frames(case.landing))
    query = DuckDBWarehouse(database=database).query
    models = {region: train(query, region, case.last_day, params, shuffle) for region in regions}
    return ModelsCase(root, case, database, models)


def champions_bundle(case: ModelsCase, root: Path) -> tuple[Path, dict[str, str], LocalRegistryStore]:
    """Register every model as its region's champion in a registry under `root`; export the bundle."""
    store = LocalRegistryStore(root / "registry")
    for region, model in case.fresh().items():
        version = store.register(region, model, model.metrics, {"test": True}).version
        store.set_alias(region, "champion", version)
    bundle = root / "bundle"
    versions = store.export_champions(bundle, REGION_KEYS)
    return bundle, versions, store

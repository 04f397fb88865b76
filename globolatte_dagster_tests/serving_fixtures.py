"""Small real recommenders for the registry, scoring and endpoint tests, built once per process.

Simulator data is loaded into a DuckDB warehouse (`ml_data`), the purchase history is reduced in it with
the asset's own SQL, and every region's tournament is trained with the ML code (`lib.segments`,
`lib.recommend.tournament.train_region`). Training runs with one BLAS/OpenMP thread: the test machines
have two cores and oversubscription makes small fits several times slower.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from globolatte_dagster.lib import segments as S
from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.lib.model_store import LocalRegistryStore
from globolatte_dagster.lib.recommend import data as D
from globolatte_dagster.lib.recommend.scoring import RegionRecommender
from globolatte_dagster.lib.recommend.tournament import train_region
from globolatte_dagster.lib.recommend.training import TrainParams
from globolatte_dagster.lib.schema import PURCHASE_HISTORY
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.ml_data import SimCase, landed_frames, load_duckdb, simulate_case

DAYS = 24
CUSTOMERS = 40
PARAMS = TrainParams(max_iter=30, holdout_days=7, train_windows=1, n_boot=200)


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


def build_purchase_history(warehouse: DuckDBWarehouse, regions: tuple[str, ...] | list[str]) -> None:
    """core.purchase_history with the asset's own SQL (what `core/purchase_history` materialises)."""
    warehouse.ensure_tables([PURCHASE_HISTORY])
    for region in regions:
        warehouse.transaction([(D.PURCHASE_HISTORY_DELETE_SQL, [region]), (D.PURCHASE_HISTORY_SQL, [region])])


def train(query, region: str, params: TrainParams = PARAMS, **kwargs: Any) -> RegionRecommender:
    with threadpool_limits(limits=1):
        history = D.load_history(query, region, params.lookback_days)
        segmenter = S.fit_segments(S.purchase_mix(history), seed=0, k=3, n_init=2)
        return train_region(
            history, params, segment_at=segmenter.assign, segments_now=segmenter.assign(history), **kwargs
        ).model


@functools.lru_cache(maxsize=4)
def trained_models(
    days: int = DAYS,
    customers: int = CUSTOMERS,
    regions: tuple[str, ...] = REGION_KEYS,
    params: TrainParams = PARAMS,
) -> ModelsCase:
    root = Path(tempfile.mkdtemp(prefix="globolatte-serving-tests-"))
    case = simulate_case(root, days, customers, regions=regions)
    database = str(root / "warehouse.duckdb")
    load_duckdb(database, landed_frames(case.landing))
    warehouse = DuckDBWarehouse(database=database)
    build_purchase_history(warehouse, regions)
    models = {region: train(warehouse.query, region, params) for region in regions}
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

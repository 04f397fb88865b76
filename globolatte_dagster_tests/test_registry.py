"""The model registry and the champion/challenger gate: pure logic, the local store, and the real assets."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from globolatte_dagster.defs.features.assets import customer_features, purchase_history
from globolatte_dagster.defs.mart.assets import recommendations
from globolatte_dagster.defs.ml.assets import customer_segments, preference_model
from globolatte_dagster.defs.ml.registered_model import GATE, registered_model
from globolatte_dagster.defs.serving.assets import scoring_endpoint
from globolatte_dagster.lib import json_io
from globolatte_dagster.lib.gate import gate
from globolatte_dagster.lib.lineage import code_version
from globolatte_dagster.lib.model_store import LocalRegistryStore
from globolatte_dagster.lib.schema import SALES
from globolatte_dagster.resources.endpoint import LocalScoringEndpoint
from globolatte_dagster.resources.io_managers import WarehouseDuckDBIOManager
from globolatte_dagster.resources.model_registry import LocalModelRegistry
from globolatte_dagster.resources.model_training import InProcessModelTraining
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster.serving.model_server import ModelServer
from globolatte_dagster_tests.ml_data import landed_frames, load_duckdb, simulate_case


# ------------------------------------------------------------------------------------------------- gate
def metrics(
    served: float | None,
    baseline: float = 0.5,
    candidate: str = "context_model",
    window=("2025-01-01", "2025-01-07"),
) -> dict:
    out = {"champion": candidate, "best_baseline": "repeat", "holdout_days": list(window), "sales_days": 30}
    if served is not None:
        out |= {"hit_rate_at_3": served, "best_baseline_hit_rate_at_3": baseline}
    return out


def test_gate_promotes_a_first_version_that_serves_at_least_the_best_baseline():
    d = gate(metrics(0.6), None)
    assert d.promote and not d.forced and "no champion yet" in d.reasons
    assert "serves context_model at 0.6000, not below the best baseline repeat (0.5000)" in d.reasons[0]


def test_gate_rejects_a_version_that_serves_below_the_best_baseline():
    d = gate(metrics(0.45, baseline=0.5), None)
    assert not d.promote and "below the best baseline repeat" in d.reasons[0]


def test_gate_allows_a_challenger_within_the_margin_and_rejects_one_beyond():
    assert gate(metrics(0.595), 0.60, champion_version="3", margin=0.01, comparison="rescored").promote
    worse = gate(metrics(0.58), 0.60, champion_version="3", margin=0.01, comparison="rescored")
    assert not worse.promote and any("worse than champion 3 by more than 0.01" in r for r in worse.reasons)


def test_a_region_with_one_landed_day_gets_a_first_champion_but_never_replaces_one():
    assert gate(metrics(None), None).promote
    later = gate(metrics(None), None, champion_version="2", comparison="-")
    assert not later.promote and "keeps serving" in later.reasons[-1]


def test_forced_promotion_is_recorded_as_forced():
    d = gate(metrics(0.4), 0.6, champion_version="2", force=True)
    assert d.promote and d.forced
    assert any("FORCED" in r for r in d.reasons)
    assert d.as_dict()["forced"] is True


def test_gate_refuses_a_negative_margin():
    with pytest.raises(ValueError, match="margin"):
        gate(metrics(0.6), None, margin=-0.1)


# ------------------------------------------------------------------------------------------ local store
class Stub:
    """A picklable stand-in for a model: the store only needs `model_version`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.model_version = "unregistered"


def test_store_versions_artefacts_metrics_lineage_and_aliases(tmp_path: Path):
    store = LocalRegistryStore(tmp_path)
    first = store.register("america", Stub("a"), metrics(0.6), {"dagster": {"run_id": "r1"}})
    second = store.register("america", Stub("b"), metrics(0.7), {"dagster": {"run_id": "r2"}})
    assert (first.version, second.version) == ("1", "2")
    assert second.model_version == "globolatte-america:2"
    assert store.load("america", "2").model_version == "globolatte-america:2"
    assert store.metrics("america", "1")["hit_rate_at_3"] == 0.6
    assert store.lineage("america", "2")["dagster"]["run_id"] == "r2"
    assert store.get_alias("america", "challenger") == "2" and store.get_alias("america", "champion") is None
    store.set_alias("america", "champion", "1")
    assert store.aliases("america") == {"champion": "1", "challenger": "2"}
    assert sorted(p.name for p in (tmp_path / "america").iterdir()) == [
        "1",
        "2",
        "aliases.json",
    ]  # no temp files
    with pytest.raises(KeyError):
        store.set_alias("america", "champion", "9")
    with pytest.raises(ValueError, match="unknown alias"):
        store.set_alias("america", "production", "1")


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path):
    store = LocalRegistryStore(tmp_path)
    got: list[str] = []
    lock = threading.Lock()

    def register(i: int) -> None:
        v = LocalRegistryStore(tmp_path).register("canada", Stub(str(i)), metrics(0.6), {}).version
        with lock:
            got.append(v)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got, key=int) == [str(i) for i in range(1, 9)]
    assert store.versions("canada") == [str(i) for i in range(1, 9)]


def _set_alias_slowly(root: str, alias: str, version: str, barrier) -> None:
    """In a child process: set an alias with a wide gap between reading and writing aliases.json."""
    read = LocalRegistryStore.aliases

    def slow_read(self, region):
        found = read(self, region)
        time.sleep(0.3)
        return found

    LocalRegistryStore.aliases = slow_read
    barrier.wait()
    LocalRegistryStore(root).set_alias("america", alias, version)


def test_concurrent_alias_writes_from_several_processes_lose_no_update(tmp_path: Path):
    store = LocalRegistryStore(tmp_path)
    for name in "abc":
        store.register("america", Stub(name), metrics(0.6), {})  # challenger -> 3
    ctx = multiprocessing.get_context("fork")
    writes = [("champion", "1"), ("challenger", "2")] * 2
    barrier = ctx.Barrier(len(writes))
    procs = [
        ctx.Process(target=_set_alias_slowly, args=(str(tmp_path), alias, version, barrier))
        for alias, version in writes
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * len(writes)
    assert store.aliases("america") == {"champion": "1", "challenger": "2"}


def test_alias_file_is_replaced_atomically(tmp_path: Path, monkeypatch):
    """A crash while writing aliases leaves the previous aliases intact."""
    store = LocalRegistryStore(tmp_path)
    store.register("mexico", Stub("a"), metrics(0.6), {})
    store.set_alias("mexico", "champion", "1")
    store.register("mexico", Stub("b"), metrics(0.6), {})

    def crash(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(json_io.json, "dump", crash)
    with pytest.raises(OSError):
        store.set_alias("mexico", "champion", "2")
    monkeypatch.undo()
    assert store.get_alias("mexico", "champion") == "1"
    assert [p.name for p in (tmp_path / "mexico").iterdir() if p.name.startswith(".")] == []


def test_code_version_reads_git_without_git_or_falls_back_to_the_package(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "refs" / "heads" / "main").write_text("a" * 40 + "\n")
    (repo / "pkg").mkdir()
    assert code_version(repo / "pkg" / "x.py") == {"git_sha": "a" * 40}
    (repo / ".git" / "refs" / "heads" / "main").unlink()
    (repo / ".git" / "packed-refs").write_text("# pack-refs\n" + "b" * 40 + " refs/heads/main\n")
    assert code_version(repo / "pkg" / "x.py") == {"git_sha": "b" * 40}
    assert set(code_version(tmp_path / "elsewhere" / "x.py")) == {"package_version"}


# --------------------------------------------------------------------------------------- the real assets
REGION = "america"
SMALL_MODEL = {"holdout_days": 7, "max_iter": 30, "train_windows": 1, "n_boot": 200}
FIRST_DAYS = 28  # the first champion sees these days; the rest land later


@pytest.fixture(scope="module")
def ml_env(tmp_path_factory):
    """America's simulated history (its first 28 days) in DuckDB, features and segments, a registry and endpoint."""
    root = tmp_path_factory.mktemp("gate")
    case = simulate_case(root / "sim", days=42, customers=120, regions=[REGION])
    database = str(root / "warehouse.duckdb")
    frames = landed_frames(case.landing)
    cut = pd.Timestamp(case.start + timedelta(days=FIRST_DAYS - 1))
    early = {**frames, "sales": frames["sales"][frames["sales"]["day"] <= cut]}
    load_duckdb(database, early)
    resources = {
        "warehouse": DuckDBWarehouse(database=database),
        "warehouse_io_manager": WarehouseDuckDBIOManager(database=database),
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(root / "artifacts")),
        "registry": LocalModelRegistry(root=str(root / "registry")),
        "endpoint": LocalScoringEndpoint(root=str(root / "endpoint"), drain_s=0.2),
        "training": InProcessModelTraining(),
    }
    late = frames["sales"][frames["sales"]["day"] > cut]
    yield {"root": root, "resources": resources, "case": case, "late_sales": late, "database": database}
    resources["endpoint"].deployer().stop()


ASSETS = [
    purchase_history,
    customer_features,
    customer_segments,
    preference_model,
    registered_model,
    scoring_endpoint,
    recommendations,
]
UPSTREAM = ["core/purchase_history", "core/customer_features", "ml/customer_segments", "ml/segment_model"]


def run(
    env, keys: list[str], register: dict | None = None, model: dict | None = None
) -> dg.ExecuteInProcessResult:
    """Materialise the given assets for america (the endpoint too when listed), inputs from earlier runs."""
    config = {"ops": {"customer_segments": {"config": {"k": 3, "n_init": 2}}}}
    if "ml/preference_model" in keys:
        config["ops"]["ml__preference_model"] = {"config": {**SMALL_MODEL, **(model or {})}}
    if "ml/registered_model" in keys:
        config["ops"]["ml__registered_model"] = {"config": register or {}}
    selection = [dg.AssetKey(k.split("/")) for k in keys]
    return dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=REGION,
        resources=env["resources"],
        run_config=config,
        raise_on_error=False,
    )


def outcome(result: dg.ExecuteInProcessResult) -> tuple[dict, bool, set[str]]:
    """(registered_model metadata, gate passed, materialised asset keys)."""
    mats = {
        e.asset_key.to_user_string(): e.materialization for e in result.get_asset_materialization_events()
    }
    meta = {k: getattr(v, "value", v) for k, v in mats["ml/registered_model"].metadata.items()}
    gate = [c for c in result.get_asset_check_evaluations() if c.check_name == GATE]
    assert len(gate) == 1
    return meta, gate[0].passed, set(mats)


TRAIN_AND_GATE = [*UPSTREAM, "ml/preference_model", "ml/registered_model", "serving/scoring_endpoint"]


def _land_the_later_days(env) -> None:
    conn = duckdb.connect(env["database"])
    try:
        late = env["late_sales"]
        conn.register("late", late[SALES.column_names])
        conn.execute("INSERT INTO raw.sales SELECT * FROM late")
    finally:
        conn.close()


def test_champion_challenger_gate_through_the_real_assets(ml_env):
    registry: LocalModelRegistry = ml_env["resources"]["registry"]
    deployer = ml_env["resources"]["endpoint"].deployer()

    # 1. The first version: promoted whatever it serves (never below the best baseline), deployed in the run.
    meta, passed, done = outcome(run(ml_env, [*TRAIN_AND_GATE, "mart/recommendations"]))
    assert meta["decision"] == "promoted" and passed, meta["reasons"]
    assert meta["challenger_hit_rate_at_3"] >= meta["best_baseline_hit_rate_at_3"]
    assert registry.get_alias(REGION, "champion") == "1" and "serving/scoring_endpoint" in done
    live = deployer.record()
    assert live["model_versions"] == {REGION: "globolatte-america:1"}
    lineage = registry.lineage(REGION, "1")
    assert lineage["data"]["partitions"]["ml/preference_model"] == REGION
    # the sales range in Dagster's spelling of a region-day key (day|region) and of a range (start...end)
    assert lineage["data"]["partitions"]["raw/sales"].endswith(f"...2025-01-28|{REGION}")
    assert lineage["data"]["rows"]["raw_sales_rows"] > 0 and lineage["data"]["day_range"][1] == "2025-01-28"
    assert set(lineage["candidates"]) == {
        "popularity",
        "repeat",
        "recency_repeat",
        "tifu_knn",
        "context_model",
    }
    assert lineage["champion"] == meta["candidate"] and lineage["params"]["max_iter"] == 30
    assert set(lineage["code"]) <= {"git_sha", "package_version"}
    assert lineage["dagster"]["run_id"] and lineage["dagster"]["model_run_id"] == lineage["dagster"]["run_id"]
    _endpoint_equals_mart(ml_env, live)
    champion_candidate = meta["candidate"]

    # 2. Two more weeks land. A version forced to serve popularity is judged against the champion rescored on
    # the new hold-out, which it never saw: far worse, rejected (a warning: the champion keeps serving).
    _land_the_later_days(ml_env)
    result = run(ml_env, [*TRAIN_AND_GATE, "mart/recommendations"], model={"force_candidate": "popularity"})
    meta, passed, done = outcome(result)
    assert meta["decision"] == "rejected" and not passed and meta["candidate"] == "popularity"
    assert "rescored on the new hold-out" in meta["comparison"] and "worse than champion 1" in meta["reasons"]
    assert meta["champion_hit_rate_at_3"] > meta["challenger_hit_rate_at_3"] + 0.05
    gate = next(c for c in result.get_asset_check_evaluations() if c.check_name == GATE)
    assert gate.severity == dg.AssetCheckSeverity.WARN
    assert registry.get_alias(REGION, "champion") == "1" and deployer.record() == live
    mart = ml_env["resources"]["warehouse"].query(
        "SELECT DISTINCT model_version, candidate FROM mart.recommendations WHERE region = ? AND list = 'top'",
        [REGION],
    )
    assert mart.values.tolist() == [["globolatte-america:1", champion_candidate]]

    # 3. The config flag forces that same version through, and says so.
    forced = dg.materialize(
        ASSETS,
        selection=[dg.AssetKey(["ml", "registered_model"])],
        partition_key=REGION,
        resources=ml_env["resources"],
        run_config={"ops": {"ml__registered_model": {"config": {"force_promotion": True}}}},
    )
    meta, passed, _ = outcome(forced)
    assert meta["decision"] == "forced" and meta["forced"] and passed and "FORCED" in meta["reasons"]
    assert registry.get_alias(REGION, "champion") == "3"
    recorded = LocalRegistryStore(registry.root).decision(REGION, "3")
    assert recorded["forced"] is True and recorded["promote"] is True

    # 4. The tournament's own champion replaces the forced one: the forced champion saw the hold-out, so its
    # candidate kind retrained on the same split stands in for it. Deployed to the other colour.
    meta, passed, done = outcome(run(ml_env, TRAIN_AND_GATE))
    assert meta["decision"] == "promoted" and passed, meta["reasons"]
    assert "the champion's candidate (popularity) retrained on this split" in meta["comparison"]
    assert meta["challenger_hit_rate_at_3"] > meta["champion_hit_rate_at_3"]
    assert deployer.record()["model_versions"] == {REGION: "globolatte-america:4"}
    assert deployer.record()["colour"] != live["colour"]


def _endpoint_equals_mart(env, live: dict) -> None:
    """The endpoint's answers for the mart's customers and day equal the mart/recommendations rows."""
    import httpx

    mart = env["resources"]["warehouse"].query(
        "SELECT customer_id, for_date, rank, product_id, score FROM mart.recommendations "
        "WHERE region = ? AND list = 'top' ORDER BY customer_id, rank",
        [REGION],
    )
    customers = sorted(mart["customer_id"].unique())[:60]
    for_date = str(mart["for_date"].iloc[0])[:10]
    reqs = [{"region": REGION, "customer_id": c, "date": for_date, "k": 3} for c in customers]
    server = ModelServer.start(live["deployment_dir"])  # the recorded deployment, served for this check
    try:
        server.wait_ready(90)
        answers = httpx.post(f"{server.url}/score", json={"requests": reqs}, timeout=60).json()["responses"]
    finally:
        server.stop()
    served = [
        (a["customer_id"], i + 1, r["product_id"], r["score"])
        for a in answers
        for i, r in enumerate(a["recommendations"])
    ]
    batch = [
        (c, int(k), p, float(s))
        for c, k, p, s in mart[mart["customer_id"].isin(customers)][
            ["customer_id", "rank", "product_id", "score"]
        ].itertuples(index=False)
    ]
    assert served == batch

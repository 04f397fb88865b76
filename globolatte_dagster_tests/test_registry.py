"""The model registry and the champion/challenger gate: pure logic, the local store, and the real assets."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from globolatte_dagster.defs.features.assets import customer_features
from globolatte_dagster.defs.mart.assets import recommendations
from globolatte_dagster.defs.ml.assets import customer_segments, preference_model
from globolatte_dagster.defs.ml.registry import GATE, registered_model
from globolatte_dagster.defs.serving.assets import scoring_endpoint
from globolatte_dagster.lib import registry as R
from globolatte_dagster.resources.endpoint import LocalScoringEndpoint
from globolatte_dagster.resources.io_managers import WarehouseDuckDBIOManager
from globolatte_dagster.resources.registry import LocalModelRegistry
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster.serving.model_server import ModelServer
from globolatte_dagster_tests.ml_data import landed_frames, load_duckdb, simulate_case
from globolatte_dagster_tests.serving_fixtures import shuffled_labels


# ------------------------------------------------------------------------------------------------- gate
def metrics(
    model: float, repeat: float = 0.5, popularity: float = 0.3, window=("2025-01-01", "2025-01-07")
) -> dict:
    return {
        "hit_rate_at_3_model": model,
        "hit_rate_at_3_repeat": repeat,
        "hit_rate_at_3_popularity": popularity,
        "holdout_days": list(window),
    }


def test_gate_promotes_a_first_model_that_beats_both_baselines():
    d = R.gate(metrics(0.6), None)
    assert d.promote and not d.forced and "no champion yet" in d.reasons


def test_gate_rejects_a_model_that_does_not_beat_the_repeat_baseline():
    d = R.gate(metrics(0.5, repeat=0.5), None)
    assert not d.promote
    assert any("does not beat the repeat baseline" in r for r in d.reasons)


def test_gate_allows_a_challenger_within_the_margin_and_rejects_one_beyond():
    assert R.gate(metrics(0.595), metrics(0.60), champion_version="3", margin=0.01).promote
    worse = R.gate(metrics(0.58), metrics(0.60), champion_version="3", margin=0.01)
    assert not worse.promote and any("worse than champion 3 by more than 0.01" in r for r in worse.reasons)


def test_forced_promotion_is_recorded_as_forced():
    d = R.gate(metrics(0.4), metrics(0.6), champion_version="2", force=True)
    assert d.promote and d.forced
    assert any("FORCED" in r for r in d.reasons)
    assert d.as_dict()["forced"] is True


def test_gate_refuses_to_judge_without_metrics():
    with pytest.raises(ValueError, match="hit_rate_at_3_repeat"):
        R.gate({"hit_rate_at_3_model": 0.5}, None)
    with pytest.raises(ValueError, match="margin"):
        R.gate(metrics(0.6), None, margin=-0.1)


# ------------------------------------------------------------------------------------------ local store
class Stub:
    """A picklable stand-in for a model: the store only needs `model_version`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.model_version = "unregistered"


def test_store_versions_artefacts_metrics_lineage_and_aliases(tmp_path: Path):
    store = R.LocalRegistryStore(tmp_path)
    first = store.register("america", Stub("a"), metrics(0.6), {"dagster": {"run_id": "r1"}})
    second = store.register("america", Stub("b"), metrics(0.7), {"dagster": {"run_id": "r2"}})
    assert (first.version, second.version) == ("1", "2")
    assert second.model_version == "globolatte-america:2"
    assert store.load("america", "2").model_version == "globolatte-america:2"
    assert store.metrics("america", "1")["hit_rate_at_3_model"] == 0.6
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
    store = R.LocalRegistryStore(tmp_path)
    got: list[str] = []
    lock = threading.Lock()

    def register(i: int) -> None:
        v = R.LocalRegistryStore(tmp_path).register("canada", Stub(str(i)), metrics(0.6), {}).version
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
    read = R.LocalRegistryStore.aliases

    def slow_read(self, region):
        found = read(self, region)
        time.sleep(0.3)
        return found

    R.LocalRegistryStore.aliases = slow_read
    barrier.wait()
    R.LocalRegistryStore(root).set_alias("america", alias, version)


def test_concurrent_alias_writes_from_several_processes_lose_no_update(tmp_path: Path):
    store = R.LocalRegistryStore(tmp_path)
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
    store = R.LocalRegistryStore(tmp_path)
    store.register("mexico", Stub("a"), metrics(0.6), {})
    store.set_alias("mexico", "champion", "1")
    store.register("mexico", Stub("b"), metrics(0.6), {})

    def crash(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(R.json, "dump", crash)
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
    assert R.code_version(repo / "pkg" / "x.py") == {"git_sha": "a" * 40}
    (repo / ".git" / "refs" / "heads" / "main").unlink()
    (repo / ".git" / "packed-refs").write_text("# pack-refs\n" + "b" * 40 + " refs/heads/main\n")
    assert R.code_version(repo / "pkg" / "x.py") == {"git_sha": "b" * 40}
    assert set(R.code_version(tmp_path / "elsewhere" / "x.py")) == {"package_version"}


# --------------------------------------------------------------------------------------- the real assets
REGION = "america"
SMALL_MODEL = {"holdout_days": 7, "train_days": 21, "max_iter": 40}


@pytest.fixture(scope="module")
def ml_env(tmp_path_factory):
    """America's simulated history in DuckDB, features and segments materialised, a registry and endpoint."""
    root = tmp_path_factory.mktemp("gate")
    case = simulate_case(root / "sim", days=35, customers=100, regions=[REGION])
    database = str(root / "warehouse.duckdb")
    load_duckdb(database, landed_frames(case.landing))
    resources = {
        "warehouse": DuckDBWarehouse(database=database),
        "warehouse_io_manager": WarehouseDuckDBIOManager(database=database),
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(root / "artifacts")),
        "registry": LocalModelRegistry(root=str(root / "registry")),
        "endpoint": LocalScoringEndpoint(root=str(root / "endpoint"), drain_s=0.2),
    }
    cfg = {
        "ops": {
            "core__customer_features": {"config": {}},
            "ml__customer_segments": {"config": {"k": 3, "n_init": 2}},
        }
    }
    assert dg.materialize(
        [customer_features, customer_segments], partition_key=REGION, resources=resources, run_config=cfg
    ).success
    yield {"root": root, "resources": resources, "case": case}
    resources["endpoint"].deployer().stop()


ASSETS = [
    customer_features,
    customer_segments,
    preference_model,
    registered_model,
    scoring_endpoint,
    recommendations,
]


def run(
    env, keys: list[str], register: dict | None = None, shuffle: bool = False
) -> dg.ExecuteInProcessResult:
    """Materialise the given assets for america (the endpoint too when listed), inputs from earlier runs."""
    config = {"ops": {}}
    if "ml/preference_model" in keys:
        config["ops"]["ml__preference_model"] = {"config": SMALL_MODEL}
    if "ml/registered_model" in keys:
        config["ops"]["ml__registered_model"] = {"config": register or {}}
    selection = [dg.AssetKey(k.split("/")) for k in keys]
    with shuffled_labels() if shuffle else contextlib.nullcontext():
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


TRAIN_AND_GATE = ["ml/preference_model", "ml/registered_model", "serving/scoring_endpoint"]


def test_champion_challenger_gate_through_the_real_assets(ml_env):
    registry: LocalModelRegistry = ml_env["resources"]["registry"]
    deployer = ml_env["resources"]["endpoint"].deployer()

    # 1. Trained on shuffled labels: below the repeat baseline, not promoted; the endpoint does not run.
    meta, passed, done = outcome(run(ml_env, TRAIN_AND_GATE, shuffle=True))
    assert meta["decision"] == "rejected" and not passed
    assert "does not beat the repeat baseline" in meta["reasons"]
    assert "serving/scoring_endpoint" not in done and deployer.record() is None
    assert registry.get_alias(REGION, "challenger") == "1" and registry.get_alias(REGION, "champion") is None
    shuffled_rate = meta["challenger_hit_rate_at_3"]

    # 2. The real model beats both baselines: promoted, and deployed in the same run.
    meta, passed, done = outcome(run(ml_env, [*TRAIN_AND_GATE, "mart/recommendations"]))
    assert meta["decision"] == "promoted" and passed, meta["reasons"]
    assert meta["challenger_hit_rate_at_3"] > meta["repeat_hit_rate_at_3"] > shuffled_rate
    assert registry.get_alias(REGION, "champion") == "2"
    assert "serving/scoring_endpoint" in done
    live = deployer.record()
    assert live["model_versions"] == {REGION: "globolatte-america:2"}
    lineage = registry.lineage(REGION, "2")
    assert lineage["data"]["partitions"]["ml/preference_model"] == REGION
    assert lineage["data"]["rows"]["raw_sales_rows"] > 0 and lineage["data"]["day_range"][1] == "2025-02-04"
    assert set(lineage["code"]) <= {"git_sha", "package_version"} and lineage["params"]["max_iter"] == 40
    assert lineage["dagster"]["run_id"] and lineage["dagster"]["model_run_id"] == lineage["dagster"]["run_id"]
    _endpoint_equals_mart(ml_env, live)

    # 3. Shuffled labels again: worse than the champion on the same window, rejected (a warning: the champion
    # stays and keeps serving; the endpoint step runs and leaves the live deployment as it is).
    result = run(ml_env, [*TRAIN_AND_GATE, "mart/recommendations"], shuffle=True)
    meta, passed, done = outcome(result)
    assert meta["decision"] == "rejected" and not passed
    gate = next(c for c in result.get_asset_check_evaluations() if c.check_name == GATE)
    assert gate.severity == dg.AssetCheckSeverity.WARN
    assert "worse than champion 2" in meta["reasons"] and meta["comparison"].startswith("recorded metrics")
    assert registry.get_alias(REGION, "champion") == "2" and deployer.record() == live
    mart_versions = ml_env["resources"]["warehouse"].query(
        "SELECT DISTINCT model_version FROM mart.recommendations WHERE region = ?", [REGION]
    )
    assert mart_versions["model_version"].tolist() == ["globolatte-america:2"]

    # 4. The config flag forces that same challenger through, and says so.
    forced = dg.materialize(
        ASSETS,
        selection=[dg.AssetKey(["ml", "registered_model"])],
        partition_key=REGION,
        resources=ml_env["resources"],
        run_config={"ops": {"ml__registered_model": {"config": {"force_promotion": True}}}},
    )
    meta, passed, _ = outcome(forced)
    assert meta["decision"] == "forced" and meta["forced"] and passed
    assert "FORCED" in meta["reasons"]
    assert registry.get_alias(REGION, "champion") == "4"
    recorded = R.LocalRegistryStore(registry.root).decision(REGION, "4")
    assert recorded["forced"] is True and recorded["promote"] is True

    # 5. A better model than that champion is promoted and replaces it on the endpoint.
    meta, passed, done = outcome(run(ml_env, TRAIN_AND_GATE))
    assert meta["decision"] == "promoted" and passed
    assert meta["challenger_hit_rate_at_3"] > meta["champion_hit_rate_at_3"]
    assert "not worse than champion 4" in meta["reasons"]
    assert deployer.record()["model_versions"] == {REGION: "globolatte-america:5"}
    assert deployer.record()["colour"] != live["colour"]


def _endpoint_equals_mart(env, live: dict) -> None:
    """The endpoint's answers for the mart's customers and day equal the mart/recommendations rows."""
    import httpx

    mart = env["resources"]["warehouse"].query(
        "SELECT customer_id, for_date, rank, product_id, score FROM mart.recommendations WHERE region = ? "
        "ORDER BY customer_id, rank",
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


def test_champion_on_another_window_is_rescored_on_the_challengers(ml_env):
    """A champion whose hold-out differs is scored on the challenger's window with features as of each day."""
    from datetime import date

    registry: LocalModelRegistry = ml_env["resources"]["registry"]
    champion = registry.get_alias(REGION, "champion")
    if champion is None:
        pytest.skip("needs the champion of the gate test")
    model = registry.load(REGION, champion)
    window = model.metrics["holdout_days"]
    later = [window[0], window[1]]
    query = ml_env["resources"]["warehouse"].query
    rescored = R.rescore_on_window(model, query, later)
    assert rescored["holdout_days"] == later
    assert (
        rescored["days_seen_in_training"]
        == (date.fromisoformat(later[1]) - date.fromisoformat(later[0])).days + 1
    )
    for k in ("hit_rate_at_3_model", "hit_rate_at_3_repeat", "hit_rate_at_3_popularity"):
        assert 0.0 <= rescored[k] <= 1.0
    # The baselines do not depend on the model: the same window gives the recorded baseline figures.
    assert rescored["hit_rate_at_3_repeat"] == pytest.approx(model.metrics["hit_rate_at_3_repeat"])
    assert json.dumps(R.to_jsonable(rescored))

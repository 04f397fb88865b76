"""A first run as `make dev` does it: a fresh home, simulator data, `dagster dev`, and no manual launch.

The sensors and the declarative automation must materialise every asset, every region must get a champion,
the endpoint must answer for every region, and no run may fail. The time it takes is recorded in
test-artifacts/first-run-progress.txt and reported (the goal is 10 minutes on 2 cores), not asserted: tests
never assert on wall-clock time. The limit below only stops a run that hangs.
"""

from __future__ import annotations

import csv
import io
import os
import time
from datetime import date
from pathlib import Path

import dagster as dg
import httpx
import pytest

from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.resources.model_registry import LocalModelRegistry
from globolatte_dagster.serving.model_server import free_port
from globolatte_dagster_tests.dagster_server import REPO_ROOT, DagsterServer
from globolatte_dagster_tests.endpoint_fixtures import start_serve, wait_serving, wait_until_no_servers

ARTIFACTS = REPO_ROOT / "test-artifacts"
# A hang guard, not a performance assertion (the measured time goes to test-artifacts/).
DEADLINE_SECONDS = float(os.environ.get("GLOBOLATTE_FIRST_RUN_DEADLINE_S", "1800"))
ENDPOINT = dg.AssetKey(["serving", "scoring_endpoint"])


def _instance(server: DagsterServer) -> dg.DagsterInstance:
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(server.dagster_home)))


def _a_customer(landing: Path, region: str) -> str:
    first_file = sorted((landing / "sales" / region).rglob("*.csv"))[0]
    rows = csv.DictReader(io.StringIO(first_file.read_text()))
    return next(r["customer_id"] for r in rows if r["customer_id"])


def _missing(instance: dg.DagsterInstance, graph, landed: dict[str, list[str]]) -> list[str]:
    """Assets (and partitions) not materialised yet."""
    out = []
    for key in graph.get_all_asset_keys():
        partitions_def = graph.get(key).partitions_def
        if partitions_def is None:
            if instance.get_latest_materialization_event(key) is None:
                out.append(key.to_user_string())
            continue
        done = instance.get_materialized_partitions(key)
        if isinstance(partitions_def, dg.MultiPartitionsDefinition):
            if key.path == ["raw", "weather"]:
                continue  # weather files exist for most days; a missing day is no failure
            wanted = {f"{d}|{r}" for r, days in landed.items() for d in days}
        else:
            wanted = set(REGION_KEYS)
        if not wanted <= done:
            out.append(f"{key.to_user_string()} ({len(wanted - done)} of {len(wanted)} partitions)")
    return out


@pytest.mark.slow
def test_a_fresh_home_with_simulator_data_reaches_a_serving_champion_in_every_region(tmp_path):
    from globolatte_dagster.simulate import simulate

    home = tmp_path / "home"
    landing = home / "landing"
    simulate(landing, home / "simulator", start=date(2025, 1, 1), days=14, customers=200, seed=7)
    landed = {r: sorted(p.name for p in (landing / "sales" / r).iterdir()) for r in REGION_KEYS}

    from globolatte_dagster.definitions import defs

    graph = defs().resolve_asset_graph()
    server = DagsterServer(home).start()
    started = time.monotonic()
    progress: list[str] = []
    front = None
    try:
        with _instance(server) as instance:
            registry = LocalModelRegistry(root=str(home / "registry"))
            while True:
                elapsed = time.monotonic() - started
                failed = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
                assert not failed, [
                    (r.dagster_run.job_name, r.dagster_run.tags.get("dagster/partition")) for r in failed
                ]
                missing = _missing(instance, graph, landed)
                champions = {r: registry.get_alias(r, "champion") for r in REGION_KEYS}
                endpoint = instance.get_latest_materialization_event(ENDPOINT)
                meta = endpoint.asset_materialization.metadata if endpoint else {}
                served = getattr(meta.get("model_versions"), "value", {}) or {}
                progress.append(f"{elapsed:5.0f}s missing={missing} champions={champions} served={served}")
                if not missing and all(champions.values()) and set(served) == set(REGION_KEYS):
                    break
                assert elapsed < DEADLINE_SECONDS, "\n".join(progress[-5:])
                time.sleep(10)
            # What `make dev` then serves: `globolatte serve` on the recorded deployment.
            port = free_port()
            front = start_serve(home, port)
            status = wait_serving(front, port)
            assert status["model_versions"] == served, status
            for region in REGION_KEYS:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/score",
                    json={
                        "region": region,
                        "customer_id": _a_customer(landing, region),
                        "date": "2025-01-15",
                        "k": 3,
                    },
                    timeout=30,
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["recommendations"], answer.text
            front.terminate()
            front.wait(timeout=60)
            assert wait_until_no_servers(home) == [], "a model server outlived the front"
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "first-run-progress.txt").write_text(
            f"{time.monotonic() - started:.0f} s from dagster dev being ready\n" + "\n".join(progress)
        )
        if front is not None and front.poll() is None:
            front.kill()
        server.stop()

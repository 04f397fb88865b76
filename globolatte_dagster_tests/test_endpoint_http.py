"""The local endpoint over HTTP: score.py under the real azmlinfsrv, deployed blue/green, behind the proxy.

One deployment serves the module (started on free ports, stopped in teardown). The redeploy test sends
requests continuously through the proxy while a new colour is deployed and counts every error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.lib.registry import LocalRegistryStore
from globolatte_dagster.serving.local_endpoint import (
    DeploymentFailed,
    LocalDeployer,
    ScoringProxy,
    free_port,
    pid_alive,
)
from globolatte_dagster_tests.serving_fixtures import champions_bundle, trained_models

FIELDS = {"region", "customer_id", "recommendations", "segment", "model_version", "candidate", "cold_start"}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    case = trained_models()
    root = tmp_path_factory.mktemp("endpoint")
    bundle, versions, store = champions_bundle(case, root)
    deployer = LocalDeployer(root / "endpoint", drain_seconds=0.5)
    record = deployer.deploy(bundle, versions, log=lambda _m: None)
    yield {
        "case": case,
        "root": root,
        "store": store,
        "deployer": deployer,
        "versions": versions,
        "record": record,
    }
    deployer.stop()


def for_date(case) -> str:
    return (case.case.last_day + timedelta(days=1)).isoformat()


def mixed_requests(case, n: int) -> list[dict]:
    out = []
    for i in range(n):
        region = REGION_KEYS[i % 3]
        ids = [str(c) for c in case.models[region].customers]
        cid = ids[i % len(ids)] if i % 10 else f"NEW-{i}"
        req = {"region": region, "customer_id": cid, "date": for_date(case), "k": 1 + i % 5}
        if i % 4 == 0:
            req["temp_max_c"] = float(5 + i % 30)
        out.append(req)
    return out


def test_deployment_is_recorded_and_ready(endpoint):
    rec = endpoint["deployer"].record()
    assert rec["colour"] == "blue" and rec["previous"] is None
    assert rec["url"].startswith("http://127.0.0.1:") and pid_alive(rec["pid"])
    assert rec["model_versions"] == endpoint["versions"]
    assert endpoint["record"]["smoke"]["requests"] >= 6
    r = httpx.get(f"{rec['url']}/")
    assert r.status_code == 200  # the inference server's own liveness route


def test_batch_of_500_answers_the_contract(endpoint):
    case, url = endpoint["case"], endpoint["deployer"].record()["url"]
    reqs = mixed_requests(case, 500)
    t0 = time.perf_counter()
    r = httpx.post(f"{url}/score", json={"requests": reqs}, timeout=60)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200, r.text[:300]
    answers = r.json()["responses"]
    assert len(answers) == 500
    for req, ans in zip(reqs, answers, strict=True):
        assert set(ans) == FIELDS
        assert (ans["region"], ans["customer_id"]) == (req["region"], req["customer_id"])
        assert len(ans["recommendations"]) == req["k"]
        assert ans["model_version"] == endpoint["versions"][req["region"]]
        assert ans["cold_start"] is req["customer_id"].startswith("NEW-") or ans["cold_start"] is True
    print(f"batch of 500: {elapsed:.2f}s")


GOOD = {"region": "america", "customer_id": "C1", "date": "2025-02-01"}
BAD_BODIES = [
    b'{"region": "america", "customer_id": ',  # malformed JSON
    json.dumps({**GOOD, "region": "atlantis"}).encode(),  # unknown region
    json.dumps({k: v for k, v in GOOD.items() if k != "customer_id"}).encode(),  # missing field
    json.dumps({**GOOD, "date": 20250201}).encode(),  # ill-typed field
    json.dumps({**GOOD, "k": 0}).encode(),  # k out of range
    json.dumps({**GOOD, "k": 50}).encode(),
    json.dumps({"requests": [GOOD] * 1001}).encode(),  # too many requests
]


def test_bad_inputs_get_4xx_and_the_server_keeps_serving(endpoint):
    case, url = endpoint["case"], endpoint["deployer"].record()["url"]
    with httpx.Client(timeout=30) as client:
        for body in BAD_BODIES:
            r = client.post(f"{url}/score", content=body, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (body[:60], r.status_code, r.text[:200])
            assert r.json()["message"]
        ok = client.post(f"{url}/score", json={**GOOD, "date": for_date(case)})
    assert ok.status_code == 200 and set(ok.json()) == FIELDS


def test_unknown_customer_gets_cold_start_picks(endpoint):
    case, url = endpoint["case"], endpoint["deployer"].record()["url"]
    r = httpx.post(
        f"{url}/score", json={"region": "canada", "customer_id": "ZZ-NEW", "date": for_date(case), "k": 3}
    )
    body = r.json()
    assert r.status_code == 200 and body["cold_start"] is True
    assert len(body["recommendations"]) == 3
    assert body["model_version"] == endpoint["versions"]["canada"]


def test_endpoint_answers_equal_the_batch_recommendations(endpoint):
    """Same customers, same context: the endpoint and lib.recommend.scoring.recommend (the batch path) agree exactly."""
    case, url = endpoint["case"], endpoint["deployer"].record()["url"]
    reqs = mixed_requests(case, 90)
    served = httpx.post(f"{url}/score", json={"requests": reqs}, timeout=60).json()["responses"]
    champions = {
        r: endpoint["store"].load(r, endpoint["store"].get_alias(r, "champion")) for r in REGION_KEYS
    }
    from globolatte_dagster.lib.recommend.scoring import recommend

    batch = json.loads(json.dumps(recommend(champions, reqs)))
    assert served == batch


def _client_loop(
    url: str, reqs: list[dict], stop: threading.Event, stats: dict, lock: threading.Lock
) -> None:
    i = 0
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            req = reqs[i % len(reqs)]
            i += 1
            try:
                r = client.post(f"{url}/score", json=req)
                ok = r.status_code == 200 and r.json()["customer_id"] == req["customer_id"]
                version = r.json().get("model_version") if r.status_code == 200 else None
            except httpx.HTTPError as exc:
                ok, version = False, repr(exc)
            with lock:
                stats["sent"] += 1
                stats["errors"] += 0 if ok else 1
                stats["versions"].add(version)
                if not ok:
                    stats["failures"].append(version)


def test_redeploy_while_clients_send_requests_loses_none(endpoint):
    case, root, deployer = endpoint["case"], endpoint["root"], endpoint["deployer"]
    before = deployer.record()
    # A newer champion for every region, so answers show which colour served them.
    store: LocalRegistryStore = endpoint["store"]
    for region in REGION_KEYS:
        version = store.register(
            region, case.fresh()[region], case.models[region].metrics, {"test": True}
        ).version
        store.set_alias(region, "champion", version)
    bundle = root / "bundle-2"
    new_versions = store.export_champions(bundle, REGION_KEYS)
    assert new_versions != before["model_versions"]

    reqs = mixed_requests(case, 30)
    stats, lock, stop = (
        {"sent": 0, "errors": 0, "versions": set(), "failures": []},
        threading.Lock(),
        threading.Event(),
    )
    proxy = ScoringProxy(free_port(), deployer.record_path)
    with proxy.running():
        clients = [
            threading.Thread(target=_client_loop, args=(proxy.url, reqs, stop, stats, lock)) for _ in range(3)
        ]
        for t in clients:
            t.start()
        time.sleep(1.0)
        t0 = time.perf_counter()
        result = deployer.deploy(bundle, new_versions, log=lambda _m: None)
        switch_seconds = time.perf_counter() - t0
        time.sleep(1.0)
        stop.set()
        for t in clients:
            t.join()
    print(
        f"redeploy under load: {stats['sent']} requests, {stats['errors']} errors, deploy took {switch_seconds:.1f}s"
    )
    assert stats["errors"] == 0, stats["failures"][:5]
    assert stats["sent"] > 50
    assert result["colour"] == "green" and result["previous"]["colour"] == "blue"
    assert not pid_alive(before["pid"])  # the old colour was stopped
    served = {v for v in stats["versions"]}
    assert set(before["model_versions"].values()) & served and set(new_versions.values()) & served
    endpoint["versions"] = new_versions


def test_a_failed_smoke_test_leaves_the_old_deployment_serving(endpoint):
    case, root, deployer = endpoint["case"], endpoint["root"], endpoint["deployer"]
    live = deployer.record()
    broken = root / "bundle-broken"
    store = LocalRegistryStore(root / "broken-registry")
    models = case.fresh()
    models["mexico"].candidates.clear()  # its champion is gone: scoring raises -> HTTP 500
    for region, model in models.items():
        store.set_alias(region, "champion", store.register(region, model, model.metrics, {}).version)
    versions = store.export_champions(broken, REGION_KEYS)
    with pytest.raises(DeploymentFailed, match="500") as failure:
        deployer.deploy(broken, versions, log=lambda _m: None)
    assert f"the {live['colour']} deployment keeps serving" in str(failure.value)
    assert deployer.record() == live
    r = httpx.post(f"{live['url']}/score", json={**GOOD, "date": for_date(case)})
    assert r.status_code == 200 and r.json()["model_version"] == live["model_versions"]["america"]
    history = [json.loads(line) for line in (deployer.root / "history.jsonl").read_text().splitlines()]
    assert history[-1]["status"] == "failed" and "500" in history[-1]["reason"]


def test_globolatte_serve_serves_until_interrupted(endpoint, tmp_path: Path):
    """`globolatte serve --port N` deploys the registry's champions and answers on the fixed port."""
    home = tmp_path / "home"
    LocalRegistryStore(home / "registry")  # the command reads GLOBOLATTE_HOME/registry
    store = endpoint["store"]
    target = LocalRegistryStore(home / "registry")
    for region in REGION_KEYS:
        model = store.load(region, store.get_alias(region, "champion"))
        target.set_alias(region, "champion", target.register(region, model, model.metrics, {}).version)
    port = free_port()
    env = {**os.environ, "GLOBOLATTE_HOME": str(home)}
    code = "from globolatte_dagster.serving.cli import serve; serve()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, answer = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/score",
                    json={**GOOD, "date": for_date(endpoint["case"])},
                    timeout=10,
                )
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200, (
            proc.stdout.read() if proc.poll() is not None else ""
        )
        assert answer.json()["model_version"] == "globolatte-america:1"
        record = json.loads((home / "endpoint" / "endpoint.json").read_text())
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "POST http://127.0.0.1:" in out and f"stopped {record['colour']}" in out
    assert not pid_alive(record["pid"])

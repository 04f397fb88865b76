"""The local endpoint over HTTP: score.py under the real azmlinfsrv, deployed blue/green, behind the front.

One deployment serves the module through a front started here (its model server on a free port, stopped
in teardown). The redeploy test sends requests continuously through the front while a new colour is
deployed, and the self-healing test kills the model server under load; both count every error.
Every test that starts servers lists the inference-server processes before and after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.lib.model_store import LocalRegistryStore
from globolatte_dagster.serving.deployer import DeploymentFailed, LocalDeployer
from globolatte_dagster.serving.front import Front, Limits
from globolatte_dagster.serving.model_server import free_port, pid_alive
from globolatte_dagster.serving.supervisor import Supervisor
from globolatte_dagster_tests.endpoint_fixtures import (
    FIELDS,
    GOOD,
    for_date,
    mixed_requests,
    seed_home,
    servers_under,
    start_serve,
    wait_serving,
    wait_until_no_servers,
)
from globolatte_dagster_tests.serving_fixtures import champions_bundle, trained_models


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    case = trained_models()
    root = tmp_path_factory.mktemp("endpoint")
    bundle, versions, store = champions_bundle(case, root)
    deployer = LocalDeployer(root / "endpoint", drain_seconds=0.5)
    record = deployer.deploy(bundle, versions, log=lambda _m: None)
    after_deploy = servers_under(root)
    front = Front(free_port(), deployer.record_path, limits=Limits(backend_timeout=20), log=lambda _m: None)
    front.start()
    front.supervisor.wait_ready(90)
    env = {
        "case": case,
        "root": root,
        "store": store,
        "deployer": deployer,
        "versions": versions,
        "record": record,
        "front": front,
        "after_deploy": after_deploy,
    }
    yield env
    front.stop()
    assert wait_until_no_servers(root) == [], "the front left a model server running"


def test_a_deployment_is_recorded_and_leaves_no_model_server_running(endpoint):
    rec = endpoint["deployer"].record()
    assert rec["colour"] == "blue" and rec["previous"] is None
    assert Path(rec["deployment_dir"], "model", "champions.json").exists()
    assert rec["model_versions"] == endpoint["versions"]
    assert endpoint["record"]["smoke"]["requests"] >= 6
    # The deployer's smoke-test server was stopped: nothing ran between the deployment and the front.
    assert endpoint["after_deploy"] == []
    status = httpx.get(f"{endpoint['front'].url}/").json()
    assert status["status"] == "ready" and status["model_versions"] == endpoint["versions"]
    assert pid_alive(status["model_server_pid"])


def test_batch_of_500_answers_the_contract(endpoint):
    case, url = endpoint["case"], endpoint["front"].url
    reqs = mixed_requests(case, 500)
    r = httpx.post(f"{url}/score", json={"requests": reqs}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    answers = r.json()["responses"]
    assert len(answers) == 500
    for req, ans in zip(reqs, answers, strict=True):
        assert set(ans) == FIELDS
        assert (ans["region"], ans["customer_id"]) == (req["region"], req["customer_id"])
        assert len(ans["recommendations"]) == req["k"]
        assert ans["model_version"] == endpoint["versions"][req["region"]]
        assert ans["cold_start"] is req["customer_id"].startswith("NEW-") or ans["cold_start"] is True


BAD_BODIES = [
    b'{"region": "america", "customer_id": ',  # malformed JSON
    json.dumps({**GOOD, "region": "atlantis"}).encode(),  # unknown region
    json.dumps({k: v for k, v in GOOD.items() if k != "customer_id"}).encode(),  # missing field
    json.dumps({**GOOD, "date": 20250201}).encode(),  # ill-typed field
    json.dumps({**GOOD, "k": 0}).encode(),  # k out of range
    json.dumps({**GOOD, "k": 50}).encode(),
    json.dumps({"requests": [GOOD] * 1001}).encode(),  # too many requests
    b"[" * 100_000 + b"]" * 100_000,  # nested far beyond the parser's recursion limit
    json.dumps({**GOOD, "customer_id": "C" * 1_000_000}).encode(),  # a 1 MB customer id
    json.dumps({**GOOD, "customer_id": "C1\u0000"}).encode(),  # NUL in the customer id
    json.dumps({**GOOD, "date": "9999-12-31"}).encode(),  # far outside the data's window
]


def test_bad_inputs_get_4xx_json_and_the_server_keeps_serving(endpoint):
    case, url = endpoint["case"], endpoint["front"].url
    with httpx.Client(timeout=30) as client:
        for body in BAD_BODIES:
            r = client.post(f"{url}/score", content=body, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (body[:60], r.status_code, r.text[:200])
            assert r.json()["message"] and len(r.content) < 2000  # no echo of a huge input
        ok = client.post(f"{url}/score", json={**GOOD, "date": for_date(case)})
    assert ok.status_code == 200 and set(ok.json()) == FIELDS


def test_unknown_customer_gets_cold_start_picks(endpoint):
    case, url = endpoint["case"], endpoint["front"].url
    r = httpx.post(
        f"{url}/score", json={"region": "canada", "customer_id": "ZZ-NEW", "date": for_date(case), "k": 3}
    )
    body = r.json()
    assert r.status_code == 200 and body["cold_start"] is True
    assert len(body["recommendations"]) == 3
    assert body["model_version"] == endpoint["versions"]["canada"]


def test_endpoint_answers_equal_the_batch_recommendations(endpoint):
    """Same customers, same context: the endpoint and lib.recommend.scoring.recommend (the batch path) agree exactly."""
    case, url = endpoint["case"], endpoint["front"].url
    reqs = mixed_requests(case, 90)
    served = httpx.post(f"{url}/score", json={"requests": reqs}, timeout=60).json()["responses"]
    champions = {
        r: endpoint["store"].load(r, endpoint["store"].get_alias(r, "champion")) for r in REGION_KEYS
    }
    from globolatte_dagster.lib.recommend.scoring import recommend

    batch = json.loads(json.dumps(recommend(champions, reqs)))
    assert served == batch


class Load:
    """Client threads posting single requests through the front, recording every outcome."""

    def __init__(self, url: str, reqs: list[dict], clients: int = 3, timeout: float = 30.0) -> None:
        self.url, self.reqs, self.timeout = url, reqs, timeout
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes: list[tuple[float, int | str, str | None, float]] = []  # (t, status, version, s)
        self.threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(clients)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _loop(self, offset: int) -> None:
        i = offset
        with httpx.Client(timeout=self.timeout) as client:
            while not self.stop.is_set():
                req = self.reqs[i % len(self.reqs)]
                i += 1
                t0 = time.monotonic()
                try:
                    r = client.post(f"{self.url}/score", json=req)
                    if r.status_code == 200:
                        ok = r.json()["customer_id"] == req["customer_id"]
                        status, version = (200 if ok else "wrong answer"), r.json().get("model_version")
                    else:
                        status, version = (
                            r.status_code,
                            json.dumps(r.json()) + r.headers.get("retry-after", ""),
                        )
                except (httpx.HTTPError, ValueError) as exc:
                    status, version = type(exc).__name__, repr(exc)
                with self.lock:
                    self.outcomes.append((t0, status, version, time.monotonic() - t0))
                if status == 503:
                    time.sleep(0.25)  # as a client honouring Retry-After would, if a little sooner

    def count(self, status) -> int:
        with self.lock:
            return sum(1 for o in self.outcomes if o[1] == status)


def test_redeploy_while_clients_send_requests_loses_none(endpoint):
    case, root, deployer, front = endpoint["case"], endpoint["root"], endpoint["deployer"], endpoint["front"]
    before = deployer.record()
    old_pid = front.supervisor.current.pid
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

    with Load(front.url, mixed_requests(case, 30)) as load:
        time.sleep(1.0)
        result = deployer.deploy(bundle, new_versions, log=lambda _m: None)
        deadline = time.monotonic() + 120
        while front.supervisor.describe()["model_versions"] != new_versions and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
    failures = [o for o in load.outcomes if o[1] != 200]
    print(f"redeploy under load: {len(load.outcomes)} requests, {len(failures)} errors")
    assert failures == [], failures[:5]
    assert len(load.outcomes) > 50
    assert result["colour"] == "green" and result["previous"]["colour"] == "blue"
    served = {o[2] for o in load.outcomes}
    assert set(before["model_versions"].values()) & served and set(new_versions.values()) & served
    assert wait_until_no_servers(Path(before["deployment_dir"]), 30) == []  # the front stopped the old one
    assert not pid_alive(old_pid)
    endpoint["versions"] = new_versions


def test_a_failed_smoke_test_leaves_the_recorded_deployment_serving(endpoint):
    case, root, deployer, front = endpoint["case"], endpoint["root"], endpoint["deployer"], endpoint["front"]
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
    r = httpx.post(f"{front.url}/score", json={**GOOD, "date": for_date(case)})
    assert r.status_code == 200 and r.json()["model_version"] == live["model_versions"]["america"]
    history = [json.loads(line) for line in (deployer.root / "history.jsonl").read_text().splitlines()]
    assert history[-1]["status"] == "failed" and "500" in history[-1]["reason"]
    assert [p for p in servers_under(root) if p != front.supervisor.current.pid] == []


def test_a_killed_model_server_is_restarted_and_the_front_answers_503_meanwhile(endpoint):
    """Kill the model server's process group under load: answers are 200 or JSON 503 with Retry-After,
    no request fails otherwise or outlives its timeout, and the front serves again from a new server."""
    case, front = endpoint["case"], endpoint["front"]
    victim = front.supervisor.current.pid
    with Load(
        front.url, mixed_requests(case, 30), clients=4, timeout=front.limits.backend_timeout + 10
    ) as load:
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.killpg(victim, signal.SIGKILL)
        deadline = killed_at + 120  # a liveness bound for the test, not a speed goal
        while time.monotonic() < deadline:
            with load.lock:
                recovered = [o for o in load.outcomes if o[0] > killed_at and o[1] == 200]
            if len(recovered) >= 20:
                break
            time.sleep(0.2)
    after_kill = [o for o in load.outcomes if o[0] >= killed_at - 0.5]
    unavailable = [o for o in after_kill if o[1] == 503]
    others = [o for o in after_kill if o[1] not in (200, 503)]
    first_ok = min((o[0] + o[3] for o in after_kill if o[1] == 200 and o[0] > killed_at), default=None)
    print(
        f"kill under load: {len(after_kill)} requests after the kill, {len(unavailable)} answered 503, "
        f"{len(others)} other errors, back after {first_ok - killed_at if first_ok else None:.1f}s, "
        f"slowest {max(o[3] for o in after_kill):.2f}s, restarts {front.supervisor.events.restarts}"
    )
    assert others == [], others[:5]
    assert all("retry shortly" in o[2] and o[2][-1].isdigit() for o in unavailable), unavailable[:3]
    assert first_ok is not None, "the front did not serve again after its model server was killed"
    assert front.supervisor.current.pid != victim and not pid_alive(victim)
    assert front.supervisor.events.restarts >= 1


def test_globolatte_serve_serves_until_interrupted_and_stops_its_model_server(endpoint, tmp_path: Path):
    """`globolatte serve --port N` deploys the registry's champions, answers on the fixed port, and on
    SIGINT stops the model server it started; the process listing is empty before and after."""
    home = tmp_path / "home"
    seed_home(home, endpoint["store"])
    assert servers_under(home) == []
    port = free_port()
    proc = start_serve(home, port)
    try:
        status = wait_serving(proc, port)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/score", json={**GOOD, "date": for_date(endpoint["case"])}, timeout=30
        )
        assert answer.status_code == 200 and answer.json()["model_version"] == "globolatte-america:1"
        assert servers_under(home) and status["model_server_pid"] in servers_under(home)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "POST http://127.0.0.1:" in out and "stopped the front and its model server" in out
    assert wait_until_no_servers(home) == []
    assert (home / "endpoint" / "endpoint.json").exists()  # the deployment stays recorded for the next front


def test_two_fronts_on_one_home_do_not_stop_each_others_model_servers(endpoint, tmp_path: Path):
    home = tmp_path / "home"
    seed_home(home, endpoint["store"])
    port_a, port_b = free_port(), free_port()
    a = start_serve(home, port_a)
    try:
        pid_a = wait_serving(a, port_a)["model_server_pid"]
        b = start_serve(home, port_b)
        try:
            pid_b = wait_serving(b, port_b)["model_server_pid"]
            assert pid_a != pid_b
            a.send_signal(signal.SIGINT)
            a.communicate(timeout=60)
            assert a.returncode == 0
            r = httpx.post(
                f"http://127.0.0.1:{port_b}/score",
                json={**GOOD, "date": for_date(endpoint["case"])},
                timeout=30,
            )
            assert r.status_code == 200
            assert pid_alive(pid_b) and not pid_alive(pid_a)
            assert (home / "endpoint" / "endpoint.json").exists()
        finally:
            b.send_signal(signal.SIGINT)
            b.communicate(timeout=60)
    finally:
        for proc in (a,):
            if proc.poll() is None:
                proc.kill()
    assert wait_until_no_servers(home) == []


def test_the_deployment_step_of_globolatte_run_leaves_no_model_server(endpoint, tmp_path: Path):
    """`globolatte run` deploys through the serving/scoring_endpoint asset in its own process: the
    process listing shows no model server once that process has exited (none before either)."""
    home = tmp_path / "home"
    seed_home(home, endpoint["store"])
    assert servers_under(home) == []
    code = (
        "import dagster as dg\n"
        "from globolatte_dagster.resources import local_resources\n"
        "from globolatte_dagster.defs.serving.assets import scoring_endpoint\n"
        "r = local_resources()\n"
        "result = dg.materialize([scoring_endpoint], resources={k: r[k] for k in ('registry', 'endpoint')})\n"
        "assert result.success\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "GLOBOLATTE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    record = json.loads((home / "endpoint" / "endpoint.json").read_text())
    assert record["model_versions"] == {r: f"globolatte-{r}:1" for r in REGION_KEYS}
    assert servers_under(home) == []


def test_a_hung_model_server_is_replaced_but_a_busy_one_is_not(endpoint):
    """SIGSTOP freezes a model server (it neither answers nor exits): after failed checks it is replaced.
    Answers the front got meanwhile count as life, so a server slow to answer the probe is left alone."""
    supervisor = Supervisor(
        endpoint["deployer"].record_path,
        probe_interval=0.2,
        probe_timeout=0.5,
        http_probe_every=1,
        failures_to_restart=2,
        log=lambda _m: None,
    ).start()
    try:
        busy = supervisor.wait_ready(90)
        os.killpg(busy.pid, signal.SIGSTOP)
        for _ in range(15):  # 3 s of checks that would fail, had the front not had answers
            supervisor.mark_alive()
            time.sleep(0.2)
        assert supervisor.current is busy and supervisor.events.restarts == 0
        deadline = time.monotonic() + 120  # a liveness bound, not a speed goal
        while (supervisor.current in (None, busy)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert supervisor.current is not None and supervisor.current is not busy
        assert supervisor.events.restarts == 1 and not pid_alive(busy.pid)
    finally:
        supervisor.close()

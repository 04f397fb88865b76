"""B4 Endpoint: latency and throughput of the local scoring endpoint against the model in process.

The champions are registered in a local registry, exported as a bundle and deployed with the project's
`LocalDeployer` (smoke-tested on a model server of its own, which it stops); then `globolatte serve` runs
in its own process, as a user starts it: the front (uvicorn + httpx) and its model server (score.py under
Azure ML's inference server `azmlinfsrv` on 127.0.0.1). Models come from B3's smallest run (1,000
customers per region, a year of sales) when it has been run, else from the test suite's small models.

Load: `httpx` clients in threads, each with its own keep-alive connection, 1 and 8 at a time, sending
single requests and batches of BATCH requests for a fixed time, through the front and, for comparison,
to the front's model server directly. Baseline: `lib.recommend.scoring.recommend` in a fresh process with the same
requests (one client, no HTTP). Every answer is checked (status 200, one answer per request, the asked
region and customer, k recommendations); anything else is an error. Then the model server is killed
under load and the errors and the time to recovery are counted; at the end the process listing must
show no model server of the benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import (
    BENCH,
    WORK,
    TreeSampler,
    log,
    machine,
    machine_line,
    md_table,
    write_result,
)

NAME = "b4_endpoint"
BATCH = 100
CLIENTS = (1, 8)
SECONDS = {"full": 24.0, "quick": 1.5}  # per scenario, split over ROUNDS interleaved slices
KILL_SECONDS = {"full": 30.0, "quick": 10.0}  # the kill scenario's length (the kill comes 2 s in)
ROUNDS = {"full": 4, "quick": 2}
FIELDS = {"region", "customer_id", "recommendations", "segment", "model_version", "candidate", "cold_start"}
B3_MODELS = WORK / "b3" / "home-1000" / "artifacts" / "ml" / "preference_model"


def load_models() -> tuple[dict[str, Any], str]:
    from globolatte_dagster.lib.contract import REGION_KEYS

    if all((B3_MODELS / r).exists() for r in REGION_KEYS):
        models = {}
        for region in REGION_KEYS:
            with (B3_MODELS / region).open("rb") as fh:
                models[region] = pickle.load(fh)
        return models, f"B3 chain at 1,000 customers per region ({B3_MODELS})"
    from globolatte_dagster_tests.serving_fixtures import trained_models

    case = trained_models()
    return (
        case.fresh(),
        "the test suite's small models (serving_fixtures.trained_models: 40 customers, 24 days)",
    )


def request_pool(models: dict[str, Any], n: int = 3000) -> list[dict]:
    """Known customers of every region (every 10th a new one: cold start), mixed k, some with weather."""
    from globolatte_dagster.lib.contract import REGION_KEYS

    out = []
    for i in range(n):
        region = REGION_KEYS[i % 3]
        model = models[region]
        ids = [str(c) for c in model.customers]
        cid = ids[(i * 7919) % len(ids)] if i % 10 else f"NEW-{i}"
        req = {
            "region": region,
            "customer_id": cid,
            "date": (model.as_of + timedelta(days=1)).isoformat(),
            "k": 1 + i % 5,
        }
        if i % 4 == 0:
            req["temp_max_c"] = float(5 + i % 30)
        out.append(req)
    return out


def valid(reqs: list[dict], answers: list[dict]) -> bool:
    if len(answers) != len(reqs):
        return False
    for req, ans in zip(reqs, answers, strict=True):
        if set(ans) != FIELDS or (ans["region"], ans["customer_id"]) != (req["region"], req["customer_id"]):
            return False
        if len(ans["recommendations"]) != req["k"]:
            return False
    return True


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


def _summary(latencies: list[float], errors: int, seconds: float, per_call: int, clients: int) -> dict:
    calls = len(latencies)
    return {
        "clients": clients,
        "requests_per_call": per_call,
        "calls": calls,
        "errors": errors,
        "seconds": round(seconds, 2),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        "calls_per_second": round(calls / seconds, 1),
        "scored_requests_per_second": round(calls * per_call / seconds, 1),
    }


def in_process(models: dict[str, Any], pool: list[dict], per_call: int, seconds: float) -> dict:
    """Baseline: the models' own `recommend`, no HTTP, one caller."""
    from globolatte_dagster.lib.recommend.scoring import recommend

    latencies, errors, i = [], 0, 0
    t_end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < t_end:
        reqs = [pool[(i + j) % len(pool)] for j in range(per_call)]
        i += per_call
        t = time.perf_counter()
        try:
            answers = recommend(models, reqs)
            ok = valid(reqs, answers)
        except Exception:
            ok = False
        latencies.append(time.perf_counter() - t)
        errors += not ok
    return {"latencies": latencies, "errors": errors, "seconds": time.perf_counter() - t0, "samples": []}


class InProcessChild:
    """The baseline in a fresh process that imports what score.py imports (not Dagster), loads the same
    bundle with joblib, and runs `in_process` slices on request (one JSON line in, one out)."""

    def __init__(self, bundle: Path, pool_file: Path) -> None:
        cmd = [sys.executable, "-m", "benchmarks.b4_endpoint", "--in-process", str(bundle), str(pool_file)]
        self.proc = subprocess.Popen(
            cmd, cwd=BENCH.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def run(self, per_call: int, seconds: float) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([per_call, seconds]) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the in-process baseline exited ({self.proc.poll()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _child_in_process(bundle: str, pool_file: str) -> None:
    import joblib

    from globolatte_dagster.lib.contract import REGION_KEYS
    from globolatte_dagster.lib.model_store import ARTEFACT

    models = {r: joblib.load(Path(bundle) / r / ARTEFACT) for r in REGION_KEYS if (Path(bundle) / r).exists()}
    pool = json.loads(Path(pool_file).read_text())
    for per_call in (1, BATCH):  # warm-up
        in_process(models, pool, per_call, 1.0)
    for line in sys.stdin:
        per_call, seconds = json.loads(line)
        print(json.dumps(in_process(models, pool, int(per_call), float(seconds))), flush=True)


def over_http(url: str, pool: list[dict], per_call: int, clients: int, seconds: float) -> dict:
    """`clients` threads, each with its own keep-alive httpx.Client, for `seconds`."""
    latencies: list[float] = []
    errors = [0]
    error_samples: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    t_end = [0.0]

    def client(cid: int) -> None:
        local, bad, i = [], 0, cid * 997
        with httpx.Client(timeout=60.0) as http:
            start.wait()
            while time.perf_counter() < t_end[0]:
                reqs = [pool[(i + j) % len(pool)] for j in range(per_call)]
                i += per_call * clients
                body = reqs[0] if per_call == 1 else {"requests": reqs}
                t = time.perf_counter()
                try:
                    r = http.post(f"{url}/score", json=body)
                    ok = r.status_code == 200
                    if ok:
                        data = r.json()
                        ok = valid(reqs, [data] if per_call == 1 else data.get("responses", []))
                    elif len(error_samples) < 5:
                        error_samples.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    ok = False
                    if len(error_samples) < 5:
                        error_samples.append(repr(exc)[:200])
                local.append(time.perf_counter() - t)
                bad += not ok
        with lock:
            latencies.extend(local)
            errors[0] += bad

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for th in threads:
        th.start()
    t_end[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for th in threads:
        th.join()
    return {
        "latencies": latencies,
        "errors": errors[0],
        "seconds": time.perf_counter() - t0,
        "samples": error_samples,
    }


class Serve:
    """`globolatte serve --port PORT` in its own process on the benchmark's home (the user's front)."""

    def __init__(self, home: Path, port: int) -> None:
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        env = {**os.environ, "GLOBOLATTE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        self.log = (home / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "globolatte_dagster.cli", "serve", "--port", str(port)],
            cwd=BENCH.parent,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def status(self, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"globolatte serve exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.url}/", timeout=5)
                if r.status_code == 200:
                    return r.json()
            time.sleep(0.2)
        raise RuntimeError("globolatte serve did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def kill_scenario(serve: Serve, pool: list[dict], clients: int, seconds: float, kill_after: float) -> dict:
    """Single requests from `clients` threads through the front; the model server's process group is
    killed (SIGKILL) `kill_after` s in. A client that gets a 503 waits min(Retry-After, 0.25 s). The load
    lasts `seconds`, and longer if needed, until a request sent after the kill is answered 200 (at most
    120 s after the kill)."""
    victim = serve.status()["model_server_pid"]
    outcomes: list[tuple[float, str, float]] = []  # (start, outcome, seconds)
    lock = threading.Lock()
    stop = threading.Event()

    def client(cid: int) -> None:
        i = cid * 997
        with httpx.Client(timeout=60.0) as http:
            while not stop.is_set():
                req = pool[i % len(pool)]
                i += clients
                t0 = time.monotonic()
                try:
                    r = http.post(f"{serve.url}/score", json=req)
                    if r.status_code == 200:
                        outcome = "200" if valid([req], [r.json()]) else "wrong answer"
                    elif r.status_code == 503 and r.headers.get("retry-after") and r.json().get("message"):
                        outcome = "503 Retry-After"
                    else:
                        outcome = f"{r.status_code}"
                except (httpx.HTTPError, ValueError) as exc:
                    outcome = type(exc).__name__
                took = time.monotonic() - t0
                with lock:
                    outcomes.append((t0, outcome, took))
                if outcome == "503 Retry-After":
                    time.sleep(min(float(r.headers["retry-after"]), 0.25))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for th in threads:
        th.start()
    t_start = time.monotonic()
    time.sleep(kill_after)
    killed_at = time.monotonic()
    os.killpg(victim, signal.SIGKILL)
    while time.monotonic() < killed_at + 120:
        with lock:
            recovered = any(o[1] == "200" and o[0] >= killed_at for o in outcomes)
        if recovered and time.monotonic() >= t_start + seconds:
            break
        time.sleep(0.1)
    stop.set()
    for th in threads:
        th.join()
    after = [o for o in outcomes if o[0] + o[2] >= killed_at]
    first_ok = min((o[0] + o[2] for o in after if o[1] == "200" and o[0] >= killed_at), default=None)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o[1]] = counts.get(o[1], 0) + 1
    status = serve.status()
    return {
        "clients": clients,
        "seconds": round(time.monotonic() - t_start, 1),
        "killed_after_s": kill_after,
        "requests": len(outcomes),
        "outcomes": counts,
        "errors_other_than_503": sum(v for k, v in counts.items() if k not in ("200", "503 Retry-After")),
        "answered_503_after_kill": sum(1 for o in after if o[1] == "503 Retry-After"),
        "recovery_seconds": round(first_ok - killed_at, 2) if first_ok else None,
        "front_reported_recovery_seconds": status.get("last_recovery_seconds"),
        "slowest_request_s": round(max(o[2] for o in outcomes), 3),
        "restarts": status.get("restarts"),
        "new_model_server": status.get("model_server_pid") != victim,
    }


def run(quick: bool = False) -> dict:
    from globolatte_dagster.lib.contract import REGION_KEYS
    from globolatte_dagster.lib.model_store import LocalRegistryStore
    from globolatte_dagster.serving.deployer import LocalDeployer
    from globolatte_dagster.serving.front import Limits
    from globolatte_dagster.serving.model_server import free_port, server_processes

    m = machine()
    seconds = SECONDS["quick" if quick else "full"]
    rounds = ROUNDS["quick" if quick else "full"]
    models, source = load_models()
    pool = request_pool(models)
    root = WORK / "b4"
    if root.exists():
        import shutil

        shutil.rmtree(root)
    store = LocalRegistryStore(root / "registry")
    for region in REGION_KEYS:
        version = store.register(region, models[region], getattr(models[region], "metrics", {}), {}).version
        store.set_alias(region, "champion", version)
    bundle = root / "bundle"
    versions = store.export_champions(bundle, REGION_KEYS)
    pool_file = root / "requests.json"
    pool_file.write_text(json.dumps(pool))
    servers_before = len(server_processes(root))
    log("B4: deploying (smoke test on its own model server), then `globolatte serve` (front + model server)")
    record = LocalDeployer(root / "endpoint", drain_seconds=0.5).deploy(bundle, versions, log=lambda _m: None)
    servers_after_deploy = len(server_processes(root))
    serve = Serve(root, free_port())
    front_status = serve.status()
    direct = front_status["model_server_url"]
    scenarios = []
    for per_call in (1, BATCH):
        kind = "single" if per_call == 1 else f"batch of {BATCH}"
        scenarios.append((f"in_process {kind}", per_call, 0, None))
        scenarios += [(f"front {kind} x{c}", per_call, c, "front") for c in CLIENTS]
        scenarios += [(f"model server direct {kind} x{c}", per_call, c, "direct") for c in CLIENTS]
    raw: dict[str, list[dict]] = {name: [] for name, *_ in scenarios}
    baseline = InProcessChild(bundle, pool_file)
    kill: dict = {}
    try:
        with TreeSampler(serve.proc.pid, interval=0.25) as sampler:
            for per_call in (1, BATCH):  # warm-up: the first calls load code paths and caches
                over_http(serve.url, pool, per_call, 1, 1.0)
                over_http(direct, pool, per_call, 1, 1.0)
            # Round robin, so that the baseline and the servers see the same (drifting) machine load.
            for rnd in range(rounds):
                log(f"B4: round {rnd + 1}/{rounds}")
                for name, per_call, clients, target in scenarios:
                    slice_s = seconds / rounds
                    if target is None:
                        raw[name].append(baseline.run(per_call, slice_s))
                    else:
                        url = serve.url if target == "front" else direct
                        raw[name].append(over_http(url, pool, per_call, clients, slice_s))
        peak_rss = round(sampler.peak_total_mb)
        log("B4: killing the model server under load")
        kill = kill_scenario(serve, pool, 8, KILL_SECONDS["quick" if quick else "full"], 2.0)
    finally:
        baseline.close()
        serve.stop()
    deadline = time.monotonic() + 30
    while server_processes(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    servers_left = len(server_processes(root))
    results: dict[str, dict] = {}
    for name, per_call, clients, _target in scenarios:
        parts = raw[name]
        results[name] = _summary(
            [x for p in parts for x in p["latencies"]],
            sum(p["errors"] for p in parts),
            sum(p["seconds"] for p in parts),
            per_call,
            max(clients, 1),
        )
        results[name]["error_samples"] = [x for p in parts for x in p["samples"]][:5]
    for per_call in (1, BATCH):
        kind = "single" if per_call == 1 else f"batch of {BATCH}"
        base = results[f"in_process {kind}"]
        for clients in CLIENTS:
            for target in ("front", "model server direct"):
                r = results[f"{target} {kind} x{clients}"]
                r["p50_overhead_ratio"] = round(r["p50_ms"] / base["p50_ms"], 2) if base["p50_ms"] else None
                r["throughput_ratio"] = round(
                    r["scored_requests_per_second"] / base["scored_requests_per_second"], 2
                )
    total_errors = sum(r["errors"] for r in results.values())
    single_ratio = results["front single x1"]["p50_overhead_ratio"]
    payload = {
        "benchmark": NAME,
        "mode": "quick" if quick else "full",
        "machine": m,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "models": source,
        "server": {
            "front": "globolatte serve (uvicorn with h11, an h11 hop to the model server), its own azmlinfsrv with 1 worker",
            "limits": {k: v for k, v in Limits().__dict__.items()},
            "deploy_startup_seconds": record.get("startup_seconds"),
            "peak_rss_mb_front_and_model_server": peak_rss,
        },
        "processes": {
            "model_servers_before": servers_before,
            "after_deploy": servers_after_deploy,
            "after_stopping_the_front": servers_left,
        },
        "seconds_per_scenario": seconds,
        "rounds": rounds,
        "results": results,
        "kill": kill,
        "goals": {
            "zero_errors": total_errors == 0,
            "single_request_overhead_at_most_1.2x": bool(single_ratio and single_ratio <= 1.2),
            "kill: back within 30 s": bool(
                kill.get("recovery_seconds") is not None and kill["recovery_seconds"] <= 30
            ),
            "kill: no error but 503 with Retry-After": kill.get("errors_other_than_503") == 0,
            "no model server left running": servers_left == 0 and servers_after_deploy == 0,
        },
    }
    write_result(NAME, quick, payload, markdown(payload))
    return payload


def markdown(p: dict) -> str:
    rows = []
    for name, r in p["results"].items():
        rows.append(
            [
                name,
                r["clients"],
                r["calls"],
                r["p50_ms"],
                r["p99_ms"],
                r["calls_per_second"],
                r["scored_requests_per_second"],
                "" if "p50_overhead_ratio" not in r else f"{r['p50_overhead_ratio']}x",
                "" if "throughput_ratio" not in r else f"{r['throughput_ratio']}x",
                r["errors"],
            ]
        )
    head = [
        "scenario",
        "clients",
        "calls",
        "p50 ms",
        "p99 ms",
        "calls/s",
        "scored requests/s",
        "p50 / in-process p50",
        "throughput / in-process",
        "errors",
    ]
    s, k, pr = p["server"], p["kill"], p["processes"]
    goals = "; ".join(f"{key}: {'met' if v else 'NOT met'}" for key, v in p["goals"].items())
    outcomes = ", ".join(f"{v:,} {key}" for key, v in sorted(k.get("outcomes", {}).items()))
    return "\n".join(
        [
            f"### B4 Endpoint ({p['mode']})",
            "",
            f"Machine: {machine_line(p['machine'])}; load average {p['load_average_at_end'][0]} at the end.",
            "",
            f"Models: {p['models']}. Front: {s['front']}, started as `globolatte serve` in its own process "
            f"after a deployment smoke-tested in {s['deploy_startup_seconds']} s; peak RSS of the front and its "
            f"model server {s['peak_rss_mb_front_and_model_server']} MB. Each scenario runs "
            f"{p['seconds_per_scenario']:g} s after a warm-up, in {p['rounds']} slices interleaved round robin "
            "with the others (the baseline and the servers see the same drifting load); latency is per call "
            "(a batch is one call). `front` goes through `globolatte serve`; `model server direct` calls the "
            "front's azmlinfsrv itself (what the front adds is the difference). The in-process baseline runs "
            "in a fresh process that loads the same bundle with joblib and imports no Dagster.",
            "",
            md_table(head, rows),
            "",
            f"**Model server killed under load** ({k.get('clients')} clients sending single requests through the "
            f"front for {k.get('seconds')} s, until a request sent after the kill got a 200; the model "
            f"server's process group SIGKILLed after {k.get('killed_after_s')} s; a client waits "
            "min(Retry-After, 0.25 s) after a 503): "
            f"{k.get('requests', 0):,} requests: {outcomes}. Errors other than a JSON 503 with Retry-After: "
            f"{k.get('errors_other_than_503')}. First 200 after the kill: {k.get('recovery_seconds')} s "
            f"(the front reports {k.get('front_reported_recovery_seconds')} s from noticing to ready); slowest "
            f"request {k.get('slowest_request_s')} s; restarts {k.get('restarts')}.",
            "",
            f"Model servers of this benchmark running: {pr['model_servers_before']} before, {pr['after_deploy']} "
            f"after the deployment, {pr['after_stopping_the_front']} after stopping the front.",
            "",
            f"Goals: {goals}.",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--in-process":
        _child_in_process(*sys.argv[2:])
    else:
        run(quick="--quick" in sys.argv)

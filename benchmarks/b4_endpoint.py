"""B4 Endpoint: latency and throughput of the local scoring endpoint against the model in process.

The champions are registered in a local registry, exported as a bundle and deployed with the project's
`LocalDeployer` (score.py under Azure ML's inference server `azmlinfsrv` on 127.0.0.1). Models come from
B3's smallest run (1,000 customers per region, a year of sales) when it has been run, else from the test
suite's small trained models.

Load: `httpx` clients in threads, each with its own keep-alive connection, 1 and 8 at a time, sending
single requests and batches of BATCH requests for a fixed time. Baseline: `PreferenceModel.recommend`
called in this process with the same requests (one client, no HTTP). Every answer is checked (status 200,
one answer per request, the asked region and customer, k recommendations); anything else is an error.
"""

from __future__ import annotations

import json
import pickle
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
ROUNDS = {"full": 4, "quick": 2}
FIELDS = {"region", "customer_id", "recommendations", "segment", "model_version", "cold_start"}
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
    from globolatte_dagster.lib.registry import ARTEFACT

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


def run(quick: bool = False) -> dict:
    from globolatte_dagster.lib.contract import REGION_KEYS
    from globolatte_dagster.lib.registry import LocalRegistryStore
    from globolatte_dagster.serving.local_endpoint import LocalDeployer

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
    deployer = LocalDeployer(root / "endpoint", drain_seconds=0.5)
    log("B4: deploying the local endpoint (azmlinfsrv)")
    record = deployer.deploy(bundle, versions, log=lambda _m: None)
    url = record["url"]
    scenarios = []
    for per_call in (1, BATCH):
        kind = "single" if per_call == 1 else f"batch of {BATCH}"
        scenarios.append((f"in_process {kind}", per_call, 0))
        scenarios += [(f"http {kind} x{c}", per_call, c) for c in CLIENTS]
    raw: dict[str, list[dict]] = {name: [] for name, _, _ in scenarios}
    baseline = InProcessChild(bundle, pool_file)
    try:
        with TreeSampler(record["pid"], interval=0.25) as sampler:
            for per_call in (1, BATCH):  # warm-up: the first calls load code paths and caches
                over_http(url, pool, per_call, 1, 1.0)
            # Round robin, so that the baseline and the server see the same (drifting) machine load.
            for rnd in range(rounds):
                log(f"B4: round {rnd + 1}/{rounds}")
                for name, per_call, clients in scenarios:
                    slice_s = seconds / rounds
                    if clients == 0:
                        raw[name].append(baseline.run(per_call, slice_s))
                    else:
                        raw[name].append(over_http(url, pool, per_call, clients, slice_s))
        server_rss = round(sampler.peak_total_mb)
    finally:
        baseline.close()
        deployer.stop()
    results: dict[str, dict] = {}
    for name, per_call, clients in scenarios:
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
            r = results[f"http {kind} x{clients}"]
            r["p50_overhead_ratio"] = round(r["p50_ms"] / base["p50_ms"], 2) if base["p50_ms"] else None
            r["throughput_ratio"] = round(
                r["scored_requests_per_second"] / base["scored_requests_per_second"], 2
            )
    total_errors = sum(r["errors"] for r in results.values())
    payload = {
        "benchmark": NAME,
        "mode": "quick" if quick else "full",
        "machine": m,
        "models": source,
        "server": {
            "workers": deployer.workers,
            "startup_seconds": record.get("startup_seconds"),
            "peak_rss_mb": server_rss,
        },
        "seconds_per_scenario": seconds,
        "rounds": rounds,
        "results": results,
        "goals": {"zero_errors": total_errors == 0},
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
    s = p["server"]
    goals = "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in p["goals"].items())
    return "\n".join(
        [
            f"### B4 Endpoint ({p['mode']})",
            "",
            f"Machine: {machine_line(p['machine'])}.",
            "",
            f"Models: {p['models']}. Server: `azmlinfsrv` with {s['workers']} worker(s), started and "
            f"smoke-tested in {s['startup_seconds']} s, peak RSS {s['peak_rss_mb']} MB. Each scenario runs "
            f"{p['seconds_per_scenario']:g} s after a warm-up, in {p.get('rounds', 4)} slices interleaved round robin with "
            "the others (the baseline and the server see the same drifting load); latency is per call "
            "(a batch is one call). The in-process baseline runs in a fresh process that loads the same "
            "bundle with joblib and imports no Dagster.",
            "",
            md_table(head, rows),
            "",
            f"Goals: {goals}.",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--in-process":
        _child_in_process(*sys.argv[2:])
    else:
        run(quick="--quick" in sys.argv)

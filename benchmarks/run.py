"""Run the benchmarks: `python -m benchmarks.run [--quick] [--only B1,B2,...]` (`make bench`).

Each benchmark writes `benchmarks/results/<name>[_quick].json` and `.md`; this script then rewrites the
results section of `benchmarks/README.md` from every table present. A benchmark that fails is reported
(and the exit status is non-zero) but does not stop the others.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor

from benchmarks.common import (
    BENCH,
    RESULTS,
    code_snapshot,
    log,
    machine,
    machine_line,
    result_name,
    write_result,
)

BENCHMARKS = {
    "B1": ("b1_ingestion", "B1 Ingestion"),
    "B2": ("b2_sensor", "B2 Sensor"),
    "B3": ("b3_ml", "B3 ML chain"),
    "B4": ("b4_endpoint", "B4 Endpoint"),
    "B5": ("b5_quality", "B5 Quality"),
}
START = "<!-- results:start -->"
END = "<!-- results:end -->"


def _module(key: str):
    return importlib.import_module(f"benchmarks.{BENCHMARKS[key][0]}")


def _prepare(key: str, quick: bool) -> float:
    """One benchmark's prepare phase (in a worker process); its seconds."""
    t0 = time.perf_counter()
    log(f"=== {BENCHMARKS[key][1]}: preparing data ({'quick' if quick else 'full'}) ===")
    _module(key).prepare(quick=quick)
    return time.perf_counter() - t0


def update_readme() -> None:
    """Put every result table (full first, then quick) between the README's markers."""
    readme = BENCH / "README.md"
    text = readme.read_text() if readme.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip() + f"\n\n{START}\n{END}\n"
    parts = []
    for quick in (False, True):
        for module, _title in BENCHMARKS.values():
            md = RESULTS / f"{result_name(module, quick)}.md"
            if md.exists():
                parts.append(md.read_text().strip())
    body = "\n\n".join(parts) if parts else "No results yet: run `make bench`."
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{body}\n{END}{tail}")
    log(f"updated {readme}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark at its smallest size")
    parser.add_argument("--only", default="", help="comma-separated subset, e.g. B1,B2")
    args = parser.parse_args(argv)
    chosen = [b.strip().upper() for b in args.only.split(",") if b.strip()] or list(BENCHMARKS)
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    log(f"machine: {machine_line(machine())}")
    failed = []
    # Data generation and warehouse loading first, untimed by the benchmarks and cached under .work: the
    # first run on a machine pays it once. The benchmarks prepare in parallel processes (they share no
    # files but the code snapshot, copied here first); the timed phase below runs one benchmark at a time.
    t_prepare = time.perf_counter()
    code_snapshot()
    preparing = [key for key in chosen if hasattr(_module(key), "prepare")]
    with ProcessPoolExecutor(max(1, len(preparing)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {key: pool.submit(_prepare, key, args.quick) for key in preparing}
        for key, future in futures.items():
            try:
                log(f"{BENCHMARKS[key][1]}: prepared in {future.result():.0f} s")
            except Exception as exc:
                failed.append(key)
                log(f"{BENCHMARKS[key][1]}: preparing FAILED: {exc}")
    prepare_s = time.perf_counter() - t_prepare
    t_bench = time.perf_counter()
    seconds: dict[str, float] = {}
    for key in chosen:
        module, title = BENCHMARKS[key]
        if key in failed:
            continue  # its data could not be prepared (logged above)
        log(f"=== {title} ({'quick' if args.quick else 'full'}) ===")
        t0 = time.perf_counter()
        try:
            result = importlib.import_module(f"benchmarks.{module}").run(quick=args.quick)
            unmet = [k for k, v in result.get("goals", {}).items() if not v]
            log(f"{title}: {time.perf_counter() - t0:.0f} s; goals not met: {unmet or 'none'}")
            seconds[key] = round(time.perf_counter() - t0, 1)
        except Exception as exc:
            failed.append(key)
            detail = traceback.format_exc()
            log(f"{title} FAILED: {exc}\n{detail}")
            write_result(
                module,
                args.quick,
                {"benchmark": module, "mode": "quick" if args.quick else "full", "error": detail},
                f"### {title} ({'quick' if args.quick else 'full'})\n\nFAILED: `{exc}` (see the .json).",
            )
    bench_s = time.perf_counter() - t_bench
    log(f"prepare {prepare_s:.0f} s (cached after the first run), benchmarks {bench_s:.0f} s")
    if set(chosen) == set(BENCHMARKS):
        (RESULTS / f"run_{'quick' if args.quick else 'full'}.json").write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "prepare_seconds": round(prepare_s, 1),
                    "benchmarks_seconds": round(bench_s, 1),
                    "per_benchmark_seconds": seconds,
                    "failed": failed,
                },
                indent=2,
            )
        )
    update_readme()
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

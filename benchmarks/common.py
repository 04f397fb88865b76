"""Shared parts of the benchmarks: machine description, timing, peak memory, data, Azurite, result files.

Every benchmark compares with a baseline measured in the same run, because the machine is shared and
absolute times are noisy. Times come from `time.perf_counter`; peak memory from `resource.getrusage`
(this process) or from sampling the RSS of a process tree with `psutil` (dagster runs, servers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import resource
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"  # git-ignored: generated landing zones, warehouses, dagster homes
RESULTS = BENCH / "results"
MB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- machine ------------------------------------------------------------------------------------------
def machine() -> dict:
    """Cores, memory and load at the start of a benchmark (the machine is shared: load matters)."""
    import dagster
    import duckdb

    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    vm = psutil.virtual_memory()
    return {
        "when_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_total_gb": round(vm.total / 1024**3, 1),
        "memory_available_gb": round(vm.available / 1024**3, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "dagster": dagster.__version__,
        "duckdb": duckdb.__version__,
    }


def machine_line(m: dict) -> str:
    return (
        f"{m['nproc']} cores ({m['cpu_model'] or 'unknown CPU'}), {m['memory_total_gb']} GB memory "
        f"({m['memory_available_gb']} GB available), load average {m['load_average_at_start'][0]} at start; "
        f"Python {m['python']}, Dagster {m['dagster']}, DuckDB {m['duckdb']}; {m['when_utc']}"
    )


# ---- timing and memory --------------------------------------------------------------------------------
@contextlib.contextmanager
def timed() -> Iterator[dict]:
    """`with timed() as t: ...` then `t["s"]` holds the wall seconds (time.perf_counter)."""
    out: dict = {}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - t0


def self_peak_rss_mb() -> float:
    """Peak RSS of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class TreeSampler:
    """Samples the RSS of a process and all its descendants every `interval` seconds, in a thread.

    `peak_total_mb` is the largest sum over the tree; `peak_by_label_mb` the largest single process per
    label, where `label(cmdline)` names the processes of interest (e.g. dagster run workers) or None.
    """

    root_pid: int
    interval: float = 0.1
    label: Callable[[str], str | None] = lambda _cmd: None
    peak_total_mb: float = 0.0
    peak_by_label_mb: dict[str, float] = field(default_factory=dict)
    seen_by_label: dict[str, set[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0.0
        for p in procs:
            try:  # no cache of the command line: a forked child execs into its own one
                rss = p.memory_info().rss / MB
                cmdline = " ".join(p.cmdline())
            except psutil.Error:
                continue
            total += rss
            name = self.label(cmdline)
            if name:
                self.peak_by_label_mb[name] = max(self.peak_by_label_mb.get(name, 0.0), rss)
                self.seen_by_label.setdefault(name, set()).add(p.pid)
        self.peak_total_mb = max(self.peak_total_mb, total)


def exponent(x1: float, y1: float, x2: float, y2: float) -> float | None:
    """The scaling exponent b of y ~ x^b between two sizes."""
    import math

    if min(x1, y1, x2, y2) <= 0 or x1 == x2:
        return None
    return math.log(y2 / y1) / math.log(x2 / x1)


# ---- data ---------------------------------------------------------------------------------------------
def simulated(
    name: str,
    customers: int,
    days: int,
    regions: Sequence[str] | None,
    start: date | None,
    seed: int = 11,
    profile: str = "friendly",
) -> tuple[Path, dict]:
    """A simulator landing zone under benchmarks/.work, generated once and reused while its parameters match.

    `regions` and `start` default (None) to the profile's.
    """
    from globolatte_dagster.simulate.generator import simulate
    from globolatte_dagster.simulate.profiles import PROFILES

    base = WORK / "data" / name
    marker = base / "summary.json"
    regions = tuple(regions or PROFILES[profile].regions)
    start = start or PROFILES[profile].start_date
    params = {
        "customers": customers,
        "days": days,
        "regions": list(regions),
        "start": start.isoformat(),
        "seed": seed,
    }
    if profile != "friendly":  # the friendly profile writes what the simulator wrote before profiles
        params["profile"] = profile
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("params") == params:
            return base / "landing", saved
    if base.exists():
        import shutil

        shutil.rmtree(base)
    log(f"simulating {name}: {customers} customers x {days} days x {len(regions)} region(s)")
    summary = simulate(
        base / "landing", base / "truth", start, days, customers, seed, regions=regions, profile=profile
    )
    saved = {
        "params": params,
        "sales_rows": summary.sales_rows,
        "transactions": summary.transactions,
        "sales_files": summary.sales_files,
        "broken_rows": summary.broken_rows,
        "rows_per_region": summary.rows_per_region,
        "seconds": round(summary.seconds, 1),
    }
    marker.write_text(json.dumps(saved, indent=2))
    log(f"simulated {name}: {summary}")
    return base / "landing", saved


def code_snapshot(dest: Path | None = None) -> Path:
    """A copy of the project package (by default `.work/code`, shared by every benchmark), so that runs are
    not broken by concurrent edits of the working tree.

    Child processes started with `cwd=dest` and `PYTHONPATH=dest` import the copy, not the working tree.
    The copy is not load-checked here (a check is a full code load, ~12 s): the first child that uses it
    (B1's reference load, B3's setup) loads the definitions and fails with the import error if they break.
    """
    import shutil

    import globolatte_dagster

    dest = dest or WORK / "code"
    source = Path(globolatte_dagster.__file__).resolve().parent
    digest = hashlib.sha256()
    for f in sorted(source.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            digest.update(str(f.relative_to(source)).encode() + b"\0" + f.read_bytes())
    marker = dest / ".snapshot-sha256"
    if marker.exists() and marker.read_text() == digest.hexdigest():
        return dest  # the same code, already copied (by this run's prepare phase)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(source, dest / "globolatte_dagster", ignore=shutil.ignore_patterns("__pycache__"))
    marker.write_text(digest.hexdigest())
    return dest


def snapshot_env(dest: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(dest)}


def child_env(code: Path, home: Path, landing: Path) -> dict[str, str]:
    """Environment of a benchmark child process: the code snapshot, a local home and a landing zone."""
    return {
        **snapshot_env(code),
        "PYTHONPATH": f"{code}:{BENCH.parent}",
        "GLOBOLATTE_HOME": str(home),
        "GLOBOLATTE_LANDING": str(landing),
        "GLOBOLATTE_ENV": "local",
        "DAGSTER_HOME": str(home / "dagster_home"),
    }


# ---- Azurite ------------------------------------------------------------------------------------------
AZURITE_BLOB = REPO / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    """Azurite's Blob service on a free port, in memory, as the test fixtures start it."""

    def __init__(self, workdir: Path, memory_limit_mb: int = 2048) -> None:
        self.workdir = workdir
        self.memory_limit_mb = memory_limit_mb
        self.proc: subprocess.Popen | None = None
        self.blob_url = ""

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_url};"
        )

    def __enter__(self) -> Azurite:
        if not AZURITE_BLOB.exists():
            raise RuntimeError(f"Azurite is not installed: {AZURITE_BLOB} is missing (run `make services`)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.blob_url = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        cmd = [
            str(AZURITE_BLOB),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(port),
            "--inMemoryPersistence",
            "--extentMemoryLimit", str(self.memory_limit_mb),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]  # fmt: skip
        with (self.workdir / "azurite.log").open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                urllib.request.urlopen(f"{self.blob_url}?comp=list", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # any HTTP answer means it listens
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"Azurite did not start; see {self.workdir / 'azurite.log'}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # In memory, nothing to flush: after SIGTERM Azurite lingered for the whole 10 s the benchmark
            # used to wait, so it gets 2 s before SIGKILL.
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# ---- results --------------------------------------------------------------------------------------------
def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 10 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def result_name(name: str, quick: bool) -> str:
    return f"{name}_quick" if quick else name


def write_result(name: str, quick: bool, payload: dict, markdown: str) -> Path:
    """benchmarks/results/<name>[_quick].json and .md; returns the .md path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = result_name(name, quick)
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md = RESULTS / f"{stem}.md"
    md.write_text(markdown.rstrip() + "\n")
    log(f"wrote {RESULTS / stem}.json and .md")
    return md

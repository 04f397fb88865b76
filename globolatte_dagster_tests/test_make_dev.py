"""`make dev` stops on Ctrl-C: SIGINT to its process group leaves no process of it running 10 s later."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from globolatte_dagster.resources.landing import LocalLandingZone
from globolatte_dagster_tests.conftest import CUSTOMERS_CSV, PRODUCTS_CSV, SAMPLE_EXPORT
from globolatte_dagster_tests.dagster_server import REPO_ROOT, free_port


def _running(pgid: int) -> list[str]:
    """Processes of the group that still run (zombies are dead: only their exit status is left)."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [" ".join(r) for r in rows if len(r) == 4 and r[1] == str(pgid) and not r[2].startswith("Z")]


@pytest.mark.slow
def test_ctrl_c_stops_make_dev_within_ten_seconds(tmp_path):
    home = tmp_path / "home"
    landing = LocalLandingZone(root=str(home / "landing"))  # seeded, so `simulate --if-empty` skips
    landing.write_bytes("reference/products.csv", PRODUCTS_CSV)
    landing.write_bytes("reference/customers.csv", CUSTOMERS_CSV)
    landing.write_bytes("sales/america/2024-09-22/sample.csv", SAMPLE_EXPORT)
    ui_port, serve_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "GLOBOLATTE_LANDING")}
    env["GLOBOLATTE_HOME"] = str(home)
    with (tmp_path / "make-dev.log").open("wb") as log:
        make = subprocess.Popen(
            ["make", "dev", f"UI_PORT={ui_port}", f"SERVE_PORT={serve_port}", "LIVE_INTERVAL=5"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives it
        )
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and make.poll() is None:
                try:
                    if httpx.get(f"http://127.0.0.1:{ui_port}/server_info", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(1)
            assert make.poll() is None, (tmp_path / "make-dev.log").read_text()[-3000:]
            time.sleep(15)  # sensors tick and runs start: there is work in flight
            assert len(_running(make.pid)) >= 4  # make, the script, simulator, endpoint front, dagster ...

            os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
            time.sleep(10)
            make.poll()
            assert _running(make.pid) == []
        finally:
            if _running(make.pid):
                os.killpg(make.pid, signal.SIGKILL)
            make.wait(timeout=30)

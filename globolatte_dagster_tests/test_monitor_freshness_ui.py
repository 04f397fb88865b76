"""A unit that stops uploading shows as late in the Dagster UI: the upload freshness policy on raw/sales.

The real webserver and daemon (with the freshness daemon, enabled in deploy/local/dagster.yaml) and headless
Debian Chromium. The deadline is set to every minute (GLOBOLATTE_UPLOAD_DEADLINE="* * * * * UTC"), so that a
unit whose last upload is older than a minute before the last deadline fails its freshness within the test.
"""

import time
from pathlib import Path

import pytest

from globolatte_dagster.resources.landing import LocalLandingZone
from globolatte_dagster_tests.conftest import CUSTOMERS_CSV, PRODUCTS_CSV, SAMPLE_EXPORT
from globolatte_dagster_tests.dagster_server import REPO_ROOT, DagsterServer
from globolatte_dagster_tests.test_ui import CHROMIUM, _dismiss_welcome, _reference_loaded

ARTIFACTS = REPO_ROOT / "test-artifacts"
FRESHNESS = """query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode {
  freshnessStatusInfo { freshnessStatus freshnessStatusMetadata { lastMaterializedTimestamp } }
  internalFreshnessPolicy { ... on CronFreshnessPolicy { deadlineCron timezone } } } } }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> DagsterServer:
    home = tmp_path_factory.mktemp("globolatte_freshness")
    landing = LocalLandingZone(root=str(home / "landing"))
    landing.write_bytes("reference/products.csv", PRODUCTS_CSV)
    landing.write_bytes("reference/customers.csv", CUSTOMERS_CSV)
    landing.write_bytes("sales/america/2024-09-22/sample.csv", SAMPLE_EXPORT)
    env = {
        "GLOBOLATTE_UPLOAD_DEADLINE": "* * * * * UTC",
        "GLOBOLATTE_AUTOMATION": "off",  # only the runs the test launches
        "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",
    }
    srv = DagsterServer(home, env=env).start()
    try:
        yield srv
    finally:
        srv.stop()


def _freshness(server: DagsterServer, key: list[str]) -> dict:
    return server.gql(FRESHNESS, {"k": {"path": key}})["assetNodeOrError"]


def _wait_for(server: DagsterServer, key: list[str], status: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    node = _freshness(server, key)
    while time.monotonic() < deadline:
        node = _freshness(server, key)
        if node["freshnessStatusInfo"]["freshnessStatus"] == status:
            return node
        time.sleep(3)
    raise AssertionError(f"{key} freshness stayed {node['freshnessStatusInfo']} (waited for {status})")


@pytest.mark.browser
def test_a_unit_that_stopped_uploading_shows_failed_freshness_in_the_ui(server: DagsterServer):
    playwright = pytest.importorskip("playwright.sync_api")
    assert Path(CHROMIUM).exists(), "Debian chromium is required (apt-get install chromium)"
    policy = _freshness(server, ["raw", "sales"])["internalFreshnessPolicy"]
    assert policy == {"deadlineCron": "* * * * *", "timezone": "UTC"}  # the setting, read at load
    assert _freshness(server, ["raw", "sales_rejects"])["freshnessStatusInfo"] is None  # no policy there

    _reference_loaded(server)
    run_id = server.launch_partition_run(
        "ingest_sales", "2024-09-22|america", {"day": "2024-09-22", "region": "america"}
    )
    assert server.wait_for_run(run_id) == "SUCCESS"
    # America uploaded, then stopped: fresh until a deadline passes with nothing new, then failed
    _wait_for(server, ["raw", "sales"], "HEALTHY", timeout=150)
    node = _wait_for(server, ["raw", "sales"], "DEGRADED", timeout=240)
    assert node["freshnessStatusInfo"]["freshnessStatusMetadata"]["lastMaterializedTimestamp"]

    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{server.url}/assets/raw/sales", wait_until="networkidle", timeout=120_000)
        _dismiss_welcome(page)
        try:
            page.get_by_text("Deadline: Every minute").first.wait_for(timeout=60_000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "raw-sales-freshness.png"), full_page=True)
        text = page.inner_text("body")
        (ARTIFACTS / "raw-sales-freshness.txt").write_text(text)
        browser.close()
    # Dagster 1.13's wording for the new freshness policies ("Overdue" belonged to the legacy ones)
    panel = text[text.rindex("Freshness policy") :]
    assert panel.split("\n")[1] == "Failed" and "Deadline: Every minute" in panel

"""The Blob landing zone against Azurite: listing, fingerprints, credentials, and the sensor at scale."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from globolatte_dagster.defs.ingestion.sensors import RANGE_END_TAG, RANGE_START_TAG, sales_landing_sensor
from globolatte_dagster.lib import scan as scan_module
from globolatte_dagster.lib.scan import scan_sales
from globolatte_dagster.resources.azure import azure_resources
from globolatte_dagster.resources.blob_landing import BlobLandingZone
from globolatte_dagster_tests.azure_fixtures import AZURITE_ACCOUNT, AZURITE_KEY
from globolatte_dagster_tests.conftest import SAMPLE_EXPORT

pytestmark = pytest.mark.azure
HEADER = SAMPLE_EXPORT.splitlines()[0]


def _sales(day: str, tid: str = "T001") -> bytes:
    return HEADER + f"\n{tid},BU_US,P001,C001,1,3.50,{day} 08:00:00,cash\n".encode()


def _instance_with_products() -> dg.DagsterInstance:
    """The sales sensor waits for core/products; pretend the reference load ran."""
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["core", "products"]))
    return instance


def _tick(landing, cursor, instance=None):
    ctx = dg.build_sensor_context(
        cursor=cursor, resources={"landing": landing}, instance=instance or _instance_with_products()
    )
    result = sales_landing_sensor(ctx)
    return list(result.run_requests or []), result.cursor


def test_blob_listing_reads_and_etag_fingerprints(azurite_landing: BlobLandingZone):
    z = azurite_landing
    z.write_bytes("sales/america/2024-09-22/a.csv", b"one")
    z.write_bytes("sales/america/2024-09-23/b.csv", b"two!")
    z.write_bytes("sales/america/2024-09-23/.upload.tmp", b"in flight")
    z.write_bytes("weather/america/2024-09-22.csv", b"w")

    listed = z.list("sales/america/")
    assert [(o.path, o.size) for o in listed] == [
        ("sales/america/2024-09-22/a.csv", 3),
        ("sales/america/2024-09-23/b.csv", 4),
    ]
    assert z.list_dirs("sales/america/") == ["sales/america/2024-09-22/", "sales/america/2024-09-23/"]
    assert z.list_dirs("") == ["sales/", "weather/"]
    assert z.list("sales/mexico/") == [] and z.list_dirs("sales/mexico/") == []
    assert z.read_bytes("sales/america/2024-09-23/b.csv") == b"two!"
    assert b"".join(z.read_stream("sales/america/2024-09-23/b.csv")) == b"two!"
    assert z.exists("weather/america/2024-09-22.csv") and not z.exists("weather/america/2024-09-21.csv")

    # Re-uploading the same bytes still gives a new etag: the sensor treats it as a new delivery.
    before = z.list("sales/america/2024-09-22/")[0].fingerprint
    z.write_bytes("sales/america/2024-09-22/a.csv", b"one")
    assert z.list("sales/america/2024-09-22/")[0].fingerprint != before
    assert AZURITE_KEY not in z.description and z.container in z.description


@pytest.mark.parametrize("kind", ["connection_string", "sas", "key"])
def test_azure_resources_pick_the_credential_from_the_environment(
    azurite, azurite_container, monkeypatch, kind
):
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", azurite.blob_url)
    monkeypatch.setenv("AZURE_STORAGE_CONTAINER", azurite_container)
    if kind == "connection_string":
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    elif kind == "sas":
        sas = generate_container_sas(
            AZURITE_ACCOUNT,
            azurite_container,
            account_key=AZURITE_KEY,
            permission=ContainerSasPermissions(read=True, write=True, list=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    else:
        monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)

    landing = azure_resources()["landing"]
    # The definitions hold only the variable names, never a secret value.
    assert AZURITE_KEY not in repr(landing) and "sig=" not in repr(landing)

    @dg.asset
    def roundtrip(landing: BlobLandingZone) -> list[str]:
        landing.write_bytes("reference/products.csv", b"product_id\nP1\n")
        return [o.path for o in landing.list("reference/")] + [landing.description]

    result = dg.materialize([roundtrip], resources={"landing": landing})
    paths = result.output_for_node("roundtrip")
    assert paths[0] == "reference/products.csv"
    assert AZURITE_KEY not in paths[1] and "sig=" not in paths[1]


def test_default_azure_credential_is_the_production_default(monkeypatch):
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY"):
        monkeypatch.delenv(name, raising=False)
    landing = azure_resources()["landing"]
    assert landing.credential.credential_type == "default_azure_credential"
    assert landing.blob_storage().credential.credential_type == "default_azure_credential"


def test_sensor_on_blobs_upload_reupload_stray_and_many(azurite_landing: BlobLandingZone, monkeypatch):
    z = azurite_landing
    requests, cursor = _tick(z, None)
    assert requests == []

    z.write_bytes("sales/canada/2025-03-01/store.csv", _sales("2025-03-01").replace(b"BU_US", b"BU_CA"))
    requests, cursor = _tick(z, cursor)
    assert [str(r.partition_key) for r in requests] == ["2025-03-01|canada"]
    first_key = requests[0].run_key
    assert _tick(z, cursor)[0] == []

    # identical bytes, new etag: one new run with a new run key
    z.write_bytes("sales/canada/2025-03-01/store.csv", _sales("2025-03-01").replace(b"BU_US", b"BU_CA"))
    requests, cursor = _tick(z, cursor)
    assert len(requests) == 1 and requests[0].run_key != first_key

    # stray blobs: logged once in the cursor, never a run; a stray folder outside the recent months is
    # named by the next full pass (forced here)
    z.write_bytes("sales/atlantis/2025-03-01/x.csv", b"x")
    z.write_bytes("sales/canada/yesterday/x.csv", b"x")
    z.write_bytes("sales/canada/2025-03-01/notes.txt", b"x")
    requests, cursor = _tick(z, cursor)
    assert requests == []
    assert any(p.startswith("sales/canada/2025-03-01/notes.txt") for p in json.loads(cursor)["stray"])
    monkeypatch.setattr(scan_module, "FULL_PASS_SECONDS", 0)
    requests, cursor = _tick(z, cursor)
    assert requests == []
    assert {"sales/atlantis/", "sales/canada/yesterday/"} <= set(json.loads(cursor)["stray"])

    # many blobs: 3 regions x 5 consecutive days x 4 files -> one ranged run per region
    uploads = [
        (f"sales/{region}/2025-04-{d:02d}/store_{s}.csv", _sales(f"2025-04-{d:02d}", f"T{s}"))
        for region in ("america", "canada", "mexico")
        for d in range(1, 6)
        for s in range(4)
    ]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: z.write_bytes(*item), uploads))
    requests, cursor = _tick(z, cursor)
    ranges = sorted((r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests)
    assert ranges == [(f"2025-04-01|{r}", f"2025-04-05|{r}") for r in ("america", "canada", "mexico")]
    assert _tick(z, cursor)[0] == []


def test_sensor_lists_only_new_prefixes_among_thousands_of_blobs(azurite_landing: BlobLandingZone):
    """3 regions x 84 days x 8 files = 2,016 blobs of history; a new day costs a handful of listings."""
    z = azurite_landing
    start = date(2024, 1, 1)
    days = [(start + timedelta(days=i)).isoformat() for i in range(84)]
    uploads = [
        (f"sales/{region}/{day}/store_{s}.csv", b"x")
        for region in ("america", "canada", "mexico")
        for day in days
        for s in range(8)
    ]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda item: z.write_bytes(*item), uploads))

    listed_prefixes: list[str] = []

    def list_files(prefix: str):
        listed_prefixes.append(prefix)
        return z.list(prefix)

    first = scan_sales(list_files, z.list_dirs, None)
    assert len(first.changes) == 3 * 84
    assert first.listed_objects >= 2016

    listed_prefixes.clear()
    dir_listings: list[tuple[str, int]] = []

    def list_dirs(prefix: str):
        found = z.list_dirs(prefix)
        dir_listings.append((prefix, len(found)))
        return found

    new_day = (start + timedelta(days=84)).isoformat()
    z.write_bytes(f"sales/america/{new_day}/store_0.csv", b"x")
    second = scan_sales(list_files, list_dirs, first.cursor)

    assert [(c.region, c.day) for c in second.changes] == [("america", new_day)]
    # only the still-open days (the settle window) and the new one, never the 80 settled days of each region
    assert f"sales/america/{new_day}/" in listed_prefixes
    assert len(listed_prefixes) <= 3 * 4 + 1
    # day folders are listed under recent month prefixes only (2024-03 and its neighbours), not all 84 days
    month_listings = [p for p, _ in dir_listings if p != "sales/"]
    assert all(p.rsplit("/", 1)[1].startswith("20") for p in month_listings)
    assert second.listing_calls == 1 + len(month_listings) + len(listed_prefixes)
    dirs_listed = sum(n for p, n in dir_listings if p != "sales/")
    assert dirs_listed < 3 * 40
    assert second.listed_objects - dirs_listed <= 8 * len(listed_prefixes)
    assert second.listed_objects < first.listed_objects / 4

    # the sensor itself, from the settled cursor: one run, for the new day only
    z.write_bytes(f"sales/america/{new_day}/store_1.csv", b"x")
    requests, _ = _tick(z, json.dumps(second.cursor))
    assert [str(r.partition_key) for r in requests] == [f"{new_day}|america"]

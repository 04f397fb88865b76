"""Fixtures for the production parts: Azurite (Blob) started per session, fakesnow (Snowflake) per test.

Azurite is the npm package `azurite` in the repository's `node_modules/`. It is started on a free port
with in-memory persistence; if it cannot start, the test that needs it FAILS (it is never skipped).
With pytest-xdist every worker starts its own Azurite.

The only credential here is Azurite's published development key for `devstoreaccount1`.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AZURITE_BLOB = REPO / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
FAKESNOW_TARGETS = ["dagster_snowflake_pandas.snowflake_pandas_type_handler.write_pandas"]
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Azurite:
    blob_url: str  # http://127.0.0.1:<port>/devstoreaccount1

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_url};"
        )


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}?comp=list", timeout=1)
    except urllib.error.HTTPError:
        return True  # any HTTP answer (403 without a signature) means it is listening
    except OSError:
        return False
    return True


def _start_azurite(workdir: Path) -> tuple[subprocess.Popen, Azurite, Path]:
    if not AZURITE_BLOB.exists():
        pytest.fail(f"Azurite is not installed: {AZURITE_BLOB} is missing (run `npm ci` in {REPO})")
    last_log = workdir / "azurite.log"
    for _attempt in range(3):  # a free port can be taken between probing and binding
        port = _free_port()
        log = workdir / f"azurite-{port}.log"
        last_log = log
        cmd = [
            str(AZURITE_BLOB),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(port),
            "--inMemoryPersistence",
            "--extentMemoryLimit", "512",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        azurite = Azurite(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers(azurite.blob_url):
                return proc, azurite, log
            time.sleep(0.1)
        _stop(proc)
    pytest.fail(
        f"Azurite did not start within {START_TIMEOUT_S:.0f}s: {last_log.read_text(errors='replace')[-2000:]}"
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's Blob service on a free port, in memory; stopped at the end of the session (per xdist worker)."""
    proc, emulator, _log = _start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield emulator
    finally:
        _stop(proc)


def blob_landing_for(azurite: Azurite, container: str):
    """The production path: `AzureBlobStorageResource` config with an account URL and a shared key."""
    from dagster_azure.blob import AzureBlobStorageKeyCredential

    from globolatte_dagster.resources.blob_landing import BlobLandingZone

    return BlobLandingZone(
        container=container,
        account_url=azurite.blob_url,
        credential=AzureBlobStorageKeyCredential(key=AZURITE_KEY),
    )


@pytest.fixture
def azurite_container(azurite: Azurite) -> Iterator[str]:
    """A fresh, empty container for one test, deleted afterwards."""
    from azure.storage.blob import BlobServiceClient

    name = f"landing-{uuid.uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.create_container(name)
        try:
            yield name
        finally:
            service.delete_container(name)


@pytest.fixture
def azurite_landing(azurite: Azurite, azurite_container: str):
    """An empty landing zone in Azurite (the `landing` fixture's "azurite" kind)."""
    zone = blob_landing_for(azurite, azurite_container)
    try:
        yield zone
    finally:
        zone.close()


@pytest.fixture
def snowflake_private_key() -> str:
    """A key pair made for this test (key-pair authentication is parsed for real by SnowflakeResource)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def fake_snowflake(monkeypatch: pytest.MonkeyPatch, snowflake_private_key: str) -> Iterator[None]:
    """In-process fakesnow, and the SNOWFLAKE_* variables that `azure_resources()` reads."""
    import fakesnow

    for name, value in {
        "SNOWFLAKE_ACCOUNT": "fakesnow",
        "SNOWFLAKE_USER": "globolatte_svc",
        "SNOWFLAKE_ROLE": "TRANSFORMER",
        "SNOWFLAKE_WAREHOUSE": "TRANSFORM_WH",
        "SNOWFLAKE_DATABASE": "GLOBOLATTE",
        "SNOWFLAKE_PRIVATE_KEY": snowflake_private_key,
        "GLOBOLATTE_HASH_KEY": "test-key-not-a-secret",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with fakesnow.patch(extra_targets=FAKESNOW_TARGETS):
        yield


@pytest.fixture
def azure_env(
    monkeypatch: pytest.MonkeyPatch, azurite: Azurite, azurite_container: str, fake_snowflake
) -> str:
    """Every variable of GLOBOLATTE_ENV=azure, pointing at Azurite and fakesnow. Returns the container."""
    monkeypatch.setenv("GLOBOLATTE_ENV", "azure")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", azurite.blob_url)
    monkeypatch.setenv("AZURE_STORAGE_CONTAINER", azurite_container)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return azurite_container


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that run on the Azurite landing zone (via the `landing` fixture) are `azure` tests too."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("landing") == "azurite":
            item.add_marker(pytest.mark.azure)

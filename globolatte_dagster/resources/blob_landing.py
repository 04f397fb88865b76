"""The landing zone on Azure Blob Storage, through `dagster_azure.blob.AzureBlobStorageResource`.

Production authenticates with `DefaultAzureCredential`, a SAS token or an account key (all handled by the
Dagster resource). A connection string is accepted too, for Azurite only: `AzureBlobStorageResource`
cannot take one, so that one case builds its client with `BlobServiceClient.from_connection_string`.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack, suppress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobPrefix, BlobServiceClient, ContainerClient
from dagster_azure.blob import (
    AzureBlobStorageAnonymousCredential,
    AzureBlobStorageDefaultCredential,
    AzureBlobStorageKeyCredential,
    AzureBlobStorageResource,
    AzureBlobStorageSASTokenCredential,
)
from pydantic import Field, PrivateAttr

from globolatte_dagster.resources.landing import LandingObject, LandingZone

BlobCredential = (
    AzureBlobStorageKeyCredential
    | AzureBlobStorageSASTokenCredential
    | AzureBlobStorageDefaultCredential
    | AzureBlobStorageAnonymousCredential
)


class BlobLandingZone(LandingZone):
    """An Azure Blob container: `sales/<region>/<day>/*.csv`, `weather/...`, `reference/...`."""

    container: str = "landing"
    # Production: the config of a `dagster_azure.blob.AzureBlobStorageResource`. It is built per client
    # rather than nested as a resource: a nested resource makes this a context-manager resource, which
    # sensors built with `dg.build_sensor_context(resources=...)` cannot use outside a `with` block.
    account_url: str | None = None
    credential: BlobCredential = Field(
        default_factory=AzureBlobStorageDefaultCredential, discriminator="credential_type"
    )
    connection_string: str | None = None  # Azurite only (AZURE_STORAGE_CONNECTION_STRING)

    _stack: ExitStack | None = PrivateAttr(default=None)
    _client: ContainerClient | None = PrivateAttr(default=None)

    # ---- client -------------------------------------------------------------------------------------
    def _container(self) -> ContainerClient:
        with _CLIENT_LOCK:  # threads sharing this resource must share one client, not race to build two
            return self._container_unlocked()

    def _container_unlocked(self) -> ContainerClient:
        if self._client is None:
            if not self.account_url and not self.connection_string:
                raise ValueError(
                    "BlobLandingZone needs `account_url` (AZURE_STORAGE_ACCOUNT_URL) or `connection_string`"
                )
            # Resolves `dg.EnvVar`s also when the resource is used outside a run (the CLI summary).
            resolved = self.process_config_and_initialize()
            stack = ExitStack()
            if resolved.connection_string:
                service = stack.enter_context(
                    BlobServiceClient.from_connection_string(resolved.connection_string)
                )
            else:
                service = stack.enter_context(resolved.blob_storage().get_client())
            self._stack = stack
            self._client = service.get_container_client(self.container)
        return self._client

    # No `teardown_after_execution`: it would make this a generator resource, which sensors built with
    # `dg.build_sensor_context(resources=...)` cannot use outside a `with` block. The cached client is
    # released with the resource instance (each run and sensor tick builds its own), or by `close()`.
    def blob_storage(self) -> AzureBlobStorageResource:
        return AzureBlobStorageResource(account_url=self.account_url, credential=self.credential)

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._client = None, None

    def create_container(self) -> None:
        """Create the container if it does not exist (tests and `make dev` against Azurite)."""
        with suppress(ResourceExistsError):
            self._container().create_container()

    # ---- LandingZone --------------------------------------------------------------------------------
    @property
    def description(self) -> str:
        # The URL without its query string: a SAS token must never reach a log line or the UI.
        if self.account_url and not self.connection_string:
            url = self.account_url
        else:
            url = self._container().primary_endpoint
            url = url.rsplit("/", 1)[0] if url.endswith(f"/{self.container}") else url
        parts = urlsplit(url)
        return f"Azure Blob container {self.container} at {urlunsplit((*parts[:3], '', ''))}"

    def list(self, prefix: str = "") -> list[LandingObject]:
        out = [
            LandingObject(blob.name, int(blob.size), _etag(blob))
            for blob in self._container().list_blobs(name_starts_with=prefix or None)
            if not blob.name.rsplit("/", 1)[-1].startswith(".")
        ]
        out.sort(key=lambda o: o.path)
        return out

    def list_dirs(self, prefix: str) -> list[str]:
        items = self._container().walk_blobs(name_starts_with=prefix or None, delimiter="/")
        return sorted(item.name for item in items if isinstance(item, BlobPrefix))

    def read_bytes(self, path: str) -> bytes:
        return self._container().download_blob(path).readall()

    def read_stream(self, path: str):
        """The blob as an iterator of chunks, for files too large to hold in memory."""
        return self._container().download_blob(path).chunks()

    def write_bytes(self, path: str, data: bytes) -> None:
        self._container().upload_blob(path, data, overwrite=True)


_CLIENT_LOCK = threading.Lock()


def _etag(blob: Any) -> str:
    return str(blob.etag).strip('"')

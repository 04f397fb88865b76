"""Alias writes of the Azure ML registry under a lock: an Azure Blob lease.

Azure ML model tags have no ETag in `azure-ai-ml`, so moving an alias (tag the new holder, untag the
others) is a read-modify-write that concurrent runs could interleave. `BlobLeaseLock` serialises them
with a lease on one blob per region (`globolatte/registry-locks/<name>.lock`) in the workspace's default
blob datastore, where the platform's identity already writes model uploads. A lease is exclusive,
expires by itself if its holder dies (`lease_seconds`, 15-60 s), and is renewed while held.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError

LOCK_PREFIX = "globolatte/registry-locks"


class LockTimeout(TimeoutError):
    """Another writer held the lock for longer than we may wait."""


class BlobLeaseLock:
    """Exclusive locks by name, each held as a lease on a blob of `container` (an azure-storage-blob
    `ContainerClient`)."""

    def __init__(
        self,
        container: Any,
        prefix: str = LOCK_PREFIX,
        lease_seconds: int = 30,
        wait_seconds: float = 180.0,
        poll_seconds: float = 0.25,
    ) -> None:
        if not 15 <= lease_seconds <= 60:
            raise ValueError(f"a blob lease lasts 15 to 60 seconds, not {lease_seconds}")
        self.container = container
        self.prefix = prefix.strip("/")
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        blob = self.container.get_blob_client(f"{self.prefix}/{name}.lock")
        with contextlib.suppress(ResourceExistsError):
            blob.upload_blob(b"", overwrite=False)
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                lease = blob.acquire_lease(lease_duration=self.lease_seconds)
                break
            except HttpResponseError as exc:
                if exc.status_code not in (409, 412) or time.monotonic() > deadline:
                    if exc.status_code in (409, 412):
                        raise LockTimeout(
                            f"the registry lock {name} stayed held for {self.wait_seconds:.0f}s"
                        ) from exc
                    raise
                time.sleep(self.poll_seconds)
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease_seconds / 3):
                with contextlib.suppress(HttpResponseError):
                    lease.renew()

        renewer = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            with contextlib.suppress(HttpResponseError):
                lease.release()


def datastore_account_url(datastore: Any) -> str:
    """`https://<account>.blob.<endpoint>` of an Azure ML `AzureBlobDatastore`."""
    protocol = getattr(datastore, "protocol", None) or "https"
    endpoint = getattr(datastore, "endpoint", None) or "core.windows.net"
    return f"{protocol}://{datastore.account_name}.blob.{endpoint}"


def workspace_lease_lock(ml_client: Any, credential: Any) -> BlobLeaseLock:
    """A `BlobLeaseLock` in the workspace's default blob datastore, reached with `credential`."""
    from azure.storage.blob import BlobServiceClient

    datastore = ml_client.datastores.get_default()
    service = BlobServiceClient(datastore_account_url(datastore), credential=credential)
    return BlobLeaseLock(service.get_container_client(datastore.container_name))

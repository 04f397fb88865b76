"""Python objects between assets (trained models) in a blob container: the `azure` model_io_manager.

Locally `dg.FilesystemIOManager` does this job. Keys are `<asset path>/<partition>.pickle`; the registry,
not this store, keeps the versions that matter. Artefacts have their own store interface (`ArtefactStore`):
the landing zone's contract (sales, weather and reference files) is not theirs.
"""

from __future__ import annotations

import pickle

import dagster as dg

from globolatte_dagster.resources.blob_landing import BlobLandingZone


class ArtefactStore(dg.ConfigurableResource):
    """Bytes by path for the model_io_manager: write, read, and whether a path is there."""

    @property
    def description(self) -> str:
        raise NotImplementedError

    def write_bytes(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    def read_bytes(self, path: str) -> bytes:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError


class BlobArtefactStore(ArtefactStore):
    """An Azure Blob container of artefacts, reached with the same credentials as the landing zone."""

    blob: BlobLandingZone  # the container's client and credentials (not its landing-file contract)

    @property
    def description(self) -> str:
        return self.blob.description

    def write_bytes(self, path: str, data: bytes) -> None:
        self.blob.write_bytes(path, data)

    def read_bytes(self, path: str) -> bytes:
        return self.blob.read_bytes(path)

    def exists(self, path: str) -> bool:
        return self.blob.exists(path)


class BlobPickleIOManager(dg.ConfigurableIOManager):
    """Pickles outputs into an `ArtefactStore` (a blob container in the `azure` environment)."""

    store: ArtefactStore

    def _path(self, context: dg.OutputContext | dg.InputContext) -> str:
        key = "/".join(context.asset_key.path)
        partition = context.asset_partition_key if context.has_asset_partitions else "__all__"
        return f"{key}/{partition}.pickle"

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        path = self._path(context)
        self.store.write_bytes(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        context.add_output_metadata({"path": f"{self.store.description}/{path}"})

    def load_input(self, context: dg.InputContext) -> object:
        path = self._path(context)
        if not self.store.exists(path):
            raise FileNotFoundError(
                f"{path} is not in {self.store.description}: materialise {context.asset_key.to_user_string()} first"
            )
        return pickle.loads(self.store.read_bytes(path))

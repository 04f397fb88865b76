"""Python objects between assets (trained models) in a blob container: the `azure` model_io_manager.

Locally `dg.FilesystemIOManager` does this job. Keys are `<asset path>/<partition>.pickle`; the registry,
not this store, keeps the versions that matter.
"""

from __future__ import annotations

import pickle

import dagster as dg

from globolatte_dagster.resources.landing import LandingZone


class BlobPickleIOManager(dg.ConfigurableIOManager):
    """Pickles outputs into a blob container (any `LandingZone` implementation pointed at it)."""

    store: LandingZone

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

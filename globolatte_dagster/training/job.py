"""The training entry point as a process: `python -m globolatte_dagster.training.job --inputs IN --outputs OUT`.

It reads a training folder (`folder.py`), runs the tournament (`folder.train`, which calls
`tournament.train_region`), writes the model and the tables to OUT, and reports through Dagster Pipes:
the training log as Pipes log lines, then one asset materialisation whose metadata holds the champion,
the hit rates, the timings, the artefact's path and where it ran. Launched by Dagster it talks Pipes:

- as a subprocess of the run (`dg.PipesSubprocessClient`): Pipes' default channel (temporary files);
- as an Azure ML command job (`PipesAzureMLClient`): `--pipes-blob-url https://<account>.blob.core.windows.net`
  names the storage account whose container (given in the Pipes parameters) carries the context and the
  messages; the job authenticates as the compute cluster's managed identity (`AZURE_CLIENT_ID`), or with
  `AZURE_STORAGE_CONNECTION_STRING` against Azurite in the tests.

Run by hand (no Dagster), it trains and writes OUT all the same, and Pipes calls are no-ops.

Data that cannot train a model (no sales in the history, say) is not a crash: the job reports
`{"error": ...}` as a Pipes custom message, writes no model and exits 0, and the asset fails the step with
that message. Anything else raises: the process exits non-zero and Pipes reports the exception.

Imports `dagster_pipes` only, never `dagster` (a test checks it): the job's environment need not hold
Dagster.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster_pipes import PipesContext, open_dagster_pipes

from globolatte_dagster import settings

ERROR_KEY = "error"


def _blob_channel(account_url: str) -> dict[str, Any]:
    """Context loader and message writer over Azure Blob Storage (the Azure ML path)."""
    from azure.storage.blob import BlobServiceClient
    from dagster_pipes import PipesAzureBlobStorageContextLoader, PipesAzureBlobStorageMessageWriter

    # Azurite only (the tests): a connection string. In Azure ML: the cluster's managed identity.
    connection_string = settings.training_storage_connection_string()
    if connection_string:
        client = BlobServiceClient.from_connection_string(connection_string)
    else:
        from azure.identity import DefaultAzureCredential

        client = BlobServiceClient(account_url, credential=DefaultAzureCredential())
    return {
        "context_loader": PipesAzureBlobStorageContextLoader(client=client),
        "message_writer": PipesAzureBlobStorageMessageWriter(client=client),
    }


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(inputs: Path, outputs: Path, pipes: PipesContext) -> int:
    t0 = time.perf_counter()
    # imported here, so that the report says how long loading pandas, pyarrow and scikit-learn took
    from globolatte_dagster.training.folder import read_inputs, train, write_outputs

    import_s = time.perf_counter() - t0
    request = read_inputs(inputs)
    load_s = time.perf_counter() - t0 - import_s
    pipes.log.info(
        f"{request.region}: training on {len(request.frames.lines):,} purchase lines "
        f"({platform.node()}, Python {platform.python_version()})"
    )
    try:
        result = train(request, log=pipes.log.info)
    except ValueError as exc:  # the data cannot train a model: a clear message, not a crash
        pipes.report_custom_message({ERROR_KEY: str(exc)})
        pipes.log.error(f"{request.region}: {exc}")
        return 0
    t = time.perf_counter()
    artefact = write_outputs(outputs, result)
    m = result.metrics
    metadata: dict[str, Any] = {
        "champion": m["champion"],
        "discover_champion": m["discover_champion"],
        "artefact": {"raw_value": str(artefact), "type": "path"},
        "training_host": platform.node(),
        "training_peak_rss_mb": {"raw_value": _peak_rss_mb(), "type": "float"},
        "training_process_s": {
            "raw_value": {
                "imports": round(import_s, 2),
                "read_inputs": round(load_s, 2),
                "train": result.timings.get("total_s"),
                "write_outputs": round(time.perf_counter() - t, 2),
                "total": round(time.perf_counter() - t0, 2),
            },
            "type": "json",
        },
    }
    for key in ("hit_rate_at_3", "discover_hit_rate_at_3"):
        if key in m:
            metadata[key] = {"raw_value": round(float(m[key]), 4), "type": "float"}
    pipes.report_asset_materialization(metadata=metadata)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m globolatte_dagster.training.job", description=__doc__)
    parser.add_argument("--inputs", required=True, type=Path, help="training input folder")
    parser.add_argument("--outputs", required=True, type=Path, help="folder the model and tables go to")
    parser.add_argument("--pipes-blob-url", default="", help="Pipes over Azure Blob Storage (Azure ML)")
    args = parser.parse_args(argv)
    channel = _blob_channel(args.pipes_blob_url) if args.pipes_blob_url else {}
    with open_dagster_pipes(**channel) as pipes:
        return run(args.inputs, args.outputs, pipes)


if __name__ == "__main__":
    sys.exit(main())

"""Write deploy/azureml/training-conda.yml from the code's training environment (`training_conda()`).

    .venv/bin/python deploy/tools/training_conda.py

The training environment is the serving environment's pins (resources/endpoint.py SERVING_CONDA, kept
equal to deploy/azureml/conda.yml and deploy/constraints.txt) without the inference server, plus the job's
own libraries (JOB_LIBRARIES). Run this after the serving pins change; the tests compare the file with the
code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from globolatte_dagster.resources.training_azureml import training_conda  # noqa: E402

TARGET = REPO_ROOT / "deploy" / "azureml" / "training-conda.yml"
HEADER = """\
# Training environment of deploy/azureml/training-job.yml (and of every job AzureMLModelTraining submits):
# the serving pins of conda.yml without the inference server, plus what the job itself needs (dagster-pipes
# at the orchestrator's release, the Blob client it reports through). Generated from
# resources/training_azureml.py (training_conda) by deploy/tools/training_conda.py; do not edit by hand.
"""


def main() -> int:
    TARGET.write_text(HEADER + yaml.safe_dump(training_conda(), sort_keys=False), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

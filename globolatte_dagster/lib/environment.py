"""One environment from training to serving: the library versions a model was trained with.

`training_environment()` is recorded in every registered version's lineage (`lineage["environment"]`,
by `lib.model_store` and the Azure ML registry), whatever the model object is. `compatibility_problem()`
compares a recorded environment with the running one; `score.py` refuses a bundle it cannot unpickle
faithfully: another scikit-learn major.minor (scikit-learn supports unpickling only with the version that
pickled), another numpy major, or another Python minor. `load_artefact()` adds scikit-learn's own
check for artefacts registered before environments were recorded.

The serving environments pin the same versions from one file, `deploy/constraints.txt`, written from
the training environment by `python deploy/tools/pins.py` (a test keeps conda.yml, the Dockerfile and
the Azure ML deployment in agreement with it). No Dagster here.
"""

from __future__ import annotations

import platform
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

# The libraries a pickled model and score.py depend on (distribution names), pinned for serving.
SERVING_LIBRARIES: tuple[str, ...] = (
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "joblib",
    "threadpoolctl",
    "holidays",
    "pyarrow",
    "azureml-inference-server-http",
)
RECORDED = ("python", "scikit-learn", "numpy", "scipy", "pandas", "joblib", "holidays")


class IncompatibleEnvironment(RuntimeError):
    """A model artefact was trained with libraries the serving environment cannot load faithfully."""


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def training_environment() -> dict[str, str | None]:
    """The versions this process runs with: Python and the libraries a model artefact depends on."""
    return {"python": platform.python_version(), **{name: installed(name) for name in RECORDED[1:]}}


def with_environment(lineage: dict[str, Any], model: Any = None) -> dict[str, Any]:
    """`lineage` with an `environment` entry: the model's own record if it carries one, else this process's."""
    if lineage.get("environment"):
        return lineage
    own = getattr(model, "environment", None)
    return {**lineage, "environment": dict(own) if isinstance(own, dict) else training_environment()}


def _release(version: str | None, parts: int) -> tuple[int, ...] | None:
    if not version:
        return None
    numbers = []
    for piece in version.split(".")[:parts]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            return None
        numbers.append(int(digits))
    return tuple(numbers)


# (library, how many leading version parts must agree)
_MUST_MATCH = (("scikit-learn", 2), ("numpy", 1), ("python", 2))


def compatibility_problem(
    recorded: dict[str, Any] | None, running: dict[str, Any] | None = None
) -> str | None:
    """Why an artefact trained in `recorded` cannot be served in `running` (default: this process)."""
    if not recorded:
        return None
    running = running or training_environment()
    problems = []
    for name, parts in _MUST_MATCH:
        want, have = _release(recorded.get(name), parts), _release(running.get(name), parts)
        if want is not None and have is not None and want != have:
            problems.append(f"{name} {recorded.get(name)} (serving has {running.get(name)})")
    if not problems:
        return None
    return (
        "the model was trained with "
        + ", ".join(problems)
        + ": its pickle cannot be loaded faithfully here. "
        "Serve it from an environment built from deploy/constraints.txt, or retrain it in this one"
    )


def check_artefact_folder(folder: str | Path) -> None:
    """Raise IncompatibleEnvironment if `folder/lineage.json` records an environment this one cannot serve."""
    import json

    lineage_file = Path(folder) / "lineage.json"
    if not lineage_file.exists():
        return
    try:
        recorded = json.loads(lineage_file.read_text()).get("environment")
    except (OSError, ValueError, AttributeError):
        return
    problem = compatibility_problem(recorded)
    if problem:
        raise IncompatibleEnvironment(f"{Path(folder).name}: {problem}")


def load_artefact(path: str | Path) -> Any:
    """joblib.load, refusing an artefact that scikit-learn reports as pickled by another major.minor."""
    import joblib

    check_artefact_folder(Path(path).parent)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = joblib.load(path)
    for warning in caught:
        original = getattr(warning.message, "original_sklearn_version", None)
        current = getattr(warning.message, "current_sklearn_version", None)
        if original and current and _release(original, 2) != _release(current, 2):
            raise IncompatibleEnvironment(
                f"{Path(path).parent.name}: the model was pickled by scikit-learn {original}, serving has "
                f"{current}: retrain it or serve it from an environment built from deploy/constraints.txt"
            )
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return obj

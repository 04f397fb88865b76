"""The GloboLatte code location: every asset, check and sensor under defs/, plus the environment's resources."""

from pathlib import Path

import dagster as dg

from globolatte_dagster.resources import environment_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        environment_definitions(),
    )

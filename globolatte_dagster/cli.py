"""The `globolatte` console command: simulate, run, serve."""

from __future__ import annotations

import sys

import click

from globolatte_dagster.serving.cli import serve
from globolatte_dagster.simulate.cli import simulate


@click.group()
def main() -> None:
    """GloboLatte data and ML platform."""


main.add_command(simulate)
main.add_command(serve)


@main.command()
def run() -> None:
    """Materialise every landed partition not yet loaded, then everything downstream, through Dagster."""
    import dagster as dg

    from globolatte_dagster import settings
    from globolatte_dagster.definitions import defs
    from globolatte_dagster.runner import print_summary, run_everything

    home = settings.home()
    _default_dagster_home(home)
    click.echo(f"GLOBOLATTE_ENV={settings.env()}  GLOBOLATTE_HOME={home}  landing={settings.landing_dir()}")
    with dg.DagsterInstance.get() as instance:
        definitions = defs()
        summary = run_everything(definitions, instance, echo=click.echo)
        print_summary(summary, instance, definitions.resources["warehouse"], echo=click.echo)
    sys.exit(0 if summary.success else 1)


def _default_dagster_home(home) -> None:
    """Runs are recorded where `make dev` keeps its instance, unless DAGSTER_HOME says otherwise."""
    import shutil
    from pathlib import Path

    from globolatte_dagster import settings

    if settings.dagster_home_is_set():
        return
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    template = Path(__file__).resolve().parent.parent / "deploy" / "local" / "dagster.yaml"
    if not (dagster_home / "dagster.yaml").exists() and template.exists():
        shutil.copy(template, dagster_home / "dagster.yaml")
    settings.use_dagster_home(dagster_home)


if __name__ == "__main__":
    main()

"""The `globolatte` console command: simulate, run, serve."""

from __future__ import annotations

import click

from globolatte_dagster.simulate.cli import simulate


@click.group()
def main() -> None:
    """GloboLatte data and ML platform."""


main.add_command(simulate)

if __name__ == "__main__":
    main()

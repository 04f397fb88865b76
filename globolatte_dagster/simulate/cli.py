"""`globolatte simulate`: write simulated landing files, once or live (one new day every few seconds)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import click

from globolatte_dagster import settings

from .generator import SimConfig, Simulator, last_sales_day, load_config
from .generator import simulate as run_simulation
from .personas import DAYTYPES


@click.command("simulate")
@click.option(
    "--landing",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Landing folder (default: $GLOBOLATTE_LANDING or $GLOBOLATTE_HOME/landing).",
)
@click.option(
    "--truth",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Ground-truth folder, outside the landing folder (default: $GLOBOLATTE_HOME/simulator).",
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2025-01-01",
    show_default=True,
    help="First sales day.",
)
@click.option(
    "--days", type=click.IntRange(min=0), default=120, show_default=True, help="Number of sales days."
)
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Loyalty customers per region.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed (same seed, same files).")
@click.option(
    "--broken-share",
    type=click.FloatRange(0.0, 0.5, max_open=True),
    default=0.005,
    show_default=True,
    help="Share of sales rows deliberately broken.",
)
@click.option(
    "--forecast-days",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Weather forecast files after the last sales day.",
)
@click.option("--if-empty", is_flag=True, help="Do nothing if the landing folder already has sales files.")
@click.option("--live", is_flag=True, help="Then write one new day every --interval seconds until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.0),
    default=10.0,
    show_default=True,
    help="Seconds between live days.",
)
@click.option(
    "--max-live-days",
    type=click.IntRange(min=1),
    default=None,
    hidden=True,
    help="Stop live mode after this many days (for tests).",
)
def simulate(
    landing: Path | None,
    truth: Path | None,
    start: datetime,
    days: int,
    customers: int,
    seed: int,
    broken_share: float,
    forecast_days: int,
    if_empty: bool,
    live: bool,
    interval: float,
    max_live_days: int | None,
) -> None:
    """Write simulated GloboLatte landing files: sales, weather, reference, and a ground truth."""
    landing = (landing or settings.landing_dir()).resolve()
    truth = (truth or settings.home() / "simulator").resolve()
    config = SimConfig(seed, start.date(), customers, broken_share, forecast_days)
    existing = last_sales_day(landing)
    if existing is not None and if_empty:
        click.echo(f"{landing} already has sales files (last day {existing}); nothing to do.")
    else:
        click.echo(f"Simulating {days} days from {config.start} into {landing} ...")
        summary = run_simulation(
            landing, truth, config.start, days, customers, seed, broken_share, forecast_days, progress=True
        )
        click.echo(str(summary))
    if live:
        _live(landing, truth, config, interval, max_live_days)


def _live(landing: Path, truth: Path, config: SimConfig, interval: float, max_days: int | None) -> None:
    earlier = load_config(truth)
    if earlier is not None:
        # Continue the same world: population and effects come from the earlier run's parameters.
        config = replace(earlier, forecast_days=config.forecast_days)
    last = last_sales_day(landing)
    day: date = last + timedelta(days=1) if last is not None else config.start
    if day < config.start:
        day = config.start
    sim = Simulator(config)
    if not (landing / "reference" / "customers.csv").exists():
        sim.write_reference(landing)
    click.echo(f"Live: one new day every {interval:g}s from {day} (seed {config.seed}); Ctrl-C to stop.")
    written = 0
    try:
        while max_days is None or written < max_days:
            t0 = time.perf_counter()
            results = sim.write_day(landing, truth, day)
            parts = []
            for r in results:
                wx = sim.weather[r.region].observed(day)
                kind = DAYTYPES[sim.daytype(r.region, day)]
                parts.append(
                    f"{r.region} ({kind}) {r.rows:,} rows/{len(r.files)} file(s), {len(r.broken)} broken, "
                    f"{wx.temp_max_c:.1f}°C {wx.precip_mm:.1f}mm"
                )
            click.echo(f"{day}: " + "; ".join(parts) + f" ({time.perf_counter() - t0:.1f}s)", nl=True)
            written += 1
            day += timedelta(days=1)
            if max_days is None or written < max_days:
                time.sleep(interval)
    except KeyboardInterrupt:
        click.echo(f"Stopped after {written} live day(s).")

"""`globolatte simulate`: write simulated landing files, once or live (one new day every few seconds)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import click

from globolatte_dagster import settings
from globolatte_dagster.lib.contract import REGION_KEYS

from .generator import SimConfig, Simulator, last_sales_day, load_config
from .generator import simulate as run_simulation
from .personas import DAYTYPES
from .profiles import DEFAULT_PROFILE, PROFILES, SCENARIO_KINDS, Scenario


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
    "--profile",
    type=click.Choice(list(PROFILES)),
    default=DEFAULT_PROFILE,
    show_default=True,
    help="Kind of world: friendly (clean effects), realistic (not the model's friend), export (one unit, 2019).",
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First sales day [default: the profile's, 2025-01-01 (export: 2019-04-01)].",
)
@click.option(
    "--days",
    type=click.IntRange(min=0),
    default=None,
    help="Number of sales days [default: the profile's, 120 (export: 30)].",
)
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=None,
    help="Loyalty customers per region [default: 2000].",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed (same seed, same files).")
@click.option(
    "--scenario",
    type=click.Choice(list(SCENARIO_KINDS)),
    default=None,
    help="A change in the world from --scenario-from on.",
)
@click.option(
    "--scenario-from",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First day of the scenario [default: halfway through the period].",
)
@click.option(
    "--scenario-region",
    type=click.Choice(list(REGION_KEYS)),
    default=None,
    help="unit-outage: the business unit that stops uploading [default: the last simulated region].",
)
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
@click.option(
    "--live",
    is_flag=True,
    help="Then write one new day every --interval seconds until Ctrl-C. A landing folder that already has "
    "sales is never re-seeded: live mode continues its world (from the ground truth) after its last day.",
)
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
    profile: str,
    start: datetime | None,
    days: int | None,
    customers: int | None,
    seed: int,
    scenario: str | None,
    scenario_from: datetime | None,
    scenario_region: str | None,
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
    chosen = PROFILES[profile]
    first = start.date() if start else chosen.start_date
    n_days = chosen.days if days is None else days
    n_customers = customers or chosen.customers
    if scenario_region is not None and scenario != "unit-outage":
        raise click.UsageError("--scenario-region is only used with --scenario unit-outage")
    if scenario_from is not None and scenario is None:
        raise click.UsageError("--scenario-from needs --scenario")
    plan = None
    if scenario is not None:
        plan_day = scenario_from.date() if scenario_from else first + timedelta(days=n_days // 2)
        plan = Scenario(scenario, plan_day, scenario_region)
    try:
        config = SimConfig(
            seed, first, n_customers, broken_share, forecast_days, None, chosen, max(n_days, 1), plan
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    existing = last_sales_day(landing)
    if existing is not None and (if_empty or live):
        then = "live mode continues after it" if live else "nothing to do"
        click.echo(f"{landing} already has sales files (last day {existing}); not re-seeding it, {then}.")
    else:
        world = f"profile {profile}" + (f", scenario {scenario} from {plan.day}" if plan else "")
        click.echo(f"Simulating {n_days} days from {first} ({world}) into {landing} ...")
        summary = run_simulation(
            landing,
            truth,
            first,
            n_days,
            n_customers,
            seed,
            broken_share,
            forecast_days,
            progress=True,
            profile=chosen,
            scenario=plan,
        )
        click.echo(str(summary))
    if live:
        _live(landing, truth, config, interval, max_live_days)


def _live(landing: Path, truth: Path, config: SimConfig, interval: float, max_days: int | None) -> None:
    earlier = load_config(truth)
    if earlier is not None:
        # Continue the same world: population, profile, scenario and horizon from the earlier run.
        config = replace(earlier, forecast_days=config.forecast_days)
    last = last_sales_day(landing)
    day: date = last + timedelta(days=1) if last is not None else config.start
    if day < config.start:
        day = config.start
    sim = Simulator(config)
    scenario = config.scenario
    world = f"profile {sim.profile.name}" + (
        f", scenario {scenario.kind} from {scenario.day}" if scenario else ""
    )
    click.echo(
        f"Live: one new day every {interval:g}s from {day} (seed {config.seed}, {world}); Ctrl-C to stop."
    )
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
            text = "; ".join(parts) if parts else "no unit uploads"
            click.echo(f"{day}: {text} ({time.perf_counter() - t0:.1f}s)", nl=True)
            written += 1
            day += timedelta(days=1)
            if max_days is None or written < max_days:
                time.sleep(interval)
    except KeyboardInterrupt:
        click.echo(f"Stopped after {written} live day(s).")

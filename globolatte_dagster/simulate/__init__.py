"""The GloboLatte simulator: landing files with planted personas, weather and holiday effects."""

from .generator import (
    BROKEN_COLUMNS,
    BROKEN_KINDS,
    DaySales,
    SimConfig,
    SimulationSummary,
    Simulator,
    has_sales,
    last_sales_day,
    load_config,
    simulate,
    write_day,
)
from .profiles import PROFILES, SCENARIO_KINDS, Profile, Scenario

__all__ = [
    "BROKEN_COLUMNS",
    "BROKEN_KINDS",
    "PROFILES",
    "SCENARIO_KINDS",
    "DaySales",
    "Profile",
    "Scenario",
    "SimConfig",
    "SimulationSummary",
    "Simulator",
    "has_sales",
    "last_sales_day",
    "load_config",
    "simulate",
    "write_day",
]

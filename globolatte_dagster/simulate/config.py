"""The simulator's configuration: seed, period, population size, profile, scenario and horizon.

It is written to the ground truth's parameters.json and read back by `load_config`, so that live mode
continues the same world.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from globolatte_dagster.lib.contract import REGIONS

from .profiles import DEFAULT_PROFILE, Profile, Scenario, get_profile
from .truth import read_parameters


@dataclass(frozen=True)
class SimConfig:
    seed: int
    start: date
    customers: int
    broken_share: float = 0.005
    forecast_days: int = 3
    regions: tuple[str, ...] | None = None  # None: the profile's regions
    profile: Profile | str = DEFAULT_PROFILE
    horizon_days: int | None = None  # the seeded period (long-tail rates, launch day); None: profile.days
    # (kept only for profiles that use it)
    scenario: Scenario | None = None

    def __post_init__(self) -> None:
        if isinstance(self.profile, str):
            object.__setattr__(self, "profile", get_profile(self.profile))
        if self.regions is None:
            object.__setattr__(self, "regions", self.profile_.regions)
        object.__setattr__(self, "regions", tuple(self.regions))
        unknown = [r for r in self.regions if r not in REGIONS]
        if unknown:
            raise ValueError(f"unknown regions {unknown} (known: {', '.join(REGIONS)})")
        if not 0.0 <= self.broken_share < 0.5:
            raise ValueError("broken_share must be in [0, 0.5)")
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        if self.horizon_days is not None and self.horizon_days < 1:
            raise ValueError("horizon_days must be at least 1")
        if not self.profile_.uses_horizon:
            object.__setattr__(self, "horizon_days", None)  # the same world whatever the period
        s = self.scenario
        if s is not None and s.region is not None and s.region not in self.regions:
            raise ValueError(
                f"scenario region '{s.region}' is not simulated (regions: {', '.join(self.regions)})"
            )

    @property
    def profile_(self) -> Profile:
        assert isinstance(self.profile, Profile)
        return self.profile

    @property
    def horizon(self) -> int:
        return self.horizon_days or self.profile_.days

    @property
    def outage_region(self) -> str | None:
        s = self.scenario
        if s is None or s.kind != "unit-outage":
            return None
        return s.region or self.regions[-1]


def load_config(truth: Path) -> SimConfig | None:
    """The configuration of an earlier run, from its parameters.json (None if there is none)."""
    p = read_parameters(truth)
    if p is None:
        return None
    profile = Profile.from_dict(p["profile"]) if "profile" in p else get_profile(DEFAULT_PROFILE)
    return SimConfig(
        seed=int(p["seed"]),
        start=date.fromisoformat(p["start"]),
        customers=int(p["customers"]),
        broken_share=float(p["broken_share"]),
        forecast_days=int(p["forecast_days"]),
        regions=tuple(p["regions"]),
        profile=profile,
        horizon_days=p.get("horizon_days"),
        scenario=Scenario.from_dict(p.get("scenario")),
    )

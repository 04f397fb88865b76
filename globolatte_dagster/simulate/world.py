"""One region's world: its population, menu, visit model, launches and price changes, and what a day
of it looks like (`RegionWorld.day`), from a profile and an optional scenario."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from .catalogue import LAUNCH_ITEMS, Catalogue
from .population import (
    Population,
    VisitModel,
    adoption_days,
    affinity_matrix,
    build_population,
    shift_tastes,
    visit_model,
)
from .profiles import (
    ADOPTION_DELAY_MEAN_DAYS,
    NEW_PRODUCT,
    NEW_PRODUCT_ADOPTERS,
    NEW_PRODUCT_CHOICE,
    PRICE_CHANGES,
    PRICE_ELASTICITY,
    TASTE_SHIFT_SHARE,
    Profile,
    Scenario,
)
from .weather import CLIMATES

_GROUPS = ("hot", "iced", "food", "any")


@dataclass(frozen=True)
class LaunchPlan:
    key: str  # catalogue.LAUNCH_ITEMS key
    day: date
    adopters: float
    choice: float


def launch_plans(profile: Profile, scenario: Scenario | None, start: date, horizon: int) -> list[LaunchPlan]:
    plans = []
    if profile.launch is not None:
        day = start + timedelta(days=round(horizon * profile.launch_at))
        plans.append(LaunchPlan(profile.launch, day, profile.launch_adopters, profile.launch_choice))
    if scenario is not None and scenario.kind == "new-product":
        plans.append(LaunchPlan(NEW_PRODUCT, scenario.day, NEW_PRODUCT_ADOPTERS, NEW_PRODUCT_CHOICE))
    return plans


@dataclass
class Launch:
    product: int  # index in the catalogue
    day: date
    adopt_ordinal: np.ndarray  # per pool member: first day (ordinal) of adoption
    choice: float


@dataclass
class DayWorld:
    """What a region's customers are like on one day."""

    pop: Population
    rates: np.ndarray  # (pool, daytypes) visit probabilities before weather
    cumulative: dict[str, np.ndarray]  # per persona, explore CDFs over the day's menu by item group
    price_usd: np.ndarray  # the day's catalogue prices
    keep_favourite: np.ndarray | None  # per product: a favourite is kept at this price (None: no change)
    launches: list[Launch]  # launches already on the menu
    weather_effect: float
    iced_reference_c: float  # with a weak weather effect, iced shares lean to this temperature's


@dataclass
class RegionWorld:
    region: str
    seed: int
    catalogue: Catalogue
    before: Population
    visits: VisitModel
    weather_effect: float
    launches: list[Launch] = field(default_factory=list)
    after: Population | None = None  # the population after a taste shift
    switched: np.ndarray | None = None
    shift_day: date | None = None
    price_day: date | None = None
    price_factor: np.ndarray | None = None
    _affinity: np.ndarray | None = None
    _rates: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        seed: int,
        region: str,
        customers: int,
        start: date,
        horizon: int,
        catalogue: Catalogue,
        profile: Profile,
        scenario: Scenario | None,
    ) -> RegionWorld:
        pop = build_population(seed, region, customers, start, catalogue, profile.guest_share)
        visits = visit_model(seed, region, pop.size, profile, horizon)
        world = cls(region, seed, catalogue, pop, visits, profile.weather_effect)
        for plan in launch_plans(profile, scenario, start, horizon):
            pid, name = LAUNCH_ITEMS[plan.key][:2]
            adopt = adoption_days(
                seed, region, int(pid[1:]), pop.size, plan.adopters, plan.day, ADOPTION_DELAY_MEAN_DAYS
            )
            world.launches.append(Launch(catalogue.index[name], plan.day, adopt, plan.choice))
        if scenario is not None and scenario.kind == "taste-shift":
            world.after, world.switched = shift_tastes(pop, seed, TASTE_SHIFT_SHARE, catalogue)
            world.shift_day = scenario.day
        if scenario is not None and scenario.kind == "price-change":
            world.price_day = scenario.day
            world.price_factor = np.ones(len(catalogue))
            for name, factor in PRICE_CHANGES.items():
                world.price_factor[catalogue.index[name]] = factor
        return world

    def population(self, day: date) -> Population:
        if self.after is not None and self.shift_day is not None and day >= self.shift_day:
            return self.after
        return self.before

    def prices_changed(self, day: date) -> bool:
        return self.price_day is not None and day >= self.price_day

    def day(self, day: date) -> DayWorld:
        pop = self.population(day)
        if self._affinity is None:
            self._affinity = affinity_matrix(self.region, self.catalogue)
        aff = self._affinity * np.array(self.catalogue.available(self.region, day))
        price = self.catalogue.price_usd
        keep = None
        if self.prices_changed(day):
            assert self.price_factor is not None
            aff = aff * self.price_factor**-PRICE_ELASTICITY
            price = price * self.price_factor
            keep = np.minimum(1.0, self.price_factor**-PRICE_ELASTICITY)
        serving = self.catalogue.serving
        masks = {
            "hot": serving == "hot",
            "iced": serving == "iced",
            "food": serving == "none",
            "any": np.ones(len(self.catalogue), dtype=bool),
        }
        cumulative = {}
        for name in _GROUPS:
            w = aff * masks[name]
            cumulative[name] = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
        rates = self._rates.get(id(pop))
        if rates is None:
            rates = self._rates[id(pop)] = self.visits.rates(pop)
        return DayWorld(
            pop=pop,
            rates=rates,
            cumulative=cumulative,
            price_usd=price,
            keep_favourite=keep,
            launches=[launch for launch in self.launches if day >= launch.day],
            weather_effect=self.weather_effect,
            iced_reference_c=CLIMATES[self.region].tmax_mean,
        )

"""Simulator profiles (what kind of world) and scenarios (what changes in it on a day).

A profile fixes how customers visit and choose, which regions upload what, and the shape of the files.
`friendly` is the original simulator: strong, clean weather and persona effects. `realistic` is not the
model's friend. `export` looks like a public sales export of one business unit. A scenario changes the
world from one day on and combines with any profile. Both are written into the ground truth, so that
`globolatte simulate --live` continues the same world.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import date

from globolatte_dagster.lib.contract import REGION_KEYS

from .personas import GUEST_SHARE


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    regions: tuple[str, ...] = REGION_KEYS
    start: str = "2025-01-01"  # default first sales day
    days: int = 120  # default number of sales days
    customers: int = 2000  # default loyalty customers per region
    weather_effect: float = 1.0  # scales every temperature and rain effect (1 = full, 0 = none)
    # Long tail (tail_visits > 0): a loyal core visits at persona rates, everyone else `tail_visits` times
    # over the horizon (the seeded period) on average. The core's share is `loyal_core_share`, or, if
    # `new_buyer_share` is set, the share that makes that fraction of the last 14 days' buyers new.
    tail_visits: float = 0.0
    tail_spread: float = 0.0  # lognormal sd of the tail's personal visit rates
    loyal_core_share: float = 0.0
    new_buyer_share: float | None = None
    launch: str | None = None  # a catalogue.LAUNCH_ITEMS key, launched at `launch_at` of the horizon
    launch_at: float = 0.5
    launch_adopters: float = 0.0  # share of customers who adopt it
    launch_choice: float = 0.0  # an adopter's drink is the new product with this probability
    single_store_regions: tuple[str, ...] = ()  # one file per day, never split
    no_weather_regions: tuple[str, ...] = ()  # no weather files at all
    outlets: int = 0  # >0: every day of every region arrives as this many outlet files with a store_id
    guest_share: float = GUEST_SHARE  # guests in the pool relative to loyalty customers
    extended_catalogue: bool = False
    comma_name_share: float = 0.0  # customers.csv names written "Last, First"
    unquoted_share: float = 0.0  # of those, written without quotes (a malformed row)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def long_tail(self) -> bool:
        return self.tail_visits > 0

    def core_share(self, horizon: int) -> float:
        """The loyal core's share of customers for a seeded period of `horizon` days.

        With a target share S of new buyers among the last 14 days' buyers: a tail customer visits at
        r = tail_visits / horizon per day, buys in the window with q = 1 - exp(-14 r) and is new there
        with e = exp(-r (horizon - 14)); the core nearly all buy (p = 0.95). S = (1-c) q e / ((1-c) q + c p)
        gives c = q (e - S) / (p S + q (e - S)), kept within [0.03, 0.5].
        """
        if self.new_buyer_share is None:
            return self.loyal_core_share
        r = self.tail_visits / max(horizon, 1)
        window = min(NEW_BUYER_WINDOW_DAYS, horizon)
        q = 1 - math.exp(-window * r)
        e = math.exp(-r * max(horizon - window, 0))
        s, p = self.new_buyer_share, 0.95
        c = q * (e - s) / (p * s + q * (e - s))
        return min(max(c, 0.03), 0.5)

    @property
    def uses_horizon(self) -> bool:
        """Whether the world depends on the seeded period's length (long-tail rates, the launch day)."""
        return self.long_tail or self.launch is not None

    @property
    def start_date(self) -> date:
        return date.fromisoformat(self.start)

    @classmethod
    def from_dict(cls, data: dict) -> Profile:
        known = {f.name: f for f in fields(cls)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**kwargs)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="friendly",
            description="the original simulator: every customer a regular, strong weather and persona effects",
        ),
        Profile(
            name="realistic",
            description="not the model's friend: weak weather effect, a small loyal core and a long tail of "
            "1-3 visit customers (about a fifth of the last 14 days' buyers are new), a product launched "
            "halfway, a single-store region (mexico) and a region without weather files (canada)",
            weather_effect=0.15,
            tail_visits=1.5,
            new_buyer_share=0.2,
            tail_spread=0.6,
            launch="shaken_espresso",
            launch_at=0.5,
            launch_adopters=0.35,
            launch_choice=0.5,
            single_store_regions=("mexico",),
            no_weather_regions=("canada",),
        ),
        Profile(
            name="export",
            description="shaped like a public sales export: one business unit (america), 2019, 30 days, "
            "three outlet files a day, no weather feed, a longer menu, many guest sales, customer names "
            "with unquoted commas",
            regions=("america",),
            start="2019-04-01",
            days=30,
            weather_effect=0.1,
            loyal_core_share=0.1,
            tail_visits=1.5,
            tail_spread=0.6,
            no_weather_regions=REGION_KEYS,
            outlets=3,
            guest_share=0.5,
            extended_catalogue=True,
            comma_name_share=0.12,
            unquoted_share=0.5,
        ),
    )
}
DEFAULT_PROFILE = "friendly"
NEW_BUYER_WINDOW_DAYS = 14  # "new buyers": first seen in the last this many days of the seeded period

# ---------------------------------------------------------------------------------------------- scenarios
SCENARIO_KINDS: tuple[str, ...] = ("taste-shift", "new-product", "price-change", "unit-outage")
TASTE_SHIFT_SHARE = 0.6  # of every region's customers switch persona (and so favourites)
NEW_PRODUCT = "pistachio_latte"
NEW_PRODUCT_ADOPTERS = 0.5
NEW_PRODUCT_CHOICE = 0.6
ADOPTION_DELAY_MEAN_DAYS = 3.0  # geometric delay between a launch and a customer's adoption
# price-change: base-catalogue product -> price factor from the scenario's day on.
PRICE_CHANGES: dict[str, float] = {
    "Caffè Latte": 1.4,
    "Americano": 1.45,
    "Blueberry Muffin": 0.65,
    "Chai Latte": 0.7,
}
PRICE_ELASTICITY = 2.0  # a favourite is kept with probability factor ** -e; explore weights x factor ** -e


@dataclass(frozen=True)
class Scenario:
    kind: str
    day: date  # first day of the change
    region: str | None = None  # unit-outage: the business unit that stops uploading

    def __post_init__(self) -> None:
        if self.kind not in SCENARIO_KINDS:
            raise ValueError(f"unknown scenario '{self.kind}' (known: {', '.join(SCENARIO_KINDS)})")
        if self.region is not None and self.kind != "unit-outage":
            raise ValueError("a scenario region is only used by unit-outage")

    def to_dict(self) -> dict:
        out: dict = {"kind": self.kind, "day": self.day.isoformat(), "region": self.region}
        if self.kind == "taste-shift":
            out["share"] = TASTE_SHIFT_SHARE
        elif self.kind == "new-product":
            out |= {
                "product": NEW_PRODUCT,
                "adopters": NEW_PRODUCT_ADOPTERS,
                "choice": NEW_PRODUCT_CHOICE,
                "adoption_delay_mean_days": ADOPTION_DELAY_MEAN_DAYS,
            }
        elif self.kind == "price-change":
            out |= {"price_factors": PRICE_CHANGES, "elasticity": PRICE_ELASTICITY}
        return out

    @classmethod
    def from_dict(cls, data: dict | None) -> Scenario | None:
        if not data:
            return None
        return cls(data["kind"], date.fromisoformat(data["day"]), data.get("region"))


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile '{name}' (known: {', '.join(PROFILES)})") from None

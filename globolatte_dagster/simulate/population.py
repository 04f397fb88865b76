"""The per-region population (loyalty customers plus a pool of guests), how often each one visits, and
the changes a scenario makes to it (a taste shift, adopters of a launched product).

Every draw is keyed by (seed, region) and a purpose tag, never by the days simulated so far:
tag 1 the population, 5 the visit tiers, 7 the taste shift, 8 the adopters of a launch, 9 the names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from globolatte_dagster.lib.contract import PAYMENT_METHODS, REGION_KEYS, REGIONS

from .catalogue import BASE_CATALOGUE, Catalogue
from .personas import (
    EMAIL_DOMAINS,
    EXPLORE_FLOOR,
    FIRST_NAMES,
    GUEST_SHARE,
    ICED_FAN,
    ICED_INSENSITIVE,
    ICED_SENSITIVE,
    LAST_NAMES,
    PERSONA_KEYS,
    PERSONAS,
    REGIONAL_TASTE,
    TREAT_MIN_PRICE,
    ascii_name,
)
from .profiles import Profile

VISIT = np.array([p.visit_rate for p in PERSONAS])  # (personas, daytypes)
_SHARES = np.array([p.share for p in PERSONAS])
_NEVER = np.iinfo(np.int64).max


def rng_for(seed: int, region: str, *tag: int) -> np.random.Generator:
    return np.random.default_rng([seed, REGION_KEYS.index(region), *tag])


def affinity_matrix(region: str, catalogue: Catalogue = BASE_CATALOGUE) -> np.ndarray:
    """(personas x products) affinities in `region`, zero for products not sold there."""
    taste = REGIONAL_TASTE.get(region, {})
    index = catalogue.index
    out = np.full((len(PERSONAS), len(catalogue)), EXPLORE_FLOOR)
    for i, persona in enumerate(PERSONAS):
        for name, w in persona.weights.items():
            out[i, index[name]] = w
    for j, p in enumerate(catalogue.products):
        if p.like is not None:
            out[:, j] = out[:, index[p.like]] * p.like_weight
    for name, m in taste.items():
        out[:, index[name]] *= m
    sold = np.array([p.region in (None, region) for p in catalogue.products])
    return out * sold


@dataclass
class Population:
    """Everyone who may visit a region's stores: loyalty customers first, then the guest pool."""

    region: str
    n_customers: int
    customer_id: np.ndarray  # object, "" for guests
    persona: np.ndarray  # int index into PERSONAS
    rate_mult: np.ndarray
    hour_offset: np.ndarray
    repeat: np.ndarray
    p_food_shift: np.ndarray
    iced_floor: np.ndarray
    iced_ceil: np.ndarray
    iced_t0: np.ndarray
    weather_sensitive: np.ndarray
    rain_sens: np.ndarray
    payment: np.ndarray  # preferred payment index
    fav_hot: np.ndarray  # (n, 2) product indices
    fav_iced: np.ndarray  # (n, 2)
    fav_food_weekday: np.ndarray
    fav_food_weekend: np.ndarray
    fav_treat: np.ndarray  # a premium hot drink for weekends and holidays
    customers: pd.DataFrame  # the reference rows of loyalty customers

    @property
    def size(self) -> int:
        return len(self.persona)

    def personas_frame(self) -> pd.DataFrame:
        n = self.n_customers
        return pd.DataFrame(
            {
                "customer_id": self.customer_id[:n],
                "region": self.region,
                "persona": np.asarray(PERSONA_KEYS, dtype=object)[self.persona[:n]],
            }
        )


def _draw(rng: np.random.Generator, weights: np.ndarray, size: int, exclude: np.ndarray | None = None):
    """Draw `size` product indices from `weights`; optionally distinct from `exclude` per row."""
    p = weights / weights.sum()
    first = rng.choice(len(p), size=size, p=p)
    if exclude is None:
        return first
    again = rng.choice(len(p), size=size, p=p)
    third = rng.choice(len(p), size=size, p=p)
    out = np.where(first != exclude, first, again)
    return np.where(out != exclude, out, third)


def draw_favourites(
    rng: np.random.Generator, persona: np.ndarray, aff: np.ndarray, catalogue: Catalogue
) -> dict[str, np.ndarray]:
    """Favourites drawn from the persona's affinities (regional specialities in, seasonal and launched out)."""
    n = len(persona)
    serving, launched = catalogue.serving, catalogue.launched
    hot = (serving == "hot") & ~catalogue.seasonal & ~launched
    iced = (serving == "iced") & ~launched
    food = (serving == "none") & ~launched
    weekend_boost = np.where(catalogue.category == "food", 3.0, 1.0)
    premium = np.where(catalogue.price_usd >= TREAT_MIN_PRICE, 3.0, 0.3)
    fav = {
        "fav_hot": np.zeros((n, 2), dtype=np.int64),
        "fav_iced": np.zeros((n, 2), dtype=np.int64),
        "fav_food_weekday": np.zeros(n, dtype=np.int64),
        "fav_food_weekend": np.zeros(n, dtype=np.int64),
        "fav_treat": np.zeros(n, dtype=np.int64),
    }
    for k in range(len(PERSONAS)):
        rows = np.flatnonzero(persona == k)
        m = len(rows)
        w = aff[k]
        fav["fav_hot"][rows, 0] = _draw(rng, w * hot, m)
        fav["fav_hot"][rows, 1] = _draw(rng, w * hot, m, exclude=fav["fav_hot"][rows, 0])
        fav["fav_iced"][rows, 0] = _draw(rng, w * iced, m)
        fav["fav_iced"][rows, 1] = _draw(rng, w * iced, m, exclude=fav["fav_iced"][rows, 0])
        fav["fav_food_weekday"][rows] = _draw(rng, w * food, m)
        wd = fav["fav_food_weekday"][rows]
        fav["fav_food_weekend"][rows] = _draw(rng, w * food * weekend_boost, m, exclude=wd)
        fav["fav_treat"][rows] = _draw(rng, w * hot * premium, m, exclude=fav["fav_hot"][rows, 0])
    return fav


def build_population(
    seed: int,
    region: str,
    n_customers: int,
    start: date,
    catalogue: Catalogue = BASE_CATALOGUE,
    guest_share: float = GUEST_SHARE,
) -> Population:
    """The population of `region`: depends only on (seed, region, n_customers, start, catalogue)."""
    rng = rng_for(seed, region, 1)
    n_guests = round(n_customers * guest_share)
    n = n_customers + n_guests
    persona = rng.choice(len(PERSONAS), size=n, p=_SHARES / _SHARES.sum())

    def per(attr):
        return np.array([getattr(p, attr) for p in PERSONAS], dtype=float)[persona]

    rate_mult = rng.lognormal(0.0, 0.3, n)
    hour_offset = rng.normal(0.0, 0.5, n)
    repeat = np.clip(per("p_repeat") + rng.normal(0.0, 0.05, n), 0.4, 0.97)
    p_food_shift = rng.normal(0.0, 0.06, n)
    sensitive = rng.random(n) < per("weather_sensitive_share")
    fan = persona == PERSONA_KEYS.index("iced_drink_fan")
    t0 = np.where(
        fan,
        rng.normal(ICED_FAN["t0_mean"], ICED_FAN["t0_sd"], n),
        np.where(
            sensitive,
            rng.normal(ICED_SENSITIVE["t0_mean"], ICED_SENSITIVE["t0_sd"], n),
            rng.normal(ICED_INSENSITIVE["t0_mean"], ICED_INSENSITIVE["t0_sd"], n),
        ),
    )
    ceil = np.where(
        fan, ICED_FAN["ceil"], np.where(sensitive, ICED_SENSITIVE["ceil"], ICED_INSENSITIVE["ceil"])
    )
    floor = np.clip(per("iced_floor") + rng.normal(0.0, 0.04, n) * (per("iced_floor") > 0.1), 0.0, 0.8)
    rain_sens = per("rain_sensitivity") * rng.lognormal(0.0, 0.3, n)
    pay_p = np.array([p.payment_p for p in PERSONAS])
    payment = (rng.random(n)[:, None] > np.cumsum(pay_p[persona], axis=1)).sum(axis=1)
    payment = np.minimum(payment, len(PAYMENT_METHODS) - 1)
    fav = draw_favourites(rng, persona, affinity_matrix(region, catalogue), catalogue)

    info = REGIONS[region]
    first = FIRST_NAMES[region]
    last = LAST_NAMES[region]
    fi = rng.integers(0, len(first), n_customers)
    li = rng.integers(0, len(last), n_customers)
    num = rng.integers(1, 100, n_customers)
    dom = rng.integers(0, len(EMAIL_DOMAINS), n_customers)
    signup = rng.integers(1, 3 * 365, n_customers)
    ids = [f"{info.country}{i:05d}" for i in range(1, n_customers + 1)]
    names = [f"{first[a]} {last[b]}" for a, b in zip(fi, li, strict=True)]
    emails = [
        f"{ascii_name(first[a])}.{ascii_name(last[b]).replace(' ', '')}{c}@{EMAIL_DOMAINS[d]}"
        for a, b, c, d in zip(fi, li, num, dom, strict=True)
    ]
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "customer_name": names,
            "email": emails,
            "location": info.city,
            "signup_date": [(start - timedelta(days=int(s))).isoformat() for s in signup],
        }
    )
    customer_id = np.array([*ids, *([""] * n_guests)], dtype=object)
    return Population(
        region=region,
        n_customers=n_customers,
        customer_id=customer_id,
        persona=persona,
        rate_mult=rate_mult,
        hour_offset=hour_offset,
        repeat=repeat,
        p_food_shift=p_food_shift,
        iced_floor=floor,
        iced_ceil=ceil,
        iced_t0=t0,
        weather_sensitive=sensitive | fan,
        rain_sens=rain_sens,
        payment=payment,
        customers=customers,
        **fav,
    )


@dataclass(frozen=True)
class VisitModel:
    """Daily visit probabilities before weather: a loyal core at persona rates, the rest a long tail."""

    core: np.ndarray | None  # bool per pool member; None: everyone is a regular (friendly)
    tail_rate: np.ndarray | None  # a tail member's mean daily visit rate

    def rates(self, pop: Population) -> np.ndarray:
        """(pool, daytypes) visit probabilities for the population's personas."""
        base = VISIT[pop.persona] * pop.rate_mult[:, None]
        if self.core is None:
            return base
        weekly = (5 * VISIT[:, 0] + 2 * VISIT[:, 1]) / 7
        shape = VISIT / weekly[:, None]  # the persona's weekly pattern, mean 1
        tail = shape[pop.persona] * self.tail_rate[:, None]
        return np.where(self.core[:, None], base, tail)


def visit_model(seed: int, region: str, size: int, profile: Profile, horizon: int) -> VisitModel:
    if not profile.long_tail:
        return VisitModel(None, None)
    rng = rng_for(seed, region, 5)
    core = rng.random(size) < profile.core_share(horizon)
    sd = profile.tail_spread
    personal = rng.lognormal(-sd * sd / 2, sd, size)  # mean 1
    return VisitModel(core, profile.tail_visits / max(horizon, 1) * personal)


def shift_tastes(
    pop: Population, seed: int, share: float, catalogue: Catalogue
) -> tuple[Population, np.ndarray]:
    """The population after a taste shift: `share` of it switch to another persona and its favourites."""
    rng = rng_for(seed, pop.region, 7)
    n = pop.size
    switch = rng.random(n) < share
    # Another persona, in proportion to the personas' shares.
    weights = np.tile(_SHARES, (n, 1))
    weights[np.arange(n), pop.persona] = 0.0
    cum = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    other = np.minimum((cum < rng.random(n)[:, None]).sum(axis=1), len(PERSONAS) - 1)
    persona = np.where(switch, other, pop.persona)
    fav = draw_favourites(rng, persona, affinity_matrix(pop.region, catalogue), catalogue)
    changes = {
        k: np.where(switch[:, None] if v.ndim == 2 else switch, v, getattr(pop, k)) for k, v in fav.items()
    }
    floor = np.array([p.iced_floor for p in PERSONAS])[persona]
    fan = persona == PERSONA_KEYS.index("iced_drink_fan")
    was_fan = pop.persona == PERSONA_KEYS.index("iced_drink_fan")
    t0 = np.where(
        fan & ~was_fan, ICED_FAN["t0_mean"], np.where(~fan & was_fan, ICED_SENSITIVE["t0_mean"], pop.iced_t0)
    )
    ceil = np.where(fan, ICED_FAN["ceil"], np.where(was_fan, ICED_SENSITIVE["ceil"], pop.iced_ceil))
    shifted = replace(
        pop,
        persona=persona,
        iced_floor=np.where(switch, floor, pop.iced_floor),
        iced_t0=np.where(switch, t0, pop.iced_t0),
        iced_ceil=np.where(switch, ceil, pop.iced_ceil),
        **changes,
    )
    return shifted, switch


def adoption_days(
    seed: int, region: str, key: int, size: int, share: float, launch: date, delay_mean: float
) -> np.ndarray:
    """Per pool member, the ordinal of the day they adopt a launched product (int64 max: never)."""
    rng = rng_for(seed, region, 8, key)
    adopt = rng.random(size) < share
    delay = rng.geometric(1.0 / (1.0 + delay_mean), size) - 1
    return np.where(adopt, launch.toordinal() + delay, _NEVER)


def comma_names(
    seed: int, region: str, customers: pd.DataFrame, share: float, unquoted: float
) -> pd.DataFrame:
    """Which customers.csv rows carry a "Last, First" name, and which of those are written unquoted."""
    rng = rng_for(seed, region, 9)
    n = len(customers)
    comma = rng.random(n) < share
    raw = comma & (rng.random(n) < unquoted)
    parts = customers["customer_name"].str.split(" ", n=1)
    flipped = parts.str[1] + ", " + parts.str[0]
    out = customers.copy()
    out["customer_name"] = np.where(comma, flipped, customers["customer_name"])
    out["unquoted"] = raw
    return out

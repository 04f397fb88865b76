"""Customer personas and the per-region population (loyalty customers plus a pool of guests).

A persona fixes how often and when a customer visits, what they like and how the weather moves them.
Every customer gets personal noise on top, and personal favourites drawn from the persona's tastes:
two hot drinks, two iced drinks, a weekday and a weekend food item.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from globolatte_dagster.lib.contract import PAYMENT_METHODS, REGION_KEYS, REGIONS

from .catalogue import PRODUCT_INDEX, PRODUCTS

DAYTYPES: tuple[str, ...] = ("weekday", "weekend", "holiday")


@dataclass(frozen=True)
class Persona:
    key: str
    description: str
    share: float  # share of the population
    visit_rate: tuple[float, float, float]  # daily visit probability on weekday, weekend, holiday
    hour_mean: tuple[float, float]  # mean visit hour on weekdays, on weekends and holidays
    hour_sd: float
    p_drink: float  # a visit includes a drink
    p_food: tuple[float, float]  # a visit includes food/pastry: weekdays, weekends and holidays
    p_third: float  # a third item
    p_repeat: float  # an item is one of the customer's favourites rather than explored
    weather_sensitive_share: float  # share of customers whose iced share jumps above ~22-23 °C
    iced_floor: float  # iced share of drinks even on cold days
    rain_sensitivity: float  # visit rate x exp(-s * min(precip, 25) / 10)
    heat_visit_boost: float  # visit rate x (1 - b/2 + b * sigmoid((t_max - 20) / 4))
    p_festive: float  # on holidays: a drink/food is swapped for the festive item
    quantity_p: tuple[float, float, float]  # P(quantity = 1, 2, 3)
    payment_p: tuple[float, float, float, float]  # preferred payment, in PAYMENT_METHODS order
    weights: dict[str, float] = field(default_factory=dict)  # product affinities (others: EXPLORE_FLOOR)


EXPLORE_FLOOR = 0.05


PERSONAS: tuple[Persona, ...] = (
    Persona(
        key="morning_commuter",
        description="weekday mornings before work: hot coffee and a pastry or breakfast",
        share=0.22,
        visit_rate=(0.55, 0.08, 0.1),
        hour_mean=(7.9, 10.3),
        hour_sd=0.75,
        p_drink=0.97,
        p_food=(0.45, 0.75),
        p_third=0.05,
        p_repeat=0.88,
        weather_sensitive_share=0.2,
        iced_floor=0.03,
        rain_sensitivity=0.1,
        heat_visit_boost=0.0,
        p_festive=0.25,
        quantity_p=(0.94, 0.05, 0.01),
        payment_p=(0.45, 0.25, 0.05, 0.25),
        weights={
            "Drip Coffee": 3,
            "Americano": 3,
            "Cappuccino": 2,
            "Caffè Latte": 3,
            "Espresso": 1.5,
            "Iced Americano": 2,
            "Cold Brew": 3,
            "Iced Latte": 2,
            "Butter Croissant": 3,
            "Blueberry Muffin": 2,
            "Breakfast Sandwich": 3,
            "Bagel with Cream Cheese": 3,
            "Chocolate Croissant": 1,
            "Earl Grey Tea": 0.3,
            "Maple Latte": 1.5,
            "Café de Olla": 2,
            "Pumpkin Spice Latte": 1,
            "Peppermint Mocha": 1.5,
            "Concha": 1,
            "Butter Tart": 0.5,
        },
    ),
    Persona(
        key="iced_drink_fan",
        description="afternoon iced coffees and frappés, comes far more often when it is hot",
        share=0.15,
        visit_rate=(0.3, 0.34, 0.3),
        hour_mean=(15.0, 14.5),
        hour_sd=1.6,
        p_drink=0.98,
        p_food=(0.2, 0.25),
        p_third=0.06,
        p_repeat=0.8,
        weather_sensitive_share=1.0,
        iced_floor=0.4,
        rain_sensitivity=0.6,
        heat_visit_boost=0.9,
        p_festive=0.25,
        quantity_p=(0.92, 0.07, 0.01),
        payment_p=(0.25, 0.15, 0.05, 0.55),
        weights={
            "Iced Latte": 3,
            "Cold Brew": 3,
            "Caramel Frappé": 3,
            "Mocha Frappé": 2.5,
            "Iced Americano": 1.5,
            "Iced Peach Tea": 1,
            "Horchata Frappé": 3,
            "Caffè Latte": 2,
            "Caramel Macchiato": 2,
            "Mocha": 1.5,
            "Chocolate Chip Cookie": 2,
            "Chocolate Croissant": 1,
            "Turkey Pesto Panini": 1,
            "Blueberry Muffin": 1,
            "Peppermint Mocha": 1,
        },
    ),
    Persona(
        key="tea_lover",
        description="teas, hot in the cold and iced in the heat, mid-morning, with something light",
        share=0.13,
        visit_rate=(0.33, 0.28, 0.22),
        hour_mean=(10.5, 11.0),
        hour_sd=1.5,
        p_drink=0.97,
        p_food=(0.35, 0.4),
        p_third=0.05,
        p_repeat=0.82,
        weather_sensitive_share=0.55,
        iced_floor=0.04,
        rain_sensitivity=0.25,
        heat_visit_boost=0.2,
        p_festive=0.2,
        quantity_p=(0.93, 0.06, 0.01),
        payment_p=(0.35, 0.3, 0.15, 0.2),
        weights={
            "Green Tea": 3,
            "Earl Grey Tea": 3,
            "Chai Latte": 3,
            "Matcha Latte": 3,
            "Iced Green Tea": 3,
            "Iced Peach Tea": 2.5,
            "Yogurt Parfait": 2,
            "Blueberry Muffin": 2,
            "Butter Croissant": 1.5,
            "Avocado Toast": 1,
            "Caffè Latte": 0.3,
            "Butter Tart": 0.8,
            "Concha": 1,
        },
    ),
    Persona(
        key="weekend_brunch",
        description="weekends and holidays, late morning: food and specialty drinks, often for two",
        share=0.15,
        visit_rate=(0.035, 0.55, 0.65),
        hour_mean=(11.0, 11.2),
        hour_sd=1.2,
        p_drink=0.9,
        p_food=(0.85, 0.92),
        p_third=0.45,
        p_repeat=0.65,
        weather_sensitive_share=0.35,
        iced_floor=0.05,
        rain_sensitivity=0.4,
        heat_visit_boost=0.2,
        p_festive=0.45,
        quantity_p=(0.72, 0.24, 0.04),
        payment_p=(0.55, 0.2, 0.05, 0.2),
        weights={
            "Cappuccino": 2,
            "Caffè Latte": 2.5,
            "Caramel Macchiato": 2,
            "Mocha": 1.5,
            "Maple Latte": 2.5,
            "Pumpkin Spice Latte": 2.5,
            "Café de Olla": 2.5,
            "Matcha Latte": 1,
            "Iced Latte": 2,
            "Caramel Frappé": 1,
            "Horchata Frappé": 1.5,
            "Avocado Toast": 3,
            "Breakfast Sandwich": 2.5,
            "Turkey Pesto Panini": 2,
            "Yogurt Parfait": 1.5,
            "Bagel with Cream Cheese": 2,
            "Cinnamon Roll": 2,
            "Chocolate Croissant": 1.5,
            "Butter Tart": 1.5,
            "Concha": 1.5,
            "Peppermint Mocha": 2,
        },
    ),
    Persona(
        key="pastry_snacker",
        description="afternoon sweets, often without a drink, sweet drinks when there is one",
        share=0.15,
        visit_rate=(0.3, 0.35, 0.4),
        hour_mean=(15.5, 15.0),
        hour_sd=1.4,
        p_drink=0.55,
        p_food=(0.98, 0.98),
        p_third=0.25,
        p_repeat=0.8,
        weather_sensitive_share=0.2,
        iced_floor=0.04,
        rain_sensitivity=0.25,
        heat_visit_boost=0.2,
        p_festive=0.35,
        quantity_p=(0.85, 0.13, 0.02),
        payment_p=(0.3, 0.3, 0.25, 0.15),
        weights={
            "Chocolate Croissant": 3,
            "Cinnamon Roll": 3,
            "Chocolate Chip Cookie": 3,
            "Blueberry Muffin": 2.5,
            "Butter Tart": 3,
            "Concha": 3,
            "Butter Croissant": 2,
            "Mocha": 3,
            "Caramel Macchiato": 2,
            "Chai Latte": 1.5,
            "Caffè Latte": 1.5,
            "Mocha Frappé": 2,
            "Caramel Frappé": 2,
            "Iced Latte": 1,
            "Peppermint Mocha": 2,
        },
    ),
    Persona(
        key="student_budget",
        description="cheap drip coffee and a cookie, very often, all day long and on weekends too",
        share=0.2,
        visit_rate=(0.62, 0.45, 0.25),
        hour_mean=(14.5, 15.5),
        hour_sd=3.2,
        p_drink=0.93,
        p_food=(0.25, 0.3),
        p_third=0.04,
        p_repeat=0.9,
        weather_sensitive_share=0.3,
        iced_floor=0.03,
        rain_sensitivity=0.2,
        heat_visit_boost=0.2,
        p_festive=0.15,
        quantity_p=(0.95, 0.04, 0.01),
        payment_p=(0.05, 0.4, 0.15, 0.4),
        weights={
            "Drip Coffee": 5,
            "Americano": 2.5,
            "Espresso": 1.5,
            "Green Tea": 1,
            "Iced Americano": 3,
            "Cold Brew": 1.5,
            "Iced Green Tea": 1,
            "Chocolate Chip Cookie": 4,
            "Bagel with Cream Cheese": 2,
            "Blueberry Muffin": 1.5,
            "Concha": 3,
            "Butter Tart": 1.5,
        },
    ),
)
PERSONA_KEYS: tuple[str, ...] = tuple(p.key for p in PERSONAS)

# Regional taste: affinity multipliers on top of the persona's (Tim Hortons-style drip in Canada, etc.).
REGIONAL_TASTE: dict[str, dict[str, float]] = {
    "america": {"Cold Brew": 1.4, "Bagel with Cream Cheese": 1.3, "Pumpkin Spice Latte": 1.2},
    "canada": {"Drip Coffee": 1.5, "Maple Latte": 1.4, "Butter Tart": 1.3, "Earl Grey Tea": 1.3},
    "mexico": {"Café de Olla": 1.6, "Horchata Frappé": 1.4, "Concha": 1.5, "Mocha": 1.2},
}

# Iced share of drinks: floor + (ceil - floor) * sigmoid((t_max - t0) / ICED_SCALE).
ICED_SCALE = 2.5
ICED_SENSITIVE = {"t0_mean": 22.5, "t0_sd": 1.5, "ceil": 0.92}
ICED_INSENSITIVE = {"t0_mean": 28.0, "t0_sd": 2.0, "ceil": 0.55}
ICED_FAN = {"t0_mean": 20.5, "t0_sd": 1.5, "ceil": 0.96}
# Weekend/holiday treat: a hot drink visit takes the customer's premium treat instead of the usual favourite.
TREAT_P = 0.5
TREAT_MIN_PRICE = 4.25
GUEST_SHARE = 0.12  # guests in the pool relative to loyalty customers (~10% of rows)

_FIRST = {
    "america": [
        "James",
        "Mary",
        "Michael",
        "Patricia",
        "Robert",
        "Jennifer",
        "David",
        "Linda",
        "William",
        "Elizabeth",
        "Emily",
        "Daniel",
        "Ashley",
        "Matthew",
        "Jessica",
        "Andrew",
        "Sarah",
        "Joshua",
        "Olivia",
        "Ethan",
        "Ava",
        "Noah",
        "Mia",
        "Tyler",
        "Chloe",
        "Kevin",
        "Grace",
        "Brandon",
    ],
    "canada": [
        "Liam",
        "Emma",
        "Lucas",
        "Charlotte",
        "Benjamin",
        "Amelia",
        "Oliver",
        "Sophie",
        "Jacob",
        "Chloé",
        "Félix",
        "Léa",
        "Nathan",
        "Zoé",
        "Owen",
        "Maya",
        "Logan",
        "Hannah",
        "Gabriel",
        "Audrey",
        "Ryan",
        "Claire",
        "Samuel",
        "Julia",
        "Thomas",
        "Rosalie",
        "Connor",
        "Avery",
    ],
    "mexico": [
        "José",
        "María",
        "Juan",
        "Guadalupe",
        "Luis",
        "Fernanda",
        "Carlos",
        "Sofía",
        "Jorge",
        "Valentina",
        "Miguel",
        "Ximena",
        "Alejandro",
        "Camila",
        "Diego",
        "Regina",
        "Ricardo",
        "Daniela",
        "Fernando",
        "Andrea",
        "Eduardo",
        "Paola",
        "Javier",
        "Lucía",
        "Emiliano",
        "Renata",
    ],
}
_LAST = {
    "america": [
        "Smith",
        "Johnson",
        "Williams",
        "Brown",
        "Jones",
        "Garcia",
        "Miller",
        "Davis",
        "Wilson",
        "Anderson",
        "Taylor",
        "Thomas",
        "Moore",
        "Jackson",
        "Martin",
        "Lee",
        "Thompson",
        "White",
        "Harris",
        "Clark",
        "Lewis",
        "Robinson",
        "Walker",
        "Young",
        "King",
        "Wright",
        "Scott",
    ],
    "canada": [
        "Tremblay",
        "Gagnon",
        "Roy",
        "Côté",
        "Bouchard",
        "Gauthier",
        "Morin",
        "Lavoie",
        "Fortin",
        "Smith",
        "Brown",
        "Wilson",
        "MacDonald",
        "Campbell",
        "Stewart",
        "Anderson",
        "Martin",
        "Thompson",
        "Leblanc",
        "Pelletier",
        "Bélanger",
        "Lévesque",
        "Young",
        "Chen",
        "Singh",
        "Wong",
    ],
    "mexico": [
        "Hernández",
        "García",
        "Martínez",
        "López",
        "González",
        "Pérez",
        "Rodríguez",
        "Sánchez",
        "Ramírez",
        "Cruz",
        "Flores",
        "Gómez",
        "Morales",
        "Vázquez",
        "Reyes",
        "Jiménez",
        "Torres",
        "Díaz",
        "Gutiérrez",
        "Ruiz",
        "Mendoza",
        "Aguilar",
        "Ortiz",
        "Moreno",
        "Castillo",
        "Romero",
    ],
}
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def persona_parameters() -> list[dict]:
    return [asdict(p) for p in PERSONAS]


def affinity_matrix(region: str) -> np.ndarray:
    """(personas x products) affinities in `region`, zero for products not sold there."""
    taste = REGIONAL_TASTE.get(region, {})
    out = np.full((len(PERSONAS), len(PRODUCTS)), EXPLORE_FLOOR)
    for i, persona in enumerate(PERSONAS):
        for name, w in persona.weights.items():
            out[i, PRODUCT_INDEX[name]] = w
    for name, m in taste.items():
        out[:, PRODUCT_INDEX[name]] *= m
    sold = np.array([p.region in (None, region) for p in PRODUCTS])
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


def build_population(seed: int, region: str, n_customers: int, start: date) -> Population:
    """The population of `region`: depends only on (seed, region, n_customers, start)."""
    rng = np.random.default_rng([seed, REGION_KEYS.index(region), 1])
    n_guests = round(n_customers * GUEST_SHARE)
    n = n_customers + n_guests
    shares = np.array([p.share for p in PERSONAS])
    persona = rng.choice(len(PERSONAS), size=n, p=shares / shares.sum())

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

    # Favourites: drawn from the persona's affinities (regional specialities included, seasonal excluded).
    aff = affinity_matrix(region)
    serving = np.array([p.serving for p in PRODUCTS])
    category = np.array([p.category for p in PRODUCTS])
    seasonal = np.array([p.seasonal for p in PRODUCTS])
    hot = (serving == "hot") & ~seasonal
    iced = serving == "iced"
    food = serving == "none"
    weekend_boost = np.where(category == "food", 3.0, 1.0)
    fav_hot = np.zeros((n, 2), dtype=np.int64)
    fav_iced = np.zeros((n, 2), dtype=np.int64)
    fav_wd = np.zeros(n, dtype=np.int64)
    fav_we = np.zeros(n, dtype=np.int64)
    fav_treat = np.zeros(n, dtype=np.int64)
    premium = np.where(np.array([p.price for p in PRODUCTS]) >= TREAT_MIN_PRICE, 3.0, 0.3)
    for k in range(len(PERSONAS)):
        rows = np.flatnonzero(persona == k)
        m = len(rows)
        w = aff[k]
        fav_hot[rows, 0] = _draw(rng, w * hot, m)
        fav_hot[rows, 1] = _draw(rng, w * hot, m, exclude=fav_hot[rows, 0])
        fav_iced[rows, 0] = _draw(rng, w * iced, m)
        fav_iced[rows, 1] = _draw(rng, w * iced, m, exclude=fav_iced[rows, 0])
        fav_wd[rows] = _draw(rng, w * food, m)
        fav_we[rows] = _draw(rng, w * food * weekend_boost, m, exclude=fav_wd[rows])
        fav_treat[rows] = _draw(rng, w * hot * premium, m, exclude=fav_hot[rows, 0])

    info = REGIONS[region]
    first = _FIRST[region]
    last = _LAST[region]
    fi = rng.integers(0, len(first), n_customers)
    li = rng.integers(0, len(last), n_customers)
    num = rng.integers(1, 100, n_customers)
    dom = rng.integers(0, len(_EMAIL_DOMAINS), n_customers)
    signup = rng.integers(1, 3 * 365, n_customers)
    ids = [f"{info.country}{i:05d}" for i in range(1, n_customers + 1)]
    names = [f"{first[a]} {last[b]}" for a, b in zip(fi, li, strict=True)]
    emails = [
        f"{_ascii(first[a])}.{_ascii(last[b]).replace(' ', '')}{c}@{_EMAIL_DOMAINS[d]}"
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
        fav_hot=fav_hot,
        fav_iced=fav_iced,
        fav_food_weekday=fav_wd,
        fav_food_weekend=fav_we,
        fav_treat=fav_treat,
        customers=customers,
    )

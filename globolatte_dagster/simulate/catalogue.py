"""The GloboLatte product catalogue the simulator sells from (prices in USD).

The base catalogue is what the `friendly` profile sells. A profile may extend it (the `export` profile's
longer menu) and a profile or scenario may add products launched on a day: they are in products.csv from
the start, but on the menu only from their launch day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import pandas as pd

from globolatte_dagster.lib.contract import PRODUCT_COLUMNS

# Drinks are split by serving; food (pastry, food) has serving "none".
DRINK_CATEGORIES: tuple[str, ...] = ("coffee", "tea", "blended")
FOOD_CATEGORIES: tuple[str, ...] = ("pastry", "food")


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str  # coffee | tea | blended | pastry | food
    price: float  # USD
    serving: str  # hot | iced | none
    region: str | None = None  # sold only in this region (regional speciality); None = everywhere
    seasonal: bool = False  # sold only in the winter holiday season (SEASON below)
    like: str | None = None  # personas like it as much as this base product, times `like_weight`
    like_weight: float = 1.0

    @property
    def is_drink(self) -> bool:
        return self.serving in ("hot", "iced")


_ITEMS: tuple[tuple[str, str, float, str, str | None, bool], ...] = (
    # name, category, price, serving, region, seasonal
    ("Drip Coffee", "coffee", 2.25, "hot", None, False),
    ("Espresso", "coffee", 2.75, "hot", None, False),
    ("Americano", "coffee", 3.15, "hot", None, False),
    ("Cappuccino", "coffee", 4.25, "hot", None, False),
    ("Caffè Latte", "coffee", 4.50, "hot", None, False),
    ("Mocha", "coffee", 4.95, "hot", None, False),
    ("Caramel Macchiato", "coffee", 5.25, "hot", None, False),
    ("Iced Latte", "coffee", 4.95, "iced", None, False),
    ("Cold Brew", "coffee", 4.45, "iced", None, False),
    ("Iced Americano", "coffee", 3.45, "iced", None, False),
    ("Caramel Frappé", "blended", 5.45, "iced", None, False),
    ("Mocha Frappé", "blended", 5.45, "iced", None, False),
    ("Green Tea", "tea", 2.95, "hot", None, False),
    ("Earl Grey Tea", "tea", 2.95, "hot", None, False),
    ("Chai Latte", "tea", 4.25, "hot", None, False),
    ("Matcha Latte", "tea", 4.75, "hot", None, False),
    ("Iced Green Tea", "tea", 3.25, "iced", None, False),
    ("Iced Peach Tea", "tea", 3.45, "iced", None, False),
    ("Butter Croissant", "pastry", 3.25, "none", None, False),
    ("Chocolate Croissant", "pastry", 3.50, "none", None, False),
    ("Blueberry Muffin", "pastry", 3.25, "none", None, False),
    ("Cinnamon Roll", "pastry", 3.75, "none", None, False),
    ("Chocolate Chip Cookie", "pastry", 2.25, "none", None, False),
    ("Breakfast Sandwich", "food", 5.95, "none", None, False),
    ("Avocado Toast", "food", 7.50, "none", None, False),
    ("Turkey Pesto Panini", "food", 8.50, "none", None, False),
    ("Yogurt Parfait", "food", 4.50, "none", None, False),
    ("Peppermint Mocha", "coffee", 5.75, "hot", None, True),
    ("Pumpkin Spice Latte", "coffee", 5.45, "hot", "america", False),
    ("Bagel with Cream Cheese", "food", 3.50, "none", "america", False),
    ("Maple Latte", "coffee", 5.25, "hot", "canada", False),
    ("Butter Tart", "pastry", 2.95, "none", "canada", False),
    ("Café de Olla", "coffee", 3.25, "hot", "mexico", False),
    ("Horchata Frappé", "blended", 4.95, "iced", "mexico", False),
    ("Concha", "pastry", 1.95, "none", "mexico", False),
)

# The export profile's longer menu (sizes, single origins, more bakery), as real shop exports have.
# name, category, price, serving, liked like this base product, times this weight
_EXTENDED: tuple[tuple[str, str, float, str, str, float], ...] = (
    ("Drip Coffee Large", "coffee", 2.85, "hot", "Drip Coffee", 0.6),
    ("Americano Large", "coffee", 3.65, "hot", "Americano", 0.5),
    ("Cappuccino Large", "coffee", 4.85, "hot", "Cappuccino", 0.5),
    ("Caffè Latte Large", "coffee", 5.15, "hot", "Caffè Latte", 0.6),
    ("Mocha Large", "coffee", 5.55, "hot", "Mocha", 0.5),
    ("Flat White", "coffee", 4.45, "hot", "Cappuccino", 0.7),
    ("Cortado", "coffee", 3.95, "hot", "Espresso", 0.8),
    ("Ethiopia Single Origin Pour-Over", "coffee", 4.95, "hot", "Drip Coffee", 0.4),
    ("Colombia Single Origin Pour-Over", "coffee", 4.75, "hot", "Drip Coffee", 0.4),
    ("Hazelnut Latte", "coffee", 4.95, "hot", "Caramel Macchiato", 0.6),
    ("Vanilla Latte", "coffee", 4.95, "hot", "Caffè Latte", 0.6),
    ("Iced Latte Large", "coffee", 5.55, "iced", "Iced Latte", 0.6),
    ("Cold Brew Large", "coffee", 5.05, "iced", "Cold Brew", 0.6),
    ("Nitro Cold Brew", "coffee", 5.25, "iced", "Cold Brew", 0.5),
    ("Iced Mocha", "coffee", 5.25, "iced", "Mocha Frappé", 0.6),
    ("English Breakfast Tea", "tea", 2.95, "hot", "Earl Grey Tea", 0.7),
    ("Peppermint Tea", "tea", 2.95, "hot", "Green Tea", 0.6),
    ("Hot Chocolate", "blended", 3.95, "hot", "Mocha", 0.5),
    ("Iced Chai Latte", "tea", 4.45, "iced", "Chai Latte", 0.6),
    ("Lemonade", "blended", 3.25, "iced", "Iced Peach Tea", 0.6),
    ("Scottish Cream Scone", "pastry", 3.45, "none", "Blueberry Muffin", 0.7),
    ("Ginger Scone", "pastry", 3.45, "none", "Blueberry Muffin", 0.5),
    ("Oatmeal Scone", "pastry", 3.25, "none", "Butter Croissant", 0.5),
    ("Almond Croissant", "pastry", 3.95, "none", "Chocolate Croissant", 0.7),
    ("Hazelnut Biscotti", "pastry", 2.45, "none", "Chocolate Chip Cookie", 0.6),
    ("Chocolate Brownie", "pastry", 3.25, "none", "Chocolate Chip Cookie", 0.7),
    ("Banana Bread", "pastry", 3.45, "none", "Cinnamon Roll", 0.6),
    ("Egg and Cheese Wrap", "food", 5.45, "none", "Breakfast Sandwich", 0.7),
    ("Spinach Feta Wrap", "food", 5.75, "none", "Avocado Toast", 0.6),
    ("Chicken Caesar Sandwich", "food", 7.95, "none", "Turkey Pesto Panini", 0.7),
    ("Overnight Oats", "food", 4.25, "none", "Yogurt Parfait", 0.7),
)
EXTENDED_FIRST_ID = 36

# Products that a profile or scenario launches on a day: (id, name, category, price, serving, liked like).
LAUNCH_ITEMS: dict[str, tuple[str, str, str, float, str, str]] = {
    "shaken_espresso": ("P101", "Oat Milk Shaken Espresso", "coffee", 5.45, "iced", "Iced Latte"),
    "pistachio_latte": ("P102", "Pistachio Latte", "coffee", 5.25, "hot", "Caffè Latte"),
}
LAUNCH_LIKE_WEIGHT = 1.5

PRODUCTS: tuple[Product, ...] = tuple(
    Product(f"P{i:03d}", name, cat, price, serving, region, seasonal)
    for i, (name, cat, price, serving, region, seasonal) in enumerate(_ITEMS, start=1)
)
PRODUCT_INDEX: dict[str, int] = {p.name: i for i, p in enumerate(PRODUCTS)}
PRODUCT_IDS: tuple[str, ...] = tuple(p.product_id for p in PRODUCTS)

# The winter holiday season in which seasonal products are on the menu (month, day), inclusive.
SEASON: tuple[tuple[int, int], tuple[int, int]] = ((11, 15), (1, 15))

# Items pushed on national holidays: (hot drink outside the season, iced drink or None, pastry).
FESTIVE: dict[str, tuple[str, str | None, str]] = {
    "america": ("Pumpkin Spice Latte", None, "Cinnamon Roll"),
    "canada": ("Maple Latte", None, "Butter Tart"),
    "mexico": ("Café de Olla", "Horchata Frappé", "Concha"),
}
SEASONAL_FESTIVE_DRINK = "Peppermint Mocha"


def in_season(day: date) -> bool:
    (m0, d0), (m1, d1) = SEASON
    return (day.month, day.day) >= (m0, d0) or (day.month, day.day) <= (m1, d1)


@dataclass(frozen=True)
class Catalogue:
    """The products a world sells, with their launch days; the base catalogue has no launches."""

    products: tuple[Product, ...]
    launches: Mapping[str, date]  # product_id -> first day on the menu

    @cached_property
    def index(self) -> dict[str, int]:
        return {p.name: i for i, p in enumerate(self.products)}

    @cached_property
    def ids(self) -> np.ndarray:
        return np.array([p.product_id for p in self.products], dtype=object)

    @cached_property
    def price_usd(self) -> np.ndarray:
        return np.array([p.price for p in self.products])

    @cached_property
    def serving(self) -> np.ndarray:
        return np.array([p.serving for p in self.products])

    @cached_property
    def category(self) -> np.ndarray:
        return np.array([p.category for p in self.products])

    @cached_property
    def seasonal(self) -> np.ndarray:
        return np.array([p.seasonal for p in self.products])

    @cached_property
    def launched(self) -> np.ndarray:
        """Products with a launch day (never a favourite drawn at the start)."""
        return np.array([p.product_id in self.launches for p in self.products])

    def __len__(self) -> int:
        return len(self.products)

    def available(self, region: str, day: date) -> list[bool]:
        """Which products are on the menu in `region` on `day`."""
        season = in_season(day)
        return [
            (p.region in (None, region))
            and (season or not p.seasonal)
            and (p.product_id not in self.launches or day >= self.launches[p.product_id])
            for p in self.products
        ]

    def products_frame(self, price_factor: Mapping[str, float] | None = None) -> pd.DataFrame:
        """products.csv; `price_factor` (product_id -> factor) gives the prices of a later snapshot."""
        factor = price_factor or {}
        frame = pd.DataFrame(
            {
                "product_id": [p.product_id for p in self.products],
                "product_name": [p.name for p in self.products],
                "category": [p.category for p in self.products],
                "price": [f"{p.price * factor.get(p.product_id, 1.0):.2f}" for p in self.products],
                "serving": [p.serving for p in self.products],
            }
        )
        assert tuple(frame.columns[: len(PRODUCT_COLUMNS)]) == PRODUCT_COLUMNS
        return frame


BASE_CATALOGUE = Catalogue(PRODUCTS, {})


def build_catalogue(extended: bool, launches: Sequence[tuple[str, date]]) -> Catalogue:
    """The base catalogue, plus the export menu if `extended`, plus launched products (key, launch day)."""
    if not extended and not launches:
        return BASE_CATALOGUE
    products = list(PRODUCTS)
    if extended:
        products += [
            Product(f"P{i:03d}", name, cat, price, serving, like=like, like_weight=w)
            for i, (name, cat, price, serving, like, w) in enumerate(_EXTENDED, start=EXTENDED_FIRST_ID)
        ]
    days: dict[str, date] = {}
    for key, day in launches:
        pid, name, cat, price, serving, like = LAUNCH_ITEMS[key]
        products.append(Product(pid, name, cat, price, serving, like=like, like_weight=LAUNCH_LIKE_WEIGHT))
        days[pid] = day
    return Catalogue(tuple(products), days)


def available(region: str, day: date) -> list[bool]:
    """Which base-catalogue products are on the menu in `region` on `day`."""
    return BASE_CATALOGUE.available(region, day)


def products_frame() -> pd.DataFrame:
    return BASE_CATALOGUE.products_frame()

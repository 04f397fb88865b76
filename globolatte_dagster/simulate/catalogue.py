"""The GloboLatte product catalogue the simulator sells from (prices in USD)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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


def available(region: str, day: date) -> list[bool]:
    """Which products are on the menu in `region` on `day`."""
    season = in_season(day)
    return [(p.region in (None, region)) and (season or not p.seasonal) for p in PRODUCTS]


def products_frame() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "product_id": [p.product_id for p in PRODUCTS],
            "product_name": [p.name for p in PRODUCTS],
            "category": [p.category for p in PRODUCTS],
            "price": [f"{p.price:.2f}" for p in PRODUCTS],
            "serving": [p.serving for p in PRODUCTS],
        }
    )
    assert tuple(frame.columns[: len(PRODUCT_COLUMNS)]) == PRODUCT_COLUMNS
    return frame

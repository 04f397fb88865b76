"""What the fits of the tournament at several cutoffs of one history share (`FitCache`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from globolatte_dagster.lib.recommend.candidates import Recommender
from globolatte_dagster.lib.recommend.data import History
from globolatte_dagster.lib.recommend.design import Snapshot

SegmentAt = Callable[[History], np.ndarray]


class FitCache:
    """What the fits at several cutoffs of one history share, each computed once.

    The base candidates fitted at a cutoff (keyed by their hyperparameters too), the context model's
    training rows of a window and its snapshots (views are shared by `History.shared_views`). `train_region`
    passes one cache to the hold-out fit and to the refit for serving: with contiguous sales days, the
    refit's older windows are the hold-out fit's newer ones, with the same bases (the refit reuses the
    tuned hyperparameters), so their rows are the same and are built once.
    """

    def __init__(self, history: History, prototypes: dict[str, Recommender]) -> None:
        self.history = history
        self.prototypes = prototypes
        self.fitted: dict[tuple[str, date, str], Recommender] = {}
        self.windows: dict[tuple[Any, ...], WindowRows] = {}
        self.snapshots: dict[date, Snapshot] = {}

    @staticmethod
    def _key(name: str, cutoff: date, model: Recommender) -> tuple[str, date, str]:
        return (name, cutoff, json.dumps(model.fixed().describe()["params"], sort_keys=True, default=str))

    def view(self, cutoff: date) -> History:
        return self.history.until(cutoff)  # one per cutoff inside `History.shared_views`

    def put(self, name: str, cutoff: date, model: Recommender) -> None:
        self.fitted[self._key(name, cutoff, model)] = model

    def get(self, name: str, cutoff: date) -> Recommender:
        key = self._key(name, cutoff, self.prototypes[name])
        if key not in self.fitted:
            self.fitted[key] = self.prototypes[name].fixed().fit(self.view(cutoff))
        return self.fitted[key]

    def snapshot(self, cutoff: date, segment_at: SegmentAt | None) -> Snapshot:
        if cutoff not in self.snapshots:
            view = self.view(cutoff)
            self.snapshots[cutoff] = Snapshot.build(view, segment_at(view) if segment_at else None)
        return self.snapshots[cutoff]


@dataclass
class WindowRows:
    """The context model's training rows from one window: features, labels and what they came from."""

    x: np.ndarray
    y: np.ndarray
    customer_days: int  # in the window
    customer_days_used: int  # whose rows are here (all, or a seeded sample for `max_train_rows`)

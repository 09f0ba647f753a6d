"""The one rule for comparing scores: which is better for an objective's direction."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Literal, TypeVar

T = TypeVar("T")
Direction = Literal["max", "min"]


def is_better(value: float, than: float, direction: Direction) -> bool:
    """True when `value` beats `than` for the direction ("max" or "min")."""
    return value > than if direction == "max" else value < than


def sort_key(value: float, direction: Direction) -> float:
    """A key that sorts the best score first (ascending order)."""
    return -value if direction == "max" else value


def best_of(items: Iterable[T], score: Callable[[T], float | None], direction: Direction) -> T | None:
    """The item with the best finite score, or None when none has one (ties: the first wins)."""
    best: T | None = None
    best_score = math.nan
    for item in items:
        value = score(item)
        if value is None or not math.isfinite(value):
            continue
        if best is None or is_better(value, best_score, direction):
            best, best_score = item, value
    return best

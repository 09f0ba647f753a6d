"""Numbers for people, and hyperparameter values on the grid the user wrote.

Two rules, kept apart:

- What a person reads (the terminal, logs, the report's labels) is rounded: 4 significant digits
  for scores and metrics (`significant`), a hyperparameter to the precision of its step
  (`hp_text`), durations in s/m/h (`duration`).
- What a machine reads (trial.json, leaderboard.csv, `hptune show --json`) keeps every digit. But a
  Float hyperparameter with a step is a grid value (0.3), not the float Keras Tuner computes for it
  (`min + 3 * step` = 0.30000000000000004): `grid_value` snaps it back, everywhere it is recorded.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

SCORE_DIGITS = 4
MAX_DECIMALS = 15  # finer than this a step is not a decimal the user typed


def decimals(number: float) -> int:
    """Digits after the decimal point in the shortest text of number (0.05 -> 2, 1e-4 -> 4, 16 -> 0)."""
    if not math.isfinite(number):
        return 0
    exponent = Decimal(repr(float(number))).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def grid_value(value: Any, min_value: float | None, step: float | None, sampling: str = "linear") -> Any:
    """A stepped Float's value as the grid point the user wrote: 0.3 for 0.30000000000000004.

    Linear steps round to the decimals of min and step (the grid is min + k * step); log steps
    (min * step ** k) round to 12 significant digits, which drops only the arithmetic's noise.
    Anything else (ints, choices, a Float without a step, a value off the grid) comes back as is.
    """
    if not isinstance(value, float) or isinstance(value, bool) or not math.isfinite(value) or not step:
        return value
    if sampling == "linear" and min_value is not None:
        places = max(decimals(step), decimals(min_value))
        if places <= MAX_DECIMALS:
            snapped = round(value, places)
            if abs(snapped - value) <= 1e-9 * max(abs(step), abs(value)):
                return snapped
        return value
    snapped = float(f"{value:.12g}")
    return snapped if abs(snapped - value) <= 1e-9 * abs(value) else value


def significant(value: Any, digits: int = SCORE_DIGITS) -> str:
    """A score or metric for people: 4 significant digits, trailing zeros kept so columns line up
    (0.9610, 12.35, 0.0001235, 1.235e+07); '-' for none or not a number."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "-" if math.isnan(number) else ("inf" if number > 0 else "-inf")
    if number == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(number)))
    if -4 <= magnitude < 6:
        places = max(0, digits - 1 - magnitude)
        text = f"{number:.{places}f}"
        # rounding can carry into a new digit (9.9996 -> 10.000): one place fewer then
        if places and len(text.lstrip("-").replace(".", "").lstrip("0")) > digits:
            text = f"{number:.{places - 1}f}"
        return text
    return f"{number:.{digits - 1}e}"


def hp_text(
    value: Any, step: float | None = None, min_value: float | None = None, sampling: str = "linear"
) -> str:
    """A hyperparameter value for people: ints and choices as they are, a Float with a linear step
    to the grid's precision (0.3 for step 0.1, 0.25 for step 0.05), any other Float to 4
    significant digits (0.0001235)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if step and sampling == "linear":
            places = max(decimals(step), decimals(min_value) if min_value is not None else 0)
            if places <= MAX_DECIMALS:
                return f"{value:.{places}f}"
        return f"{value:.4g}"
    return str(value)


def duration(seconds: float | None) -> str:
    """Seconds for people: 0.8s, 12s, 3m05s, 2h14m."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def shorten(text: str, width: int) -> str:
    """text cut to width characters, an ellipsis marking the cut."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"

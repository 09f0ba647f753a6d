"""What a HyperModel's own `fit` returned, read by Keras Tuner's rules (keras_tuner 1.4.8,
`engine/tuner_utils.py`: `validate_trial_results`, `convert_to_metrics_dict`).

Keras Tuner takes from `fit` a History, a number, a dict of numbers, or a list of those (averaged):

- a number is the objective's value; with `tuner.objective` left out (a HyperModel's default,
  Keras Tuner's `DefaultObjective`: `default_objective`, minimized) it must be a number (or a dict
  holding `default_objective`);
- a dict must hold the objective among its keys; its other numbers are recorded beside it;
- a History is read at its best epoch for the objective (`job/training/trial.py` does that from the
  epochs its callbacks saw);
- anything else, None included, fails the trial with the words Keras Tuner uses.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from job.spec.tuner import DEFAULT_OBJECTIVE, Objective


class ReturnRefused(Exception):
    """`fit` returned something Keras Tuner would refuse; the message is Keras Tuner's."""


def is_history(returned: object) -> bool:
    return isinstance(returned, keras.callbacks.History)


def returned_metrics(returned: object, objective: Objective, source: str) -> dict[str, float]:
    """The trial's metrics from what `source` returned (not a History: see `is_history`)."""
    _check(returned, objective, source)
    return _convert(returned, objective, source)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)


def _check(returned: object, objective: Objective, source: str) -> None:
    if isinstance(returned, list):
        if not returned:
            raise ReturnRefused(
                f"The return value of {source} is an empty list: there is nothing to average."
            )
        for element in returned:
            _check(element, objective, source)
        return
    if _is_number(returned):
        return
    if returned is None:
        raise ReturnRefused(f"The return value of {source} is None. Did you forget to return the metrics?")
    if objective.name == DEFAULT_OBJECTIVE.name and not (
        isinstance(returned, dict) and objective.name in returned
    ):
        raise ReturnRefused(
            f"Expected the return value of {source} to be a single float when `objective` is left "
            f"unspecified (spec.tuner.objective). Received return value: {returned!r} of type "
            f"{type(returned).__name__}."
        )
    if isinstance(returned, dict):
        if objective.name not in returned:
            raise ReturnRefused(
                f"Expected the returned dictionary from {source} to have the specified objective, "
                f"{objective.name}, as one of the keys. Received: {returned!r}."
            )
        return
    if is_history(returned):
        return
    raise ReturnRefused(
        f"Expected the return value of {source} to be one of float, dict, keras.callbacks.History, "
        f"or a list of one of these types. Received return value: {returned!r} of type "
        f"{type(returned).__name__}."
    )


def _convert(returned: Any, objective: Objective, source: str) -> dict[str, float]:
    if isinstance(returned, list):
        converted = [_convert(element, objective, source) for element in returned]
        names = set.intersection(*(set(metrics) for metrics in converted))
        return {name: float(np.mean([metrics[name] for metrics in converted])) for name in sorted(names)}
    if _is_number(returned):
        metrics = {objective.name: _number(returned, objective.name, source)}
    elif isinstance(returned, dict):
        metrics = {str(name): _number(value, str(name), source) for name, value in returned.items()}
    else:
        history: dict[str, list[Any]] = returned.history
        values = history.get(objective.name)
        if not values:
            raise ReturnRefused(
                f"{source} returned a History without the objective {objective.name!r}: it holds "
                f"{sorted(history)}"
            )
        pick = np.argmax if objective.direction == "max" else np.argmin
        best = int(pick([float(v) for v in values]))
        metrics = {
            name: _number(series[best], name, source)
            for name, series in history.items()
            if best < len(series)
        }
    if not math.isfinite(metrics[objective.name]):
        raise ReturnRefused(f"{source} returned {objective.name} = {metrics[objective.name]}")
    return metrics


def _number(value: object, name: str, source: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ReturnRefused(f"{source} returned {name} = {value!r}, which is not a number") from None

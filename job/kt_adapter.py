"""Every use of Keras Tuner's internals, in one place.

Keras Tuner ships no type information and hptune relies on parts of it that are not public API:
the `Trial` class and its statuses, the oracle's ongoing trials and retry queue, and the generated
gRPC protocol of its distributed oracle. This module states what hptune reads of them (the `Trial`
protocol, checked by mypy wherever a trial is used) and wraps the rest in small functions, so a
Keras Tuner upgrade that changes one of them breaks here and nowhere else.

Importing it imports Keras Tuner, hence Keras and its backend: only the search and training
modules do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import keras_tuner
from keras_tuner import HyperParameters, Objective, Oracle
from keras_tuner.engine import trial as _trial
from keras_tuner.src import protos as _protos
from keras_tuner.src.engine import oracle as _oracle_module

__all__ = [
    "HyperParameters",
    "Objective",
    "Oracle",
    "Status",
    "Trial",
    "active_values",
    "version",
]

version: str = keras_tuner.__version__


class Status:
    """A trial's status, as Keras Tuner spells it (plain strings)."""

    RUNNING: str = _trial.TrialStatus.RUNNING
    IDLE: str = _trial.TrialStatus.IDLE
    INVALID: str = _trial.TrialStatus.INVALID  # failed, and will be retried
    STOPPED: str = _trial.TrialStatus.STOPPED
    COMPLETED: str = _trial.TrialStatus.COMPLETED
    FAILED: str = _trial.TrialStatus.FAILED


if TYPE_CHECKING:

    class MetricHistory(Protocol):
        def get_last_value(self) -> float | None: ...

    class Metrics(Protocol):
        metrics: dict[str, MetricHistory]

        def exists(self, name: str) -> bool: ...

        def get_history(self, name: str) -> list[Any]: ...

        def get_last_value(self, name: str) -> float | None: ...

        def get_best_value(self, name: str) -> float | None: ...

        def update(self, name: str, value: float, step: int = 0) -> bool: ...

    class Trial(Protocol):
        """What hptune reads and writes of a Keras Tuner trial."""

        trial_id: str
        status: str
        message: str | None
        score: float | None
        best_step: int | None
        hyperparameters: HyperParameters
        metrics: Metrics

        def to_proto(self) -> Any: ...

        def get_state(self) -> dict[str, Any]: ...

else:
    Trial = _trial.Trial


def new_trial(space: HyperParameters, status: str, trial_id: str | None = None) -> Trial:
    """A trial outside the oracle: an answer such as IDLE or STOPPED, or a stale report."""
    return _trial.Trial(space, trial_id=trial_id, status=status)


def trial_from_proto(proto: Any) -> Trial:
    return _trial.Trial.from_proto(proto)


def trial_from_state(state: dict[str, Any]) -> Trial:
    return _trial.Trial.from_state(state)


def active_values(space: HyperParameters, value_of: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """A trial's values, as Keras Tuner's own oracles draw them: the space walked in declared order,
    each hyperparameter given a value (`value_of(hp, its default)`) only when the values so far meet
    its conditions (a layer's width under a tuned depth); the others get none."""
    values: dict[str, Any] = {}
    seen = HyperParameters()
    for hp in space.space:
        seen.merge([hp])
        if seen.is_active(hp):
            values[hp.name] = seen.values[hp.name] = value_of(hp, seen.values[hp.name])
    return values


# -- the oracle's bookkeeping ----------------------------------------------------------------------


def requeue(oracle: Oracle, tuner_id: str, trial: Trial) -> None:
    """Take a running trial back from its worker and queue it for the next worker that asks."""
    del oracle.ongoing_trials[tuner_id]
    oracle._retry_queue.append(trial.trial_id)
    trial.status = Status.IDLE


def forget_ongoing(oracle: Oracle, trial_id: str) -> None:
    """Drop a trial from the running ones (Keras Tuner raised before finishing its bookkeeping)."""
    for tuner_id, running in list(oracle.ongoing_trials.items()):
        if running.trial_id == trial_id:
            del oracle.ongoing_trials[tuner_id]


def release_after_raise(oracle: Oracle) -> None:
    """Give back the oracle's lock after one of its methods raised in this thread.

    Keras Tuner's `synchronized` takes a lock per oracle around each method and releases it only
    when the method returns: after `end_trial` raised (its consecutive-failures check), the lock
    stays held by this thread and every other thread's next call waits forever.
    """
    if _oracle_module.THREADS[oracle] == threading.current_thread().name:
        _oracle_module.THREADS[oracle] = None
        _oracle_module.LOCKS[oracle].release()


def end_uncounted(oracle: Oracle, trial: Trial) -> None:
    """End a failed trial without it counting toward `max_consecutive_failed_trials`, neither as a
    failure nor as a break in a run of failures (a trial out of memory: the point is too big for
    the machine, not a sign that the search is broken). Keras Tuner counts the failures at the end
    of its `end_order`: the check is off while the trial ends, and the trial leaves that order."""
    limit = oracle.max_consecutive_failed_trials
    oracle.max_consecutive_failed_trials = None
    try:
        oracle.end_trial(trial)
    finally:
        oracle.max_consecutive_failed_trials = limit
    if trial.trial_id in oracle.end_order:
        oracle.end_order.remove(trial.trial_id)


def has_queued(oracle: Oracle) -> bool:
    """Whether trials wait in the retry queue for a worker."""
    return bool(oracle._retry_queue)


# -- the gRPC protocol of Keras Tuner's distributed oracle ---------------------------------------

service: Any = _protos.get_service()  # request and response messages
service_grpc: Any = _protos.get_service_grpc()  # OracleServicer, OracleStub, add_OracleServicer_to_server

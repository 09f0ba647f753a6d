"""TensorBoard logs of a search under the output's `tensorboard/`, for the HParams dashboard and
the scalars of every trial: `tensorboard --logdir <output>/tensorboard` (a local path, s3:// or
gs://, which TensorBoard reads itself).

Written by the chief (or a standalone process) from the trial records it publishes, one file per
trial when the trial ends, so workers write nothing more and a large search adds one small object
per trial:

    tensorboard/events.out.tfevents.0.hptune-experiment   the experiment: every hyperparameter of
        the spec with its domain, and the metrics (the HParams table's columns)
    tensorboard/<trial id>/events.out.tfevents.0.hptune-trial   the trial's session: its values and
        its status (a failed or pruned trial says so), and its metrics per epoch (step = epoch);
        with several executions, execution k's under tensorboard/<trial id>/execution<k>/

Each file is written with TensorBoard's own event writer in a scratch directory, then put in the
store whole under a fixed name (a trial written again replaces its file). TensorBoard's `hparams`
and event-writer modules are pure protocol buffers: no TensorFlow is imported here.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from job.spec.hyperparameters import BooleanHP, ChoiceHP, FixedHP, FloatHP, HyperParameter, IntHP
from job.spec.tuner import Objective
from job.storage import WorkerStore

log = logging.getLogger(__name__)

PREFIX = "tensorboard"
EXPERIMENT_FILE = "events.out.tfevents.0.hptune-experiment"
TRIAL_FILE = "events.out.tfevents.0.hptune-trial"


class TensorBoardLogs:
    """Writes a search's TensorBoard logs to its store; a failure is warned about once and never
    stops the search."""

    def __init__(
        self, store: WorkerStore, hyperparameters: Sequence[HyperParameter], objective: Objective
    ) -> None:
        self.store = store
        self.hyperparameters = list(hyperparameters)
        self.objective = objective
        self._experiment_written = False
        self._warned = False
        self.seconds_spent = 0.0

    def trial_ended(self, read_record: Callable[[], dict[str, Any]]) -> None:
        """The trial's session and scalars (and, the first time, the experiment's columns), from
        its record as published (trials/<id>/trial.json), read here: a record that cannot be read
        is warned about like a write that fails, and never stops the search."""
        started = time.perf_counter()
        try:
            record = read_record()
            if not self._experiment_written:
                self._write(EXPERIMENT_FILE, [_experiment(self.hyperparameters, self.objective, record)])
                self._experiment_written = True
            for name, events in _trial_runs(record):
                self._write(f"{record['trialId']}/{name}{TRIAL_FILE}", events)
        except Exception as err:
            if not self._warned:
                self._warned = True
                log.warning(
                    "TensorBoard logs could not be written to %s (%s: %s); the search goes on without "
                    "them (spec.output.tensorboard: false turns them off)",
                    self.store.url(PREFIX),
                    type(err).__name__,
                    err,
                )
        self.seconds_spent += time.perf_counter() - started

    def _write(self, name: str, summaries: list[Any]) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        with tempfile.TemporaryDirectory(prefix="hptune-tensorboard-") as scratch:
            writer = EventFileWriter(scratch)
            for event in summaries:
                writer.add_event(event)
            writer.close()
            (written,) = Path(scratch).glob("events.out.tfevents.*")
            self.store.put_file(written, f"{PREFIX}/{name}")


def _event(summary: Any, step: int = 0, wall_time: float | None = None) -> Any:
    from tensorboard.compat.proto import event_pb2

    return event_pb2.Event(wall_time=wall_time or time.time(), step=step, summary=summary)


def _scalar(tag: str, value: float) -> Any:
    from tensorboard.compat.proto import summary_pb2

    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])


def _domain(hp: HyperParameter) -> Any:
    from tensorboard.plugins.hparams import summary_v2

    match hp:
        case IntHP() if hp.step in (None, 1):
            return summary_v2.IntInterval(hp.min, hp.max)
        case IntHP():
            return summary_v2.Discrete(list(range(hp.min, hp.max + 1, hp.step or 1)))
        case FloatHP():
            return summary_v2.RealInterval(float(hp.min), float(hp.max))
        case ChoiceHP() if len({type(v) for v in hp.values}) == 1:
            return summary_v2.Discrete(list(hp.values))
        case BooleanHP():
            return summary_v2.Discrete([True, False])
        case FixedHP() if isinstance(hp.value, bool | int | float | str):
            return summary_v2.Discrete([hp.value])
        case _:
            return None  # a choice of mixed types: a column without a domain


def _experiment(
    hyperparameters: Sequence[HyperParameter], objective: Objective, first: dict[str, Any]
) -> Any:
    """The HParams experiment: the spec's hyperparameters (and any a builder declared, without a
    domain) and the metrics, the objective first."""
    from tensorboard.plugins.hparams import summary_v2

    known = {hp.name for hp in hyperparameters}
    columns = [summary_v2.HParam(hp.name, _domain(hp)) for hp in hyperparameters]
    columns += [summary_v2.HParam(name) for name in sorted(first["hyperparameters"]) if name not in known]
    metrics = [objective.name]
    for epochs in first["history"][:1]:
        metrics += sorted({name for epoch in epochs for name in epoch} - {objective.name})
    summary = summary_v2.hparams_config_pb(
        hparams=columns, metrics=[summary_v2.Metric(name) for name in metrics]
    )
    return _event(summary)


def _trial_runs(record: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """(run directory under the trial's, its events): the session and the epochs' scalars."""
    from tensorboard.plugins.hparams import summary_v2

    values = {k: v for k, v in record["hyperparameters"].items() if isinstance(v, bool | int | float | str)}
    session = [_event(summary_v2.hparams_pb(values, trial_id=record["trialId"]))]
    executions = record["history"] or [[]]
    runs: list[tuple[str, list[Any]]] = []
    for index, epochs in enumerate(executions):
        events = [
            _event(_scalar(name, value), step=step)
            for step, metrics in enumerate(epochs)
            for name, value in metrics.items()
        ]
        if len(executions) == 1:
            return [("", session + events + [_event(_session_end(record["status"]))])]
        runs.append((f"execution{index}/", events))
    return [("", [*session, _event(_session_end(record["status"]))]), *runs]


def _session_end(status: str) -> Any:
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    code = api_pb2.STATUS_FAILURE if status == "failed" else api_pb2.STATUS_SUCCESS  # pruned: ended early
    content = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(status=code, end_time_secs=time.time())
    )
    return summary_pb2.Summary(
        value=[
            summary_pb2.Summary.Value(
                tag=metadata.SESSION_END_INFO_TAG,
                metadata=metadata.create_summary_metadata(content),
                tensor=metadata.NULL_TENSOR,
            )
        ]
    )

"""A search's output read back whole: the leaderboard, search.json, best/ and the trial records,
as `hptune show` and the report draw them (`load_results`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from job.errors import BadInput
from job.numbers import hp_text
from job.output.layout import LEADERBOARD_KEY, SEARCH_STATUS_KEY, SNAPSHOT_KEY, best_key, trial_key
from job.output.leaderboard import read_leaderboard
from job.output.records import was_lost
from job.storage import Store

READERS = 16  # trial records read at once (object stores answer one request at a time, slowly)


@dataclass
class TrialResult:
    """One trial as its output records it: its leaderboard row, and its trial.json when read."""

    trial_id: str
    status: str  # completed | failed (as the leaderboard says)
    rank: int | None
    score: float | None
    best_step: int | None
    hyperparameters: dict[str, Any]
    error: str  # the whole error text where trial.json has it, else the leaderboard's last line
    seconds: float | None = None
    worker: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[list[dict[str, float]]] = field(default_factory=list)
    # The chief gave up on the trial after losing its workers (the leaderboard's status column says
    # failed; its error says why).
    lost: bool = False
    gpus: list[str] = field(default_factory=list)  # the GPUs it trained on (UUIDs), where recorded

    @property
    def completed(self) -> bool:
        return self.status == "completed" and self.score is not None

    @property
    def outcome(self) -> str:
        """completed, failed (the trial raised), or lost (the chief gave up on its workers)."""
        if self.completed:
            return "completed"
        return "lost" if self.lost else self.status


@dataclass
class SearchResults:
    """What a search's output says of it: the leaderboard's trials (best first), the search's own
    record (search.json) and the best model's metrics."""

    uri: str
    name: str
    state: str | None
    reason: str | None
    objective: str
    direction: str  # max | min
    max_trials: int | None
    trials: list[TrialResult]
    definitions: dict[str, dict[str, Any]]  # the spec's hyperparameters by name
    losses: dict[str, int] = field(default_factory=dict)  # worker losses per trial (requeues too)
    best: dict[str, Any] | None = None  # best/metrics.json
    stopped_early: str | None = None  # why no more trials started before maxTrials, when so
    best_values: dict[str, Any] | None = None  # best/hyperparameters.json

    @property
    def completed(self) -> list[TrialResult]:
        return [t for t in self.trials if t.completed]

    def names(self) -> list[str]:
        """Hyperparameter names: the spec's order first, then any a model builder declared."""
        seen = {n for t in self.trials for n in t.hyperparameters}
        ordered = [n for n in self.definitions if n in seen]
        return ordered + sorted(seen - set(ordered))

    def varying(self) -> list[str]:
        """The hyperparameters that took more than one value across the trials."""
        return [n for n in self.names() if len({_key(t.hyperparameters.get(n)) for t in self.trials}) > 1]

    def hp_text(self, name: str, value: Any) -> str:
        """A hyperparameter value for people, to its step's precision where the spec gives one. A
        trial without a value for one of the spec's hyperparameters did not use it (a layer its
        depth did not build: Keras Tuner's conditional scopes): "inactive"."""
        if value is None:
            return "inactive" if name in self.definitions else "-"
        definition = self.definitions.get(name, {})
        return hp_text(
            value, definition.get("step"), definition.get("min"), definition.get("sampling") or "linear"
        )


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _read_json(store: Store, key: str) -> Any:
    try:
        return json.loads(store.read_text(key))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None


def _cell(text: str) -> Any:
    """A leaderboard cell as the value it was written from (the CSV holds str() of each)."""
    if text in ("True", "False"):
        return text == "True"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) or text.lower() in ("nan", "inf", "-inf") else text


def load_results(store: Store, records: str | Iterable[str] = "all", uri: str | None = None) -> SearchResults:
    """Read the search at store: leaderboard.csv (required: `BadInput` without it), search.json,
    best/, and the trial.json of `records` ("all", or the ids to read)."""
    uri = uri or store.uri
    try:
        board = store.read_text(LEADERBOARD_KEY)
    except FileNotFoundError:
        raise BadInput(f"{uri}: no leaderboard.csv; is this a search's output (spec.output.uri)?") from None
    leaderboard = read_leaderboard(board)
    if leaderboard is None:
        raise BadInput(f"{uri}: leaderboard.csv is not a leaderboard hptune wrote")
    objective = leaderboard.objective
    trials = [
        TrialResult(
            trial_id=row.trial_id,
            status=row.status,
            rank=row.rank,
            score=row.score,
            best_step=row.best_step,
            hyperparameters={n: _cell(text) for n, text in row.hyperparameters.items()},
            error=row.error,
            lost=was_lost(row.error),
        )
        for row in leaderboard.rows
    ]
    status = _read_json(store, SEARCH_STATUS_KEY) or {}
    spec = (status.get("spec") or {}).get("spec") or {}
    best = _read_json(store, best_key("metrics.json"))
    declared = spec.get("tuner", {}).get("objective", {}).get("direction")
    direction = declared or (best or {}).get("objective", {}).get("direction") or _direction(trials)
    results = SearchResults(
        uri=uri,
        name=status.get("name") or (status.get("spec") or {}).get("metadata", {}).get("name") or "search",
        state=status.get("state"),
        reason=status.get("reason"),
        objective=objective,
        direction=direction,
        max_trials=status.get("maxTrials"),
        trials=trials,
        definitions={d["name"]: d for d in spec.get("hyperparameters", []) if "name" in d},
        best=best,
        stopped_early=status.get("stoppedEarly"),
        best_values=_read_json(store, best_key("hyperparameters.json")),
    )
    wanted = {t.trial_id for t in trials} if records == "all" else set(records)
    read_records(store, [t for t in trials if t.trial_id in wanted])
    return results


def read_losses(store: Store) -> dict[str, int]:
    """Worker losses per trial, from the chief's snapshot (requeued trials that went on to finish
    are counted here; the leaderboard shows only the trials given up on)."""
    snapshot = _read_json(store, SNAPSHOT_KEY) or {}
    state = snapshot.get("state") if isinstance(snapshot, dict) else None
    losses = state.get("losses", {}) if isinstance(state, dict) else {}
    return {str(k): int(v) for k, v in losses.items() if isinstance(v, int | float)}


def read_records(store: Store, trials: Sequence[TrialResult]) -> None:
    """Fill in each trial's duration, worker, metrics, history and full error from its trial.json
    (a trial given up on for lost workers has none)."""
    if not trials:
        return
    with ThreadPoolExecutor(max_workers=min(READERS, len(trials))) as pool:
        records = list(pool.map(lambda t: _read_json(store, trial_key(t.trial_id, "trial.json")), trials))
    for trial, record in zip(trials, records, strict=True):
        if not isinstance(record, dict):
            continue
        trial.seconds = record.get("seconds")
        trial.worker = record.get("worker")
        trial.gpus = [str(g) for g in record.get("gpus") or []]
        trial.metrics = {k: v for k, v in (record.get("metrics") or {}).items() if isinstance(v, int | float)}
        trial.history = record.get("history") or []
        if record.get("error") and not trial.completed:
            trial.error = record["error"]
            trial.lost = was_lost(trial.error)
        recorded = record.get("hyperparameters")
        if isinstance(recorded, dict):  # typed values, where the CSV has text
            trial.hyperparameters = recorded


def _direction(trials: Sequence[TrialResult]) -> str:
    """The objective's direction from the ranking itself, when nothing records it."""
    scores = [t.score for t in sorted((t for t in trials if t.completed), key=lambda t: t.rank or 0)]
    return (
        "min"
        if len(scores) > 1 and scores[0] is not None and scores[-1] is not None and scores[0] < scores[-1]
        else "max"
    )

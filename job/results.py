"""What a search leaves in its output: trial records, trial models, the leaderboard and best/.

Layout under `output.uri`::

    search.json                 spec and live status
    state/snapshot.json         the chief's oracle state, for resuming
    trials/<id>/trial.json      hyperparameters, per-epoch history, status, error text
    trials/<id>/model.keras     for the best `output.keepModels` trials only
    trials/<id>/checkpoint.weights.h5   Hyperband only: weights a later round continues from
    best/model.keras, best/hyperparameters.json, best/metrics.json, best/README.md
    best/manifest.json          written last: its presence means best/ is complete
    leaderboard.csv
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from job.storage import Store

log = logging.getLogger(__name__)

Trial = kt.engine.trial.Trial
COMPLETED = kt.engine.trial.TrialStatus.COMPLETED
BEST_FILES = ("model.keras", "hyperparameters.json", "metrics.json", "README.md")


def trial_key(trial_id: str, name: str) -> str:
    return f"trials/{trial_id}/{name}"


@dataclass(frozen=True)
class TrialRecord:
    """A worker's account of one attempt at a trial."""

    trial_id: str
    worker: str
    status: str  # completed | failed
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    best_step: int
    history: list[list[dict[str, float]]]
    error: str | None
    seconds: float
    model_saved: bool

    def to_json(self) -> str:
        body = {
            "trialId": self.trial_id,
            "worker": self.worker,
            "status": self.status,
            "hyperparameters": self.hyperparameters,
            "metrics": self.metrics,
            "bestStep": self.best_step,
            "history": self.history,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "modelSaved": self.model_saved,
            "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return json.dumps(_finite(body), indent=2)


def _finite(value: Any) -> Any:
    """JSON has no NaN: write non-finite numbers as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def save_model(store: Store, key: str, model: keras.Model) -> None:
    """Save a Keras model to the store under key (a .keras or .weights.h5 file)."""
    with tempfile.TemporaryDirectory(prefix="hptune-model-") as tmp:
        local = Path(tmp) / Path(key).name
        if key.endswith(".weights.h5"):
            model.save_weights(str(local))
        else:
            model.save(str(local))
        store.put_file(local, key)


def public_values(hp_values: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameter values without Keras Tuner's internal `tuner/...` entries."""
    return {k: v for k, v in hp_values.items() if not k.startswith("tuner/")}


def ranked(trials: Sequence[Trial], direction: str) -> list[Trial]:
    """Completed trials best first, then the rest in id order."""
    done = [t for t in trials if t.status == COMPLETED and t.score is not None]
    done.sort(key=lambda t: (-t.score if direction == "max" else t.score, t.trial_id))
    rest = sorted((t for t in trials if t not in done), key=lambda t: t.trial_id)
    return done + rest


def leaderboard_csv(trials: Sequence[Trial], objective: str, direction: str) -> str:
    rows = ranked(trials, direction)
    names = sorted({k for t in rows for k in public_values(t.hyperparameters.values)})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "trial_id", "status", objective, "best_step", *names, "error"])
    rank = 0
    for t in rows:
        completed = t.status == COMPLETED and t.score is not None
        rank += completed
        values = public_values(t.hyperparameters.values)
        error = (t.message or "").strip().splitlines()[-1:] if t.message else []
        writer.writerow(
            [
                rank if completed else "",
                t.trial_id,
                str(t.status).lower(),
                t.score if completed else "",
                t.best_step if completed else "",
                *[values.get(n, "") for n in names],
                error[0] if error else "",
            ]
        )
    return out.getvalue()


class ModelPruner:
    """Keeps trial models for the best k trials only, deleting those that fall out of the top k."""

    def __init__(self, store: Store, keep: int) -> None:
        self.store = store
        self.keep = keep
        self.top: set[str] = set()

    def top_ids(self, trials: Sequence[Trial], direction: str) -> set[str]:
        done = [t for t in ranked(trials, direction) if t.status == COMPLETED and t.score is not None]
        return {t.trial_id for t in done[: self.keep]}

    def after_end(self, ended: str, trials: Sequence[Trial], direction: str) -> None:
        top = self.top_ids(trials, direction)
        for trial_id in sorted((self.top | {ended}) - top):
            self.store.delete(trial_key(trial_id, "model.keras"))
        self.top = top

    def sweep(self, trials: Sequence[Trial], direction: str) -> None:
        """Delete every trial model outside the top k (models left by lost attempts too)."""
        top = self.top_ids(trials, direction)
        for key in self.store.list("trials"):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == "model.keras" and parts[1] not in top:
                self.store.delete(key)
        self.top = top


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def promote_best(
    store: Store,
    best: Trial,
    trials: Sequence[Trial],
    objective: str,
    direction: str,
    card: dict[str, Any],
) -> None:
    """Copy the best trial into best/ and write best/manifest.json last.

    A reader that sees the manifest sees a complete best/. An old manifest is removed first, so
    a run that fails half-way leaves none.
    """
    store.delete("best/manifest.json")
    model_bytes = store.read_bytes(trial_key(best.trial_id, "model.keras"))
    files: dict[str, bytes] = {
        "model.keras": model_bytes,
        "hyperparameters.json": json.dumps(public_values(best.hyperparameters.values), indent=2).encode(),
        "metrics.json": json.dumps(
            _finite(
                {
                    "trialId": best.trial_id,
                    "objective": {"name": objective, "direction": direction, "value": best.score},
                    "bestStep": best.best_step,
                    "metrics": {name: best.metrics.get_best_value(name) for name in best.metrics.metrics},
                }
            ),
            indent=2,
        ).encode(),
        "README.md": model_card(best, trials, objective, direction, card).encode(),
    }
    for name, data in files.items():
        store.write_bytes(f"best/{name}", data)
    manifest = {
        "trialId": best.trial_id,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {name: {"bytes": len(data), "sha256": sha256(data)} for name, data in files.items()},
    }
    store.write_text("best/manifest.json", json.dumps(manifest, indent=2))
    log.info("best model (trial %s) written to %s", best.trial_id, store.url("best/model.keras"))


def model_card(
    best: Trial, trials: Sequence[Trial], objective: str, direction: str, card: dict[str, Any]
) -> str:
    values = public_values(best.hyperparameters.values)
    lines = [
        f"# {card.get('name', 'hptune search')}: best model",
        "",
        f"Trial {best.trial_id} scored {objective} = {best.score:.6g} ({direction}imize), "
        f"best at epoch {best.best_step + 1}.",
        "",
        "## Data",
        "",
        str(card.get("dataset", "")),
        "",
        "## Hyperparameters",
        "",
        "| name | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in sorted(values.items())],
        "",
        "## Search space",
        "",
        "| name | definition |",
        "| --- | --- |",
        *[f"| {d['name']} | {json.dumps(d)} |" for d in card.get("space", [])],
        "",
        "## Leaderboard (top 5)",
        "",
        "| rank | trial | " + objective + " |",
        "| --- | --- | --- |",
    ]
    done = [t for t in ranked(trials, direction) if t.status == COMPLETED][:5]
    lines += [f"| {i} | {t.trial_id} | {t.score:.6g} |" for i, t in enumerate(done, 1)]
    lines += [
        "",
        "## Versions",
        "",
        f"hptune {card.get('version', '')}, Keras {keras.__version__} "
        f"({keras.backend.backend()} backend), Keras Tuner {kt.__version__}, "
        f"Python {platform.python_version()}",
        "",
        "Load it with `keras.models.load_model('model.keras')`.",
        "",
    ]
    return "\n".join(lines)

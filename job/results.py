"""What a search leaves in its output: trial records, trial models, the leaderboard and best/.

Layout under `output.uri`::

    search.json                 spec and live status
    state/snapshot.json         the chief's oracle state, for resuming
    trials/<id>/trial.json      hyperparameters, per-epoch history, status, error text
    trials/<id>/model.keras     for the best `output.keepModels` trials only
    trials/<id>/checkpoint.weights.h5   Hyperband only: weights a later round continues from
    best/model.keras, best/hyperparameters.json, best/metrics.json, best/README.md (model card)
    best/saved_model/           the best model as a TensorFlow SavedModel, for serving (TF backend)
    best/manifest.json          written last: every best/ file with its size and sha256; its
                                presence means best/ is complete
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
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from job.storage import MANIFEST_KEY, StorageError, Store

log = logging.getLogger(__name__)

Trial = kt.engine.trial.Trial
COMPLETED = kt.engine.trial.TrialStatus.COMPLETED


def trial_key(trial_id: str, name: str) -> str:
    return f"trials/{trial_id}/{name}"


def attempt_key(trial_id: str, worker: str, name: str) -> str:
    """Where a worker stages one attempt's files: only the chief makes them the trial's own."""
    return f"trials/{trial_id}/attempts/{worker}/{name}"


def publish_attempt(store: Store, trial_id: str, worker: str) -> None:
    """Make the attempt the chief counted the trial's own: its files are copied to trials/<id>/,
    trial.json last. A stale attempt (its worker lost the trial) is never published."""
    staged = store.list(f"trials/{trial_id}/attempts/{worker}")
    staged.sort(key=lambda key: key.endswith("/trial.json"))
    for key in staged:
        store.copy(key, trial_key(trial_id, key.rsplit("/", 1)[1]))
    store.delete(f"trials/{trial_id}/attempts/{worker}")


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
    counted = {t.trial_id for t in done}  # a set: `t not in done` made this O(n^2) per call
    rest = sorted((t for t in trials if t.trial_id not in counted), key=lambda t: t.trial_id)
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
            outside_top = len(parts) == 3 and parts[2] == "model.keras" and parts[1] not in top
            never_counted = len(parts) > 3 and parts[2] == "attempts"  # staged by a stale attempt
            if outside_top or never_counted:
                self.store.delete(key)
        self.top = top


def file_checksum(path: Path) -> tuple[int, str]:
    """Size in bytes and sha256 of a local file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return path.stat().st_size, digest.hexdigest()


def export_saved_model(model_file: Path, target: Path) -> bool:
    """Export a saved .keras model as a TensorFlow SavedModel (for TF Serving) into target.

    Only under the TensorFlow backend; elsewhere the export is skipped, logged. An export that
    fails (a custom layer it cannot trace) is logged and skipped too: best/ stays usable without it.
    Returns whether target was written.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        log.info("best/saved_model/ skipped: a SavedModel export needs the TensorFlow backend (%s)", backend)
        return False
    try:
        model = keras.models.load_model(model_file, compile=False)
        model.export(str(target), format="tf_saved_model", verbose=False)
    except Exception as err:
        log.error("best/saved_model/ skipped: the SavedModel export failed: %s: %s", type(err).__name__, err)
        shutil.rmtree(target, ignore_errors=True)
        return False
    return True


def promote_best(
    store: Store,
    best: Trial,
    trials: Sequence[Trial],
    objective: str,
    direction: str,
    card: dict[str, Any],
) -> None:
    """Copy the best trial into best/ and write best/manifest.json last.

    A reader that sees the manifest sees a complete best/: the manifest lists every file in best/
    with its size and sha256. The order makes that hold across failures and re-runs into the same
    output: the old manifest is deleted first (a run that fails from here on leaves none), then
    the new files are uploaded, files of an older best/ that the new one does not have are
    deleted, and the manifest goes last.
    """
    store.delete(MANIFEST_KEY)
    with tempfile.TemporaryDirectory(prefix="hptune-best-") as tmp:
        stage = Path(tmp)
        source = trial_key(best.trial_id, "model.keras")
        try:
            store.get_file(source, stage / "model.keras")
        except FileNotFoundError:
            raise StorageError(
                f"read {store.url(source)} failed: the best trial's model is missing, so best/ cannot "
                "be written"
            ) from None
        metrics = {name: best.metrics.get_best_value(name) for name in best.metrics.metrics}
        (stage / "hyperparameters.json").write_text(
            json.dumps(public_values(best.hyperparameters.values), indent=2)
        )
        (stage / "metrics.json").write_text(
            json.dumps(
                _finite(
                    {
                        "trialId": best.trial_id,
                        "objective": {"name": objective, "direction": direction, "value": best.score},
                        "bestStep": best.best_step,
                        "metrics": metrics,
                    }
                ),
                indent=2,
            )
        )
        exported = export_saved_model(stage / "model.keras", stage / "saved_model")
        (stage / "README.md").write_text(
            model_card(best, trials, objective, direction, {**card, "savedModel": exported})
        )
        names = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        files = {}
        for name in names:
            size, digest = file_checksum(stage / name)
            store.put_file(stage / name, f"best/{name}")
            files[name] = {"bytes": size, "sha256": digest}
    for key in store.list("best"):
        if key != MANIFEST_KEY and key.removeprefix("best/") not in files:
            log.info("removing %s, left by an earlier best/", store.url(key))
            store.delete(key)
    manifest = {
        "trialId": best.trial_id,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
    }
    store.write_text(MANIFEST_KEY, json.dumps(manifest, indent=2))
    log.info("best model (trial %s) written to %s", best.trial_id, store.url("best/model.keras"))


def model_card(
    best: Trial, trials: Sequence[Trial], objective: str, direction: str, card: dict[str, Any]
) -> str:
    """best/README.md: what was searched, on what data, what won, and with which libraries."""
    values = public_values(best.hyperparameters.values)
    metrics = {name: best.metrics.get_best_value(name) for name in best.metrics.metrics}
    completed = [t for t in ranked(trials, direction) if t.status == COMPLETED and t.score is not None]
    lines = [
        f"# {card.get('name', 'hptune search')}: best model",
        "",
        f"Trial {best.trial_id} scored {objective} = {best.score:.6g} ({direction}imize), "
        f"best at epoch {best.best_step + 1}; {len(completed)} of {len(trials)} trials completed.",
        "",
        "## Data",
        "",
        str(card.get("dataset", "")),
        "",
        "## Objective",
        "",
        f"{objective}, {direction}imized.",
        "",
        "## Metrics of the best trial",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {name} | {_number(value)} |" for name, value in sorted(metrics.items())],
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
        *[f"| {i} | {t.trial_id} | {t.score:.6g} |" for i, t in enumerate(completed[:5], 1)],
        "",
        "## Versions",
        "",
        ", ".join(f"{name} {version}" for name, version in library_versions(card).items()),
        "",
        "## Files",
        "",
        "- `model.keras`: load it with `keras.models.load_model('model.keras')`.",
    ]
    if card.get("savedModel"):
        lines.append(
            "- `saved_model/`: a TensorFlow SavedModel for serving (TF Serving, "
            "`tf.saved_model.load('saved_model').serve(x)`)."
        )
    lines += [
        "- `hyperparameters.json`, `metrics.json`: the values above.",
        "- `manifest.json`: every file here with its size and sha256; written last, so its presence "
        "means this directory is complete. `hptune show` verifies it.",
        "",
    ]
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def library_versions(card: dict[str, Any]) -> dict[str, str]:
    versions = {
        "hptune": str(card.get("version", "")),
        "Keras": f"{keras.__version__} ({keras.backend.backend()} backend)",
        "Keras Tuner": kt.__version__,
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["TensorFlow"] = tf.__version__
    versions["Python"] = platform.python_version()
    return versions

"""best/: the best trial's model, hyperparameters, metrics and model card, complete or absent.

Everything is staged locally, uploaded, and `best/manifest.json` (size and sha256 of every file)
written last; the old manifest is deleted first, so an interrupted promotion leaves none.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

from job.kt_adapter import Trial
from job.kt_adapter import version as keras_tuner_version
from job.output.layout import MANIFEST_KEY, best_key, trial_key
from job.output.leaderboard import ranked
from job.output.manifest import file_checksum, write_manifest
from job.output.records import COMPLETED, finite_json, public_values
from job.spec.objective import Direction
from job.storage import Store
from job.storage.errors import StorageError

log = logging.getLogger(__name__)


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
    direction: Direction,
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
        elsewhere = model_elsewhere(store, best.trial_id)
        if elsewhere is None:
            source = trial_key(best.trial_id, "model.keras")
            try:
                store.get_file(source, stage / "model.keras")
            except FileNotFoundError:
                raise StorageError(
                    f"read {store.url(source)} failed: the best trial's model is missing, so best/ "
                    "cannot be written"
                ) from None
        metrics = {name: best.metrics.get_best_value(name) for name in best.metrics.metrics}
        (stage / "hyperparameters.json").write_text(json.dumps(public_values(best.hyperparameters), indent=2))
        (stage / "metrics.json").write_text(
            json.dumps(
                finite_json(
                    {
                        "trialId": best.trial_id,
                        "objective": {"name": objective, "direction": direction, "value": best.score},
                        "bestStep": best.best_step,
                        "metrics": metrics,
                        **({"modelLocation": elsewhere} if elsewhere else {}),
                    }
                ),
                indent=2,
            )
        )
        exported = elsewhere is None and export_saved_model(stage / "model.keras", stage / "saved_model")
        (stage / "README.md").write_text(
            model_card(
                best,
                trials,
                objective,
                direction,
                {**card, "savedModel": exported, "modelLocation": elsewhere},
            )
        )
        names = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        files = {}
        for name in names:
            size, digest = file_checksum(stage / name)
            store.put_file(stage / name, best_key(name))
            files[name] = {"bytes": size, "sha256": digest}
    for key in store.list("best"):
        if key != MANIFEST_KEY and key.removeprefix("best/") not in files:
            log.info("removing %s, left by an earlier best/", store.url(key))
            store.delete(key)
    write_manifest(store, best.trial_id, files)
    if elsewhere:
        log.info("best/ written for trial %s without its model, which is %s", best.trial_id, elsewhere)
    else:
        log.info("best model (trial %s) written to %s", best.trial_id, store.url(best_key("model.keras")))


def model_elsewhere(store: Store, trial_id: str) -> str | None:
    """Where the trial's model is when its record says it is not in the output (a plain Keras
    Tuner worker kept it), else None."""
    try:
        record = json.loads(store.read_text(trial_key(trial_id, "trial.json")))
    except (FileNotFoundError, ValueError):
        return None
    location = record.get("modelLocation") if isinstance(record, dict) else None
    return str(location) if location else None


def model_card(
    best: Trial, trials: Sequence[Trial], objective: str, direction: Direction, card: dict[str, Any]
) -> str:
    """best/README.md: what was searched, on what data, what won, and with which libraries."""
    values = public_values(best.hyperparameters)
    metrics = {name: best.metrics.get_best_value(name) for name in best.metrics.metrics}
    completed = [t for t in ranked(trials, direction) if t.status == COMPLETED and t.score is not None]
    lines = [
        f"# {card.get('name', 'hptune search')}: best model",
        "",
        f"Trial {best.trial_id} scored {objective} = {best.score:.6g} ({direction}imize), "
        f"best at epoch {(best.best_step or 0) + 1}; {len(completed)} of {len(trials)} trials completed.",
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
    ]
    if card.get("modelLocation"):
        lines.append(
            f"- No `model.keras` here: the model was trained by a plain Keras Tuner worker and is "
            f"{card['modelLocation']}."
        )
    else:
        lines.append("- `model.keras`: load it with `keras.models.load_model('model.keras')`.")
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
        "Keras Tuner": keras_tuner_version,
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["TensorFlow"] = tf.__version__
    versions["Python"] = platform.python_version()
    return versions

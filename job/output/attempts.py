"""Attempts: a worker stages a trial's files under trials/<id>/attempts/<worker>/; the chief
publishes the attempt it counted as the trial's own."""

from __future__ import annotations

import json

from job.output.layout import (
    RESUME_STATE,
    attempt_key,
    attempts_prefix,
    is_checkpoint,
    parse_trial_key,
    trial_key,
)
from job.storage import ArtifactStore


def publish_attempt(store: ArtifactStore, trial_id: str, worker: str) -> None:
    """Make the attempt the chief counted the trial's own: its files are copied to trials/<id>/,
    trial.json last. A stale attempt (its worker lost the trial) is never published."""
    staged = store.list(attempts_prefix(trial_id, worker))
    staged.sort(key=lambda key: key.endswith("/trial.json"))
    for key in staged:
        parsed = parse_trial_key(key)
        if parsed is not None and not is_checkpoint(parsed.name):
            store.copy(key, trial_key(trial_id, parsed.name))
    store.delete(attempts_prefix(trial_id, worker))
    published = trial_key(trial_id, RESUME_STATE)  # the checkpoint it may have resumed from
    if store.exists(published):
        files = _checkpoint_files(json.loads(store.read_text(published)))
        store.delete(published)
        for name in files:
            store.delete(trial_key(trial_id, name))


def publish_checkpoint(store: ArtifactStore, trial_id: str, worker: str) -> bool:
    """Make the last checkpoint `worker` staged for a trial it lost the trial's own (trials/<id>/
    resume.json and the files it names, resume.json last), for the next worker to continue from.
    False when the worker staged none."""
    state_key = attempt_key(trial_id, worker, RESUME_STATE)
    if not store.exists(state_key):
        return False
    state = json.loads(store.read_text(state_key))
    published = trial_key(trial_id, RESUME_STATE)
    earlier = _checkpoint_files(json.loads(store.read_text(published))) if store.exists(published) else []
    files = _checkpoint_files(state)
    for name in files:
        store.copy(attempt_key(trial_id, worker, name), trial_key(trial_id, name))
    store.write_text(published, json.dumps(state))
    for name in set(earlier) - set(files):  # a checkpoint handed on before, by another writer
        store.delete(trial_key(trial_id, name))
    return True


def _checkpoint_files(state: dict[str, object]) -> list[str]:
    """The weight files a checkpoint's resume.json names (job/training/checkpoint.py)."""
    return [str(name) for name in (state.get("weights"), state.get("bestWeights")) if name]

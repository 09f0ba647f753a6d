"""Attempts: a worker stages a trial's files under trials/<id>/attempts/<worker>/; the chief
publishes the attempt it counted as the trial's own."""

from __future__ import annotations

from job.output.layout import attempts_prefix, parse_trial_key, trial_key
from job.storage import ArtifactStore


def publish_attempt(store: ArtifactStore, trial_id: str, worker: str) -> None:
    """Make the attempt the chief counted the trial's own: its files are copied to trials/<id>/,
    trial.json last. A stale attempt (its worker lost the trial) is never published."""
    staged = store.list(attempts_prefix(trial_id, worker))
    staged.sort(key=lambda key: key.endswith("/trial.json"))
    for key in staged:
        parsed = parse_trial_key(key)
        if parsed is not None:
            store.copy(key, trial_key(trial_id, parsed.name))
    store.delete(attempts_prefix(trial_id, worker))

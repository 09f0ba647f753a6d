"""Where each artifact lives under `output.uri`: the one place that spells the keys, and reads them
(`parse_trial_key`).

search.json                       spec and live status, rewritten as the search runs
state/snapshot.json               the chief's state, for resuming after a restart
trials/<id>/trial.json            one trial's record; model.keras for the top-k trials
trials/<id>/attempts/<worker>/    a worker's staged files, until the chief counts the attempt
best/...                          the best trial's model, hyperparameters, metrics, card
best/manifest.json                written last: its presence means best/ is complete
leaderboard.csv                   one row per trial, best first
report.html                       the search drawn for people (`hptune report`), at its end
"""

from __future__ import annotations

from dataclasses import dataclass

SEARCH_STATUS_KEY = "search.json"
SNAPSHOT_KEY = "state/snapshot.json"
OWNER_KEY = "state/owner.json"
LEADERBOARD_KEY = "leaderboard.csv"
BEST_PREFIX = "best"
MANIFEST_KEY = "best/manifest.json"
REPORT_KEY = "report.html"


RESUME_STATE = "resume.json"  # a running trial's checkpoint (job/training/checkpoint.py); its files: resume-*


def is_checkpoint(name: str) -> bool:
    """Whether a trial file is part of a running trial's checkpoint, not of its result."""
    return name == RESUME_STATE or name.startswith("resume-")


def trial_key(trial_id: str, name: str) -> str:
    return f"trials/{trial_id}/{name}"


def attempts_prefix(trial_id: str, worker: str) -> str:
    return f"trials/{trial_id}/attempts/{worker}"


def member_id(tuner_id: str, index: int) -> str:
    """The tuner id of a fused group's member `index` (member 0 is the worker itself)."""
    return tuner_id if index == 0 else f"{tuner_id}-f{index}"


def is_member(tuner_id: str) -> bool:
    """Whether `tuner_id` is a fused group's member (member 1 and on), not a worker itself."""
    head, sep, index = tuner_id.rpartition("-f")
    return bool(head and sep and index.isdigit())


def speaks_for(tuner_id: str, worker: str) -> bool:
    """Whether the worker `tuner_id` runs trials as `worker`: itself, or one of its fused members."""
    rest = worker.removeprefix(f"{tuner_id}-f")
    return worker == tuner_id or (rest != worker and rest.isdigit())


def attempt_key(trial_id: str, worker: str, name: str) -> str:
    return f"{attempts_prefix(trial_id, worker)}/{name}"


def best_key(name: str) -> str:
    return f"{BEST_PREFIX}/{name}"


@dataclass(frozen=True)
class TrialKey:
    """A key under trials/, taken apart: the trial, the worker whose staged attempt it is (None
    for the trial's own, published files) and the file's name below that."""

    trial_id: str
    worker: str | None
    name: str


def parse_trial_key(key: str) -> TrialKey | None:
    """The one reader of the trials/ keys above; None for a key outside trials/<id>/..."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "trials" or not parts[1]:
        return None
    if parts[2] == "attempts" and len(parts) >= 4:
        return TrialKey(parts[1], parts[3], "/".join(parts[4:]))
    return TrialKey(parts[1], None, "/".join(parts[2:]))
